"""Policy as data: partners, sharing agreements and routes, compiled once into an immutable
snapshot so that a decision is a handful of dictionary look-ups.

``compile_policy`` takes the parsed policy documents (file name -> content), validates each
against its JSON Schema, checks every cross-reference, and returns a ``PolicySnapshot``
whose ``version`` is a content hash. It raises ``PolicyError`` listing every problem with
the file, the path inside it and the rule. Nothing here reads files or the clock.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from canonical import DataDictionary, GatewayError, Violation
from canonical.validate import schema_validator, schema_violations

POLICY_FILES = {
    "partners.yaml": "partners.schema.json",
    "agreements.yaml": "agreements.schema.json",
    "routes.yaml": "routes.schema.json",
}
DEFAULT_PERSON_ROLES = frozenset({"child"})


class PolicyError(GatewayError):
    """The policy files are invalid; the old snapshot (if any) stays in force."""

    title = "Invalid policy"

    def __init__(self, problems: list[tuple[str, Violation]]) -> None:
        self.problems = problems
        lines = [f"{file}: {v.field} ({v.rule}): {v.message}" for file, v in problems]
        super().__init__("policy is invalid:\n  " + "\n  ".join(lines))


@dataclass(frozen=True, slots=True)
class Partner:
    id: str
    name: str
    sector: str
    roles: frozenset[str]
    identifiers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class LawfulBasis:
    article6: str
    article9: str | None = None
    dpa_schedule1: str | None = None
    legislation: tuple[str, ...] = ()
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = [f"UK GDPR Art {self.article6}"]
        if self.article9:
            parts.append(f"Art {self.article9}")
        if self.dpa_schedule1:
            parts.append(f"DPA 2018 {self.dpa_schedule1}")
        if self.legislation:
            parts.append("; ".join(self.legislation))
        object.__setattr__(self, "_text", ", ".join(parts))

    def describe(self) -> str:
        """E.g. "UK GDPR Art 6(1)(e), Art 9(2)(g), DPA 2018 Schedule 1 para 18, Children Act 2004 s11"."""
        return self._text


@dataclass(frozen=True, slots=True)
class Flow:
    """One permission inside an agreement: these senders may share these categories of
    these events with these recipients for these purposes."""

    sources: frozenset[str]
    recipients: frozenset[str]
    event_types: frozenset[str]
    purposes: frozenset[str]
    categories: frozenset[str]
    person_roles: frozenset[str]
    confidential_address_needed: bool
    role_categories: tuple[tuple[str, frozenset[str]], ...] = ()
    """(role, categories): what may be released about people in that role, if narrower
    than ``categories``. Roles not listed get ``categories``."""

    def categories_for(self, role: str) -> frozenset[str]:
        """The categories that may be released about a person in ``role``."""
        for listed, categories in self.role_categories:
            if listed == role:
                return categories
        return self.categories


@dataclass(frozen=True, slots=True)
class Agreement:
    id: str
    title: str
    owner: str
    valid_from: date
    valid_until: date
    review_date: date | None
    dpia_reference: str | None
    lawful_basis: LawfulBasis
    consent_required: bool
    share_without_consent_on_risk: bool
    flows: tuple[Flow, ...]
    review_role: str = "ig-lead"
    """Who decides held (review) decisions under this agreement."""
    review_hours: float = 24.0
    """How long a held decision may wait before it is escalated (never auto-shared)."""

    def in_force(self, on: date) -> bool:
        return self.valid_from <= on <= self.valid_until


@dataclass(frozen=True, slots=True)
class Grant:
    """A compiled (agreement, flow) pair for one (source, recipient, event, purpose) key."""

    agreement: Agreement
    flow: Flow


GrantKey = tuple[str, str, str, str]
"""(source, recipient, event_type, purpose)"""


@dataclass(frozen=True, slots=True)
class Route:
    event_types: frozenset[str]
    sources: frozenset[str] | None
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class PolicySnapshot:
    """Immutable compiled policy. ``version`` is the SHA-256 of the canonical JSON of the
    documents it was compiled from: the same files always give the same version."""

    version: str
    partners: Mapping[str, Partner]
    agreements: Mapping[str, Agreement]
    grants: Mapping[GrantKey, tuple[Grant, ...]]
    routes: Mapping[str, tuple[Route, ...]]
    dictionary: DataDictionary

    def governing_grant(self, key: GrantKey, on: date) -> Grant | None:
        """The grant a decision for ``key`` uses on ``on``: the first in force, by agreement
        id (``gateway policy check`` reports overlapping agreements that disagree)."""
        for grant in self.grants.get(key, ()):
            if grant.agreement.in_force(on):
                return grant
        return None


def policy_version(documents: Mapping[str, Any]) -> str:
    blob = json.dumps(documents, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def compile_policy(documents: Mapping[str, Any], dictionary: DataDictionary) -> PolicySnapshot:
    """Validate and compile. ``documents`` maps each of ``POLICY_FILES`` to its parsed content."""
    problems: list[tuple[str, Violation]] = []
    for file, schema in POLICY_FILES.items():
        if file not in documents:
            problems.append((file, Violation("/", "file-required", "the policy needs this file")))
            continue
        problems += [(file, v) for v in schema_violations(schema_validator(schema), documents[file])]
    if problems:
        raise PolicyError(problems)

    partners = {p["id"]: _partner(p) for p in documents["partners.yaml"]["partners"]}
    problems += _duplicate_ids("partners.yaml", "partners", documents["partners.yaml"]["partners"])
    problems += _duplicate_ids("agreements.yaml", "agreements", documents["agreements.yaml"]["agreements"])
    problems += list(_reference_problems(documents, partners, dictionary))
    if problems:
        raise PolicyError(problems)

    agreements = {a["id"]: _agreement(a) for a in documents["agreements.yaml"]["agreements"]}
    grants: dict[GrantKey, list[Grant]] = defaultdict(list)
    for agreement in sorted(agreements.values(), key=lambda a: a.id):
        for flow in agreement.flows:
            for s in flow.sources:
                for r in flow.recipients:
                    for e in flow.event_types:
                        for p in flow.purposes:
                            grants[(s, r, e, p)].append(Grant(agreement, flow))
    routes: dict[str, list[Route]] = defaultdict(list)
    for r in documents["routes.yaml"]["routes"]:
        route = Route(
            frozenset(r["event_types"]), frozenset(r["from"]) if "from" in r else None, tuple(r["to"])
        )
        for e in route.event_types:
            routes[e].append(route)
    return PolicySnapshot(
        version=policy_version(documents),
        partners=partners,
        agreements=agreements,
        grants={k: tuple(v) for k, v in grants.items()},
        routes={k: tuple(v) for k, v in routes.items()},
        dictionary=dictionary,
    )


def _partner(p: Mapping[str, Any]) -> Partner:
    return Partner(
        p["id"], p["name"], p["sector"], frozenset(p.get("roles", ())), dict(p.get("identifiers", {}))
    )


def _agreement(a: Mapping[str, Any]) -> Agreement:
    lb = a["lawful_basis"]
    return Agreement(
        id=a["id"],
        title=a["title"],
        owner=a["owner"],
        valid_from=date.fromisoformat(a["valid_from"]),
        valid_until=date.fromisoformat(a["valid_until"]),
        review_date=date.fromisoformat(a["review_date"]) if "review_date" in a else None,
        dpia_reference=a.get("dpia_reference"),
        lawful_basis=LawfulBasis(
            lb["article6"], lb.get("article9"), lb.get("dpa_schedule1"), tuple(lb.get("legislation", ()))
        ),
        consent_required=bool(a.get("consent_required", False)),
        share_without_consent_on_risk=bool(a.get("share_without_consent_on_risk", False)),
        review_role=a.get("review", {}).get("role", "ig-lead"),
        review_hours=float(a.get("review", {}).get("within_hours", 24)),
        flows=tuple(
            Flow(
                sources=frozenset(f["from"]),
                recipients=frozenset(f["to"]),
                event_types=frozenset(f["event_types"]),
                purposes=frozenset(f["purposes"]),
                categories=frozenset(f["categories"]),
                person_roles=frozenset(f.get("person_roles", DEFAULT_PERSON_ROLES)),
                confidential_address_needed=bool(f.get("confidential_address_needed", False)),
                role_categories=tuple(
                    sorted((role, frozenset(cats)) for role, cats in f.get("role_categories", {}).items())
                ),
            )
            for f in a["flows"]
        ),
    )


def _duplicate_ids(file: str, key: str, rows: list[Mapping[str, Any]]) -> list[tuple[str, Violation]]:
    seen: set[str] = set()
    out = []
    for i, row in enumerate(rows):
        if row["id"] in seen:
            out.append((file, Violation(f"/{key}/{i}/id", "unique-id", "another entry already uses this id")))
        seen.add(row["id"])
    return out


def _reference_problems(
    documents: Mapping[str, Any], partners: Mapping[str, Partner], dictionary: DataDictionary
) -> Iterator[tuple[str, Violation]]:
    def check(
        file: str, path: str, values: list[str], known: Any, rule: str, what: str
    ) -> Iterator[tuple[str, Violation]]:
        for i, v in enumerate(values):
            if v not in known:
                yield file, Violation(f"{path}/{i}", rule, f"{v!r} is not a known {what}")

    for a_i, a in enumerate(documents["agreements.yaml"]["agreements"]):
        base = f"/agreements/{a_i}"
        if a["valid_until"] < a["valid_from"]:
            yield "agreements.yaml", Violation(f"{base}/valid_until", "valid-range", "ends before it starts")
        for f_i, f in enumerate(a["flows"]):
            fb = f"{base}/flows/{f_i}"
            yield from check("agreements.yaml", f"{fb}/from", f["from"], partners, "known-partner", "partner")
            yield from check("agreements.yaml", f"{fb}/to", f["to"], partners, "known-partner", "partner")
            yield from check(
                "agreements.yaml",
                f"{fb}/event_types",
                f["event_types"],
                dictionary.event_types,
                "known-event-type",
                "event type",
            )
            yield from check(
                "agreements.yaml",
                f"{fb}/purposes",
                f["purposes"],
                dictionary.purposes,
                "known-purpose",
                "purpose",
            )
            yield from check(
                "agreements.yaml",
                f"{fb}/categories",
                f["categories"],
                dictionary.categories,
                "known-category",
                "category",
            )
            yield from check(
                "agreements.yaml",
                f"{fb}/person_roles",
                f.get("person_roles", []),
                dictionary.person_roles,
                "known-role",
                "person role",
            )
            named_roles = set(f.get("person_roles", DEFAULT_PERSON_ROLES))
            for role, cats in f.get("role_categories", {}).items():
                if role not in named_roles:
                    yield (
                        "agreements.yaml",
                        Violation(
                            f"{fb}/role_categories/{role}",
                            "role-released",
                            "the flow's person_roles must name this role",
                        ),
                    )
                yield from check(
                    "agreements.yaml",
                    f"{fb}/role_categories/{role}",
                    cats,
                    set(f["categories"]),
                    "within-flow-categories",
                    "category of this flow",
                )
    for r_i, r in enumerate(documents["routes.yaml"]["routes"]):
        base = f"/routes/{r_i}"
        yield from check(
            "routes.yaml",
            f"{base}/event_types",
            r["event_types"],
            dictionary.event_types,
            "known-event-type",
            "event type",
        )
        yield from check(
            "routes.yaml", f"{base}/from", r.get("from", []), partners, "known-partner", "partner"
        )
        yield from check("routes.yaml", f"{base}/to", r["to"], partners, "known-partner", "partner")
