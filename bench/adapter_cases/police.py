"""Benchmark inputs for the police formats (synthetic data only).

* ``police-ppn``: typical = two children and two adults (a victim and an alleged
  perpetrator), a full DASH checklist, one offending history entry and the officer; large =
  ten household members (four children, three parents/carers, the victim, the alleged
  perpetrator, another adult), each with two addresses and two contacts, a 20,000-character
  narrative (the schema's limit), ten offending history entries and ten risk factors.
* ``police-ppn (Southmoor field mapping)``: the same two documents in the fictional
  Southmoor force's field names, parsed through ``deploy/example/mappings/
  fictional-force-ppn.yaml``: the difference from ``police-ppn`` is the mapping's cost.
* ``police-encompass``: typical = the notification with brief circumstances; large = the same
  with the circumstances and the child's voice at their 4,000-character limit (the format
  has no repeating part).
* ``police-marac``: typical = victim, one alleged perpetrator, one child; large = five alleged
  perpetrators, ten children and a 20,000-character narrative.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from stdnum.gb import nhs

from adapters.police import EncompassAdapter, MaracAdapter, PpnAdapter
from bench.adapter_cases import BenchCase

MAPPING = Path(__file__).resolve().parents[2] / "deploy" / "example" / "mappings" / "fictional-force-ppn.yaml"
ROLES_LARGE = (
    ["child"] * 4 + ["parent", "parent", "carer", "victim", "alleged-perpetrator", "household-member"]
)  # fmt: skip
DASH = ["yes"] * 15 + ["no"] * 7 + ["not-known"] * 2


def _nhs(n: int) -> str:
    """The n-th test-range NHS number with a valid check digit."""
    base = 999_000_000 + n * 7
    while True:
        # python-stdnum validates but does not compute the check digit: try each one.
        for check in "0123456789":
            if nhs.is_valid(f"{base}{check}"):
                return f"{base}{check}"
        base += 1


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _person(i: int, role: str, *, large: bool) -> dict[str, Any]:
    person: dict[str, Any] = {
        "id": f"person-{i}",
        "role": role,
        "nhs_number": _nhs(i),
        "police_reference": f"SMP-BENCH-P-{i:04d}",
        "given_name": f"Sam{i}",
        "family_name": "Testcase",
        "date_of_birth": "2016-05-04" if role == "child" else "1988-01-01",
        "sex": "unknown",
        "addresses": [{"use": "home", "lines": [f"{i} Example Street", "Testtown"], "postcode": "ZZ99 1ZZ"}],
        "contacts": [{"type": "phone", "value": f"07700 9{i:05d}"}],
    }
    if role == "victim":
        person["addresses"][0] |= {"use": "refuge", "lines": ["Refuge address (bench)", "Hiddenham"]}
    if large:
        person["addresses"].append(
            {"use": "previous", "lines": [f"{i} Old Road", "Testtown"], "postcode": "ZZ99 2ZZ"}
        )
        person["contacts"].append({"type": "email", "value": f"person{i}@example.invalid"})
    return person


def ppn(*, large: bool) -> dict[str, Any]:
    roles = ROLES_LARGE if large else ["child", "child", "victim", "alleged-perpetrator"]
    people = [_person(i + 1, role, large=large) for i, role in enumerate(roles)]
    perpetrator = next(p["id"] for p in people if p["role"] == "alleged-perpetrator")
    return {
        "ppn_reference": "SM-PPN-BENCH-0001",
        "incident_date_time": "2026-11-20T18:00:00+00:00",
        "people": people,
        "summary": "Bench: domestic abuse incident with children in the household.",
        "narrative": ("Bench narrative. " * 1200)[:20000] if large else "Bench: officers attended at 18:00.",
        "risk_assessment": {
            "grade": "high",
            "dash": {"answers": DASH, "score": 15},
            "factors": [f"factor {n} (bench)" for n in range(10 if large else 2)],
        },
        "offender_history": [
            {"person": perpetrator, "text": f"Bench history entry {n}."} for n in range(10 if large else 1)
        ],
        "officer": {
            "given_name": "Officer",
            "family_name": "Bench",
            "contacts": [{"type": "email", "value": "officer.bench@police.example"}],
        },
    }


_SOUTHMOOR_PERSON = {
    "id": "PersonID", "role": "SubjectType", "nhs_number": "NHSNo", "police_reference": "PNCRef",
    "given_name": "Forename", "family_name": "Surname", "date_of_birth": "DOB", "sex": "Gender",
    "addresses": "Addresses", "contacts": "ContactMethods",
}  # fmt: skip
_SOUTHMOOR_ROLE = {
    "child": "CHILD", "parent": "PARENT", "carer": "CARER", "victim": "VICTIM",
    "alleged-perpetrator": "SUSPECT", "household-member": "OTHER",
}  # fmt: skip
_ADDRESS_USE = {"home": "HOME", "previous": "PREV", "refuge": "REFUGE"}
_CONTACT = {"phone": "TEL", "email": "EMAIL"}
_ANSWER = {"yes": "Y", "no": "N", "not-known": "NK"}


def southmoor(doc: dict[str, Any]) -> dict[str, Any]:
    """Our PPN document written the way the fictional Southmoor force exports it."""

    def person(p: dict[str, Any]) -> dict[str, Any]:
        out = {_SOUTHMOOR_PERSON[k]: v for k, v in p.items()}
        out["SubjectType"] = _SOUTHMOOR_ROLE[p["role"]]
        out["Gender"] = "U"
        year, month, day = p["date_of_birth"].split("-")
        out["DOB"] = f"{day}/{month}/{year}"
        out["Addresses"] = [
            {"AddressType": _ADDRESS_USE[a["use"]], "AddressLines": a["lines"], "PostCode": a["postcode"]}
            for a in p["addresses"]
        ]
        out["ContactMethods"] = [{"Method": _CONTACT[c["type"]], "Detail": c["value"]} for c in p["contacts"]]
        return out

    risk = doc["risk_assessment"]
    return {
        "PPNNumber": doc["ppn_reference"],
        "IncidentDateTime": doc["incident_date_time"],
        "Subjects": [person(p) for p in doc["people"]],
        "Summary": doc["summary"],
        "OfficerNarrative": doc["narrative"],
        "RiskAssessment": {
            "Grading": "R",
            "DASH": {
                "Responses": [_ANSWER[a] for a in risk["dash"]["answers"]],
                "TotalScore": risk["dash"]["score"],
            },
            "RiskFactors": risk["factors"],
        },
        "PreviousHistory": [
            {"SubjectPersonID": h["person"], "Detail": h["text"]} for h in doc["offender_history"]
        ],
        "OIC": {
            "Forename": doc["officer"]["given_name"],
            "Surname": doc["officer"]["family_name"],
            "ContactMethods": [
                {"Method": _CONTACT[c["type"]], "Detail": c["value"]} for c in doc["officer"]["contacts"]
            ],
        },
    }


def encompass(*, large: bool) -> dict[str, Any]:
    size = 4000 if large else 0
    return {
        "police_reference": "SM-ENC-BENCH-0001",
        "school": "school-riverside-primary",
        "incident": {
            "date_time": "2026-11-21T21:40:00+00:00",
            "location_type": "home",
            "child_present": True,
            "circumstances": ("Bench circumstances. " * 200)[:size]
            if large
            else "Bench: argument between adults.",
            "childs_voice": ("Bench voice. " * 400)[:size] if large else "Bench: the child was upset.",
        },
        "child": {
            "nhs_number": _nhs(1),
            "given_name": "Alex",
            "family_name": "Example",
            "date_of_birth": "2017-03-14",
        },
    }


def marac(*, large: bool) -> dict[str, Any]:
    def person(i: int) -> dict[str, Any]:
        p = _person(i, "x", large=False)
        del p["role"]
        return p

    victim = person(1)
    victim["safe_contacts"] = victim.pop("contacts")
    perpetrators = [person(10 + i) for i in range(5 if large else 1)]
    return {
        "marac_reference": "SM-MARAC-BENCH-0001",
        "referred_at": "2026-11-17T11:00:00+00:00",
        "conference_date": "2026-11-26",
        "victim": victim,
        "alleged_perpetrators": perpetrators,
        "children": [person(20 + i) for i in range(10 if large else 1)],
        "summary": "Bench: repeat high-risk domestic abuse.",
        "narrative": ("Bench narrative. " * 1200)[:20000] if large else "Bench MARAC narrative.",
        "risk_assessment": {
            "grade": "high",
            "dash": {"answers": DASH},
            "referral_criteria": ["visible-high-risk"],
        },
        "offender_history": [{"person": p["id"], "text": "Bench history."} for p in perpetrators],
    }


_SOUTHMOOR = PpnAdapter().configure({"field_mapping": yaml.safe_load(MAPPING.read_text())})

CASES = [
    BenchCase(
        "police-ppn",
        PpnAdapter(),
        _json(ppn(large=False)),
        _json(ppn(large=True)),
        "10 household members, 20,000-character narrative, 10 history entries",
    ),
    BenchCase(
        "police-ppn (Southmoor field mapping)",
        _SOUTHMOOR,
        _json(southmoor(ppn(large=False))),
        _json(southmoor(ppn(large=True))),
        "as police-ppn, in Southmoor's field names",
    ),
    BenchCase(
        "police-encompass",
        EncompassAdapter(),
        _json(encompass(large=False)),
        _json(encompass(large=True)),
        "circumstances and child's voice at 4,000 characters",
    ),
    BenchCase(
        "police-marac",
        MaracAdapter(),
        _json(marac(large=False)),
        _json(marac(large=True)),
        "5 alleged perpetrators, 10 children, 20,000-character narrative",
    ),
]
