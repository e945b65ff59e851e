"""Small policies built in code, so each decision rule is tested on exactly what it needs."""

from __future__ import annotations

import copy
from typing import Any

from canonical import default_dictionary
from consent import PolicySnapshot, compile_policy

SENDER = "police-a"
SCHOOL = "school-a"
CSC = "csc-a"


def partners() -> dict[str, Any]:
    def p(pid: str, sector: str, roles: list[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": pid,
            "name": pid,
            "sector": sector,
            "delivery": {"mode": "pull", "format": "canonical-json"},
        }
        if roles:
            out["roles"] = roles
        return out

    return {
        "partners": [p(SENDER, "police"), p(SCHOOL, "education", ["parent-facing"]), p(CSC, "social-care")]
    }


def agreement(**overrides: Any) -> dict[str, Any]:
    flow: dict[str, Any] = {
        "from": [SENDER],
        "to": [CSC],
        "event_types": ["police.domestic-abuse-incident"],
        "purposes": ["safeguarding"],
        "categories": ["identity.core", "event.summary"],
    }
    flow.update(overrides.pop("flow", {}))
    base: dict[str, Any] = {
        "id": "agr-a",
        "title": "Test agreement",
        "owner": "IG lead (role)",
        "valid_from": "2026-01-01",
        "valid_until": "2026-12-31",
        "lawful_basis": {"article6": "6(1)(e)", "legislation": ["Children Act 2004 s11"]},
        "flows": [flow],
    }
    base.update(overrides)
    return base


def documents(*agreements: dict[str, Any], routes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "partners.yaml": partners(),
        "agreements.yaml": {"agreements": [copy.deepcopy(a) for a in agreements]},
        "routes.yaml": {
            "routes": routes
            if routes is not None
            else [{"event_types": ["police.domestic-abuse-incident"], "to": [CSC]}]
        },
    }


def policy(*agreements: dict[str, Any], routes: list[dict[str, Any]] | None = None) -> PolicySnapshot:
    return compile_policy(documents(*agreements, routes=routes), default_dictionary())
