"""``gateway policy diff``: who newly sees, or stops seeing, which categories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from canonical import default_dictionary
from consent import compile_policy
from consent.policy_diff import PolicyDiff, diff_policies
from tests.consent.policy_documents import agreement, example_documents

ON = date(2026, 11, 22)
ENCOMPASS = "northshire-operation-encompass"
SCHOOL_KEY = ("police-northshire", "school-riverside-primary", "police.domestic-abuse-incident")


def diff(mutate: Callable[[dict[str, Any]], object], on: date = ON) -> PolicyDiff:
    old, new = example_documents(), example_documents()
    mutate(new)
    return diff_policies(
        compile_policy(old, default_dictionary()), compile_policy(new, default_dictionary()), on
    )


def school_changes(result: PolicyDiff) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for c in result.access:
        if (c.source, c.recipient, c.event_type) == SCHOOL_KEY:
            out[c.purpose] = c.gains + tuple(f"-{x}" for x in c.loses)
    return out


def test_no_change_no_difference() -> None:
    result = diff(lambda d: None)
    assert result.empty
    assert result.access == ()


def test_a_category_added_is_newly_seen_for_each_purpose() -> None:
    result = diff(lambda d: agreement(d, ENCOMPASS)["flows"][0]["categories"].append("event.narrative"))
    assert school_changes(result) == {
        "operation-encompass": ("event.narrative",),
        "safeguarding": ("event.narrative",),
    }
    assert {c.recipient for c in result.access} == {"school-riverside-primary"}
    assert "+ newly sees: event.narrative" in result.access[0].describe()


def test_a_category_removed_stops_being_seen() -> None:
    result = diff(lambda d: agreement(d, ENCOMPASS)["flows"][0]["categories"].remove("event.summary"))
    assert set(school_changes(result).values()) == {("-event.summary",)}


def test_an_agreement_that_lapses_stops_all_sharing_under_it() -> None:
    result = diff(lambda d: agreement(d, ENCOMPASS).update(valid_until="2026-11-01"))
    assert set(school_changes(result).values()) == {("-event.summary", "-identity.core")}
    assert all("no longer shared" in " ".join(c.notes) for c in result.access)
    assert result.agreements_changed == (f"{ENCOMPASS}: valid_until 2027-11-06 -> 2026-11-01",)


def test_person_roles_confidential_addresses_and_consent_rules_are_reported() -> None:
    def mutate(d: dict[str, Any]) -> None:
        mash = agreement(d, "northshire-mash-police-referrals")
        mash["flows"][0]["person_roles"].remove("alleged-perpetrator")
        mash["flows"][0]["confidential_address_needed"] = True
        agreement(d, "northshire-early-help")["consent_required"] = False

    result = diff(mutate)
    mash = [c for c in result.access if c.old_agreement == "northshire-mash-police-referrals"]
    assert mash
    assert all(c.roles_lost == ("alleged-perpetrator",) for c in mash)
    assert all("may now receive confidential addresses" in c.notes for c in mash)
    early = [c for c in result.access if c.new_agreement == "northshire-early-help"]
    assert [c.notes for c in early] == [("consent is no longer required",)]


def test_agreements_added_and_removed_are_listed() -> None:
    def mutate(d: dict[str, Any]) -> None:
        rows = d["agreements.yaml"]["agreements"]
        rows[:] = [a for a in rows if a["id"] != "northshire-marac"]

    result = diff(mutate)
    assert result.agreements_removed == ("northshire-marac",)
    idva = [c for c in result.access if c.recipient == "idva-northshire"]
    assert [c.loses for c in idva] == [
        ("event.summary", "identity.contact", "identity.core", "police.risk-assessment")
    ]
    back = diff_policies(
        compile_policy(example_documents(), default_dictionary()),
        compile_policy(example_documents(), default_dictionary()),
        ON,
    )
    assert back.agreements_added == ()


def test_the_comparison_date_matters() -> None:
    # Before the early help agreement starts, changing it changes nothing anyone sees.
    def mutate(d: dict[str, Any]) -> None:
        agreement(d, "northshire-early-help")["flows"][0]["categories"].append("education.sen")

    assert diff(mutate, on=date(2025, 1, 1)).access == ()
    assert [c.gains for c in diff(mutate).access] == [("education.sen",)]


def test_narrowing_what_a_role_gets_is_reported() -> None:
    def mutate(d: dict[str, Any]) -> None:
        idva = agreement(d, "northshire-marac")["flows"][1]
        idva["role_categories"]["alleged-perpetrator"] = ["identity.core", "identity.contact"]

    [change] = diff(mutate).access
    assert change.recipient == "idva-northshire"
    assert change.notes == ("about a alleged-perpetrator: identity.core -> identity.contact, identity.core",)
