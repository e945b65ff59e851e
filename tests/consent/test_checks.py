"""``gateway policy check``'s analysis: each finding by its code, on a mutated example policy."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from canonical import default_dictionary
from consent.checks import Finding, check_policy
from tests.consent.policy_documents import agreement, example_documents

TODAY = date(2026, 11, 22)
ENCOMPASS = "northshire-operation-encompass"


def findings(mutate: Callable[[dict[str, Any]], object] | None = None, today: date = TODAY) -> list[Finding]:
    docs = example_documents()
    if mutate is not None:
        mutate(docs)
    return check_policy(docs, default_dictionary(), today)


def codes(found: list[Finding]) -> set[tuple[str, str]]:
    return {(f.level, f.code) for f in found}


def test_the_example_policy_is_clean() -> None:
    assert findings() == []


@pytest.mark.parametrize(
    ("mutate", "expected", "file", "path"),
    [
        (
            lambda d: agreement(d, ENCOMPASS).pop("lawful_basis"),
            "required",
            "agreements.yaml",
            "/agreements/0",
        ),
        (
            lambda d: agreement(d, ENCOMPASS)["flows"][0]["to"].append("ghost-school"),
            "known-partner",
            "agreements.yaml",
            "/agreements/0/flows/0/to/1",
        ),
        (
            lambda d: agreement(d, ENCOMPASS)["flows"][0]["categories"].append("health.everything"),
            "known-category",
            "agreements.yaml",
            "/agreements/0/flows/0/categories/2",
        ),
        (
            lambda d: d["routes.yaml"]["routes"][0]["event_types"].append("police.parking-ticket"),
            "known-event-type",
            "routes.yaml",
            "/routes/0/event_types/2",
        ),
    ],
)
def test_schema_and_reference_errors_name_file_and_path(
    mutate: Callable[[dict[str, Any]], object], expected: str, file: str, path: str
) -> None:
    found = findings(mutate)
    assert [(f.level, f.code, f.file, f.path) for f in found] == [("error", expected, file, path)]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("valid_until", "2026-11-01", "agreement-expired"),
        ("valid_until", "2026-12-10", "agreement-expiring"),
        ("valid_from", "2027-01-01", "agreement-not-yet-in-force"),
        ("review_date", "2026-10-01", "review-overdue"),
    ],
)
def test_dates_are_warnings(field: str, value: str, code: str) -> None:
    found = findings(lambda d: agreement(d, ENCOMPASS).update({field: value}))
    assert codes(found) == {("warning", code)}
    assert found[0].path.startswith("/agreements/0/")
    assert ENCOMPASS in found[0].message


def test_expiry_is_judged_against_the_given_day() -> None:
    assert codes(findings(today=date(2027, 10, 20))) >= {("warning", "agreement-expiring")}
    assert ("warning", "agreement-expired") in codes(findings(today=date(2030, 1, 1)))


@pytest.mark.parametrize(
    ("drop", "code"),
    [
        ("article9", "special-category-without-article9"),
        ("dpa_schedule1", "special-category-without-schedule1"),
    ],
)
def test_special_category_data_needs_article9_and_schedule1(drop: str, code: str) -> None:
    found = findings(lambda d: agreement(d, "northshire-cp-attendance")["lawful_basis"].pop(drop))
    assert codes(found) == {("error", code)}
    assert "health.attendance" in found[0].message


def test_a_route_no_agreement_can_permit_is_a_warning() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["routes.yaml"]["routes"].append(
            {"event_types": ["education.suspension"], "to": ["gp-riverside-surgery"]}
        )

    found = findings(mutate)
    assert [(f.code, f.path) for f in found] == [("route-never-permitted", "/routes/4/to/0")]
    assert "gp-riverside-surgery" in found[0].message


def test_overlapping_agreements_that_disagree_are_an_error() -> None:
    def mutate(d: dict[str, Any]) -> None:
        twin = copy.deepcopy(agreement(d, ENCOMPASS))
        twin["id"] = "northshire-encompass-v2"
        twin["flows"][0]["categories"].append("event.narrative")
        d["agreements.yaml"]["agreements"].append(twin)

    found = findings(mutate)
    assert codes(found) == {("error", "overlapping-agreements-disagree")}
    assert "northshire-encompass-v2" in found[0].message


def test_overlapping_agreements_that_agree_are_fine() -> None:
    def mutate(d: dict[str, Any]) -> None:
        twin = copy.deepcopy(agreement(d, ENCOMPASS))
        twin["id"] = "northshire-encompass-copy"
        d["agreements.yaml"]["agreements"].append(twin)

    assert findings(mutate) == []


def test_two_flows_of_one_agreement_for_the_same_key_are_an_error() -> None:
    def mutate(d: dict[str, Any]) -> None:
        flows = agreement(d, ENCOMPASS)["flows"]
        flows.append({**copy.deepcopy(flows[0]), "categories": ["identity.core"]})

    assert codes(findings(mutate)) == {("error", "overlapping-flows")}


def test_consent_basis_without_a_consent_check_is_a_warning() -> None:
    found = findings(lambda d: agreement(d, "northshire-early-help").update(consent_required=False))
    assert codes(found) == {("warning", "consent-basis-without-consent")}


def test_errors_come_before_warnings() -> None:
    def mutate(d: dict[str, Any]) -> None:
        agreement(d, ENCOMPASS).update(review_date="2026-01-01")
        agreement(d, "northshire-cp-attendance")["lawful_basis"].pop("article9")

    assert [f.level for f in findings(mutate)] == ["error", "warning"]
