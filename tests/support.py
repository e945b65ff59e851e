"""Shared test helpers: synthetic messages and test deployments written to a folder.

All people, numbers and addresses are synthetic: NHS numbers from the 999 test range,
postcodes in the ZZ99 pseudo-range, names that are obviously not real.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "example"

POLICE = "police-northshire"
SCHOOL = "school-riverside-primary"
CSC = "csc-northshire"
HEALTH_VISITING = "health-visiting-northshire"
TOKENS = {
    POLICE: "demo-police-token",
    SCHOOL: "demo-school-token",
    CSC: "demo-csc-token",
    HEALTH_VISITING: "demo-hv-token",
}
OPERATOR_TOKEN = "demo-operator-token"
CANONICAL = "application/vnd.gateway.message+json"


def valid_nhs_numbers(count: int, start: int = 999_000_000) -> list[str]:
    """Test-range NHS numbers with correct check digits (10..2 weights, mod 11)."""
    out: list[str] = []
    n = start
    while len(out) < count:
        n += 1
        digits = str(n)
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11
        if check == 11:
            check = 0
        if check == 10:
            continue
        out.append(digits + str(check))
    return out


def sample_message() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EXAMPLE / "messages" / "domestic-abuse-incident.json").read_text())
    return doc


def message_for_child(
    nhs_number: str, seq: int = 0, *, recipients: list[str] | None = None
) -> dict[str, Any]:
    doc = copy.deepcopy(sample_message())
    doc["people"][0]["identifiers"] = [{"system": "nhs-number", "value": nhs_number}]
    doc["envelope"]["sender_reference"] = f"NS-TEST-{seq:06d}"
    if recipients is not None:
        doc["envelope"]["recipients"] = recipients
    return doc


def body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def auth(partner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[partner]}", "Content-Type": CANONICAL}


def operator_auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def write_deployment(
    target: Path,
    *,
    receiver_base: str,
    port: int = 0,
    delivery: dict[str, Any] | None = None,
    partner_delivery: dict[str, dict[str, Any]] | None = None,
    synchronous: str = "FULL",
    partner_inbound: dict[str, dict[str, Any]] | None = None,
    settings_extra: dict[str, Any] | None = None,
) -> Path:
    """Copy the example deployment into ``target`` with webhook URLs pointing at
    ``receiver_base`` and test-friendly delivery settings. ``partner_inbound`` sets partners'
    ``inbound`` sections (relative paths are relative to ``target``); ``settings_extra`` adds
    top-level ``gateway.yaml`` settings."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("agreements.yaml", "routes.yaml", "secrets.yaml"):
        (target / name).write_text((EXAMPLE / name).read_text())
    shutil.copytree(EXAMPLE / "mappings", target / "mappings", dirs_exist_ok=True)
    partners = yaml.safe_load((EXAMPLE / "partners.yaml").read_text())
    for p in partners["partners"]:
        if p["delivery"]["mode"] == "webhook":
            p["delivery"]["url"] = f"{receiver_base}/{p['id']}"
        p["delivery"].update((partner_delivery or {}).get(p["id"], {}))
        if p["id"] in (partner_inbound or {}):
            p["inbound"] = (partner_inbound or {})[p["id"]]
    (target / "partners.yaml").write_text(yaml.safe_dump(partners))
    settings = yaml.safe_load((EXAMPLE / "gateway.yaml").read_text())
    settings["listen"]["port"] = port
    settings["mllp"]["port"] = 0  # any free port: tests and a running demo never clash
    settings["data_dir"] = str(target / "data")
    settings["store"]["synchronous"] = synchronous
    settings["delivery"] = {
        "lease_seconds": 30,
        "poll_interval_seconds": 0.2,
        "timeout_seconds": 5,
        "max_attempts": 4,
        "base_delay_seconds": 0.05,
        "max_delay_seconds": 0.5,
        "circuit_failure_threshold": 1000,
        "circuit_reset_seconds": 0.5,
        **(delivery or {}),
    }
    settings["operators"].append(
        {
            "id": "test-ig-lead",
            "role": "ig-lead",
            "token_sha256": hashlib.sha256(b"test-ig-lead-token").hexdigest(),
        }
    )
    settings.update(settings_extra or {})
    (target / "gateway.yaml").write_text(yaml.safe_dump(settings))
    return target


async def eventually(
    predicate: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.05
) -> None:
    """Poll an async condition until it holds; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def read_all(folder: Path, pattern: str) -> bytes:
    """Every byte of the files matching ``pattern`` (e.g. a database and its WAL)."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob(pattern)))
