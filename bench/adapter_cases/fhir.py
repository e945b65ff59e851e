"""FHIR R4 message Bundles, parsed with full ``fhir.resources`` validation and on the light
path (shape checks of the mapped elements only), so the cost of validation is visible.

Bodies are generated here (synthetic people: 999-range NHS numbers, ZZ99 postcodes) by
rendering canonical messages with the adapter itself; the typical one is an ED attendance
of a child on a child protection plan (MessageHeader, Patient, RelatedPerson, Encounter,
Flag), the large one a Bundle of 50 entries (MessageHeader, Patient, RelatedPerson and 47
item resources: Encounters, Flags, referral ServiceRequests and item-carrier
Communications in turn).
"""

from __future__ import annotations

from typing import Any

from adapters.fhir import FhirR4Adapter
from bench.adapter_cases import BenchCase
from canonical import Message

_CHILD: dict[str, Any] = {
    "ref": "child-1",
    "role": "child",
    "identifiers": [{"system": "nhs-number", "value": "9990001014"}],
    "name": {"given": "Sam", "family": "Testcase"},
    "birth_date": "2019-06-30",
    "sex": "female",
    "addresses": [{"use": "home", "lines": ["5 Example Street", "Testtown"], "postcode": "ZZ99 5ZZ"}],
}
_PARENT: dict[str, Any] = {
    "ref": "parent-1",
    "role": "parent",
    "name": {"given": "Toni", "family": "Testcase"},
    "contacts": [{"kind": "phone", "value": "07700 900011"}],
}


def _attendance(n: int) -> dict[str, Any]:
    return {
        "category": "health.attendance",
        "type": "ed-attendance",
        "about": ["child-1"],
        "data": {
            "setting": f"Emergency department, Northshire General (demo {n})",
            "arrived_at": "2026-11-21T23:05:00+00:00",
            "left_at": "2026-11-22T02:10:00+00:00",
        },
    }


def _plan(n: int) -> dict[str, Any]:
    return {
        "category": "social-care.status",
        "type": "cp-plan-status",
        "about": ["child-1"],
        "data": {"status": "active", "start": "2026-09-01", "responsible_authority": f"Demo council {n}"},
    }


def _referral(n: int) -> dict[str, Any]:
    return {
        "category": "event.summary",
        "type": "referral-summary",
        "about": ["child-1"],
        "labels": ["SDV"],
        "data": {"category": "Safeguarding referral", "reason": f"Demo concern number {n}"},
    }


def _carried(n: int) -> dict[str, Any]:
    return {
        "category": "health.clinical",
        "type": "clinical-notes",
        "about": ["child-1"],
        "labels": ["R"],
        "data": {"presenting_complaint": f"Demo clinical note {n}", "observations": ["demo", n]},
    }


def _message(items: list[dict[str, Any]]) -> Message:
    return Message.from_dict(
        {
            "envelope": {
                "message_id": "01JDEMO0FHIRBENCH000000000",
                "source": "health-northshire-general",
                "event_type": "health.ed-attendance",
                "occurred_at": "2026-11-21T23:05:00+00:00",
                "received_at": "2026-11-21T23:05:01+00:00",
                "purpose": "safeguarding",
                "sender_reference": "NGH-ED-BENCH-0001",
            },
            "people": [_CHILD, _PARENT],
            "items": items,
        }
    )


_makers = (_attendance, _plan, _referral, _carried)
_TYPICAL = FhirR4Adapter().render(_message([_attendance(0), _plan(0)]))
_LARGE = FhirR4Adapter().render(_message([_makers[n % 4](n) for n in range(47)]))

CASES = [
    BenchCase("fhir-r4 (full validation)", FhirR4Adapter(), _TYPICAL, _LARGE, "Bundle of 50 entries"),
    BenchCase("fhir-r4 (light)", FhirR4Adapter(validate=False), _TYPICAL, _LARGE, "Bundle of 50 entries"),
]
