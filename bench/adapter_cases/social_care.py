"""Benchmark inputs for the children's social care formats (synthetic data only).

* ``social-care-cp-plan``: typical = a plan-started notice as a case system sends it;
  large = the same with every optional field filled (the format has no repeating part).
* ``social-care-referral``: typical = a referral with one parent; large = twenty household
  members and a 20,000-character narrative (the schema's limits).
* ``social-care-referral-outcome`` and ``social-care-looked-after``: typical = the golden
  examples; large = the outcome with a 2,000-character message to the referrer (its limit),
  the looked-after notice with the child's addresses and contacts filled in.
* ``cin-census-xml``: typical = a return with one child and one open plan (one message, so
  ``parse`` accepts it); large = a return of 30 children, 20 of them with a plan and 10 of
  those ended (30 messages): time ``parse_batch`` on it, since ``parse`` accepts only a
  return yielding one message. ``render`` raises ``NotRenderable`` for every CIN message by
  design (the census is not a delivery format): skip its render timing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.cin_census import CinCensusAdapter
from adapters.social_care import (
    SocialCareCpPlanAdapter,
    SocialCareLookedAfterAdapter,
    SocialCareReferralAdapter,
    SocialCareReferralOutcomeAdapter,
)
from bench.adapter_cases import BenchCase


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _cp_plan(*, full: bool) -> dict[str, Any]:
    child: dict[str, Any] = {
        "nhs_number": "9990000018",
        "la_child_id": "NSC-BENCH-00001",
        "given_name": "Sam",
        "family_name": "Testcase",
        "birth_date": "2019-06-30",
    }
    authority: dict[str, Any] = {"la_code": "999", "phone": "01632 960100"}
    if full:
        child |= {
            "upn": "N801300001001",
            "sex": "female",
            "addresses": [
                {
                    "use": "home",
                    "lines": ["5 Example Street", "Testtown", "Northshire"],
                    "postcode": "ZZ99 5ZZ",
                },
                {"use": "previous", "lines": ["1 Demo Road", "Testtown"], "postcode": "ZZ99 1ZZ"},
            ],
            "contacts": [{"kind": "phone", "value": "07700 900011"}],
            "confidential_address": True,
        }
        authority |= {
            "name": "Northshire Council children's services (fictional)",
            "out_of_hours_phone": "01632 960199",
        }
    return {
        "reference": "NSC-BENCH-CPP-0001",
        "status": "started",
        "occurred_at": "2026-09-01T14:30:00+01:00",
        "plan": {"category_of_abuse": "neglect", "start_date": "2026-09-01"},
        "responsible_authority": authority,
        "child": child,
    }


def _referral(members: int, narrative: int) -> dict[str, Any]:
    return {
        "reference": "NSC-BENCH-REF-0001",
        "referred_at": "2026-11-18T15:05:00+00:00",
        "purpose": "safeguarding",
        "risk_of_significant_harm": True,
        "referral_source": "6",
        "referrer_organisation": "Northshire Police (fictional)",
        "concern_summary": "Demo concern summary for the benchmark.",
        "narrative": ("Demo narrative text. " * (narrative // 21 + 1))[:narrative],
        "child": {
            "nhs_number": "9990000026",
            "given_name": "Alex",
            "family_name": "Example",
            "birth_date": "2016-01-01",
        },
        "household": [
            {
                "role": "household-member",
                "given_name": f"Member{i}",
                "family_name": "Example",
                "birth_date": "1990-01-01",
            }
            for i in range(members)
        ],
    }


_GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "adapters" / "golden" / "social-care"


def _golden(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((_GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def _outcome_large() -> dict[str, Any]:
    doc = _golden("referral-outcome")
    doc["message_to_referrer"] = ("Demo message to the referrer. " * 70)[:2000]
    return doc


def _looked_after_large() -> dict[str, Any]:
    doc = _golden("looked-after-started")
    doc["child"] |= {
        "addresses": [{"use": "home", "lines": ["7 Example Street", "Testtown"], "postcode": "ZZ99 7ZZ"}],
        "contacts": [{"kind": "phone", "value": "07700 900077"}],
    }
    return doc


def _census(children: int) -> bytes:
    parts = []
    for i in range(children):
        plans = ""
        if i % 3 != 2:
            end = "<CPPendDate>2026-02-27</CPPendDate>" if i % 3 == 1 else ""
            plans = (
                "<ChildProtectionPlans><ChildProtectionPlan><CPPstartDate>2025-04-28</CPPstartDate>"
                f"{end}<InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse><NumberOfPreviousCPP>0"
                "</NumberOfPreviousCPP><Reviews><CPPreviewDate>2025-07-21</CPPreviewDate></Reviews>"
                "</ChildProtectionPlan></ChildProtectionPlans>"
            )
        parts.append(
            f"<Child><ChildIdentifiers><LAchildID>BENCH{i:05d}</LAchildID>"
            "<UPN>N801300001001</UPN><PersonBirthDate>2016-05-14</PersonBirthDate>"
            "<GenderCurrent>2</GenderCurrent></ChildIdentifiers><ChildCharacteristics>"
            "<Ethnicity>WBRI</Ethnicity><Disabilities><Disability>NONE</Disability></Disabilities>"
            "</ChildCharacteristics><CINdetails><CINreferralDate>2025-04-02</CINreferralDate>"
            "<ReferralSource>2A</ReferralSource><PrimaryNeedCode>N1</PrimaryNeedCode><Assessments>"
            "<AssessmentActualStartDate>2025-04-03</AssessmentActualStartDate><FactorsIdentifiedAtAssessment>"
            "<AssessmentFactors>2A</AssessmentFactors></FactorsIdentifiedAtAssessment></Assessments>"
            f"{plans}</CINdetails></Child>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Message><Header><CollectionDetails>'
        "<Collection>CIN</Collection><Year>2026</Year><ReferenceDate>2026-03-31</ReferenceDate>"
        "</CollectionDetails><Source><SourceLevel>L</SourceLevel><LEA>999</LEA>"
        "<SoftwareCode>Bench</SoftwareCode><Release>1</Release><SerialNo>1</SerialNo>"
        "<DateTime>2026-04-20T09:30:00</DateTime></Source></Header>"
        f"<Children>{''.join(parts)}</Children></Message>"
    ).encode()


CASES = [
    BenchCase(
        name="social-care-cp-plan",
        adapter=SocialCareCpPlanAdapter(),
        typical=_json(_cp_plan(full=False)),
        large=_json(_cp_plan(full=True)),
        large_note="CP-plan notice with every optional field filled (no repeating part)",
    ),
    BenchCase(
        name="social-care-referral",
        adapter=SocialCareReferralAdapter(),
        typical=_json(_referral(members=1, narrative=600)),
        large=_json(_referral(members=20, narrative=20_000)),
        large_note="referral with 20 household members and a 20,000-character narrative",
    ),
    BenchCase(
        name="social-care-referral-outcome",
        adapter=SocialCareReferralOutcomeAdapter(),
        typical=_json(_golden("referral-outcome")),
        large=_json(_outcome_large()),
        large_note="outcome with a 2,000-character message to the referrer",
    ),
    BenchCase(
        name="social-care-looked-after",
        adapter=SocialCareLookedAfterAdapter(),
        typical=_json(_golden("looked-after-started")),
        large=_json(_looked_after_large()),
        large_note="looked-after notice with the child's address and phone",
    ),
    BenchCase(
        name="cin-census-xml",
        adapter=CinCensusAdapter(),
        typical=_census(1),
        large=_census(30),
        large_note=(
            "CIN census of 30 children -> 30 messages; time parse_batch (parse takes one); "
            "render is NotRenderable"
        ),
    ),
]
