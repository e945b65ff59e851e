"""The canonical schema and semantic rules: each rule by name, and errors never echo values."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from canonical import Message, default_dictionary
from canonical.validate import canonical_violations
from tests.support import sample_message


def rules(doc: Any) -> set[tuple[str, str]]:
    return {(v.field, v.rule) for v in canonical_violations(doc, default_dictionary())}


class TestCanonicalValidation:
    def test_the_sample_message_is_valid(self) -> None:
        assert canonical_violations(sample_message(), default_dictionary()) == []

    @pytest.mark.parametrize(
        ("mutate", "expected"),
        [
            (lambda d: d["envelope"].pop("purpose"), ("/envelope", "required")),
            (lambda d: d["envelope"].update(occurred_at="yesterday"), ("/envelope/occurred_at", "format")),
            (
                lambda d: d["envelope"].update(occurred_at="2026-11-21T21:40:00"),
                ("/envelope/occurred_at", "format"),
            ),
            (lambda d: d["people"][0].update(birth_date="2017-02-30"), ("/people/0/birth_date", "format")),
            (lambda d: d["people"][0].update(sex="robot"), ("/people/0/sex", "enum")),
            (lambda d: d.update(extra=1), ("/", "additionalProperties")),
            (lambda d: d["items"][0].update(data="text"), ("/items/0/data", "type")),
            (lambda d: d["people"][0]["name"].update(given="x" * 201), ("/people/0/name/given", "maxLength")),
            (
                lambda d: d["envelope"].update(event_type="police.unknown"),
                ("/envelope/event_type", "known-event-type"),
            ),
            (lambda d: d["envelope"].update(purpose="curiosity"), ("/envelope/purpose", "known-purpose")),
            (lambda d: d["envelope"].update(message_id="m1"), ("/envelope/message_id", "set-by-gateway")),
            (lambda d: d["people"][1].update(ref="child-1"), ("/people/1/ref", "unique-ref")),
            (lambda d: d["people"][0].update(role="pet"), ("/people/0/role", "known-role")),
            (lambda d: d["people"][1].update(markers=["vip"]), ("/people/1/markers/0", "known-marker")),
            (lambda d: d["items"][0].update(category="gossip"), ("/items/0/category", "known-category")),
            (lambda d: d["items"][0].update(about=["nobody"]), ("/items/0/about/0", "known-person-ref")),
            (lambda d: d["items"][0].update(labels=["XYZ"]), ("/items/0/labels/0", "known-label")),
            (
                lambda d: d["people"][0]["identifiers"][0].update(system="passport"),
                ("/people/0/identifiers/0/system", "known-identifier-system"),
            ),
            (
                lambda d: d["people"][0]["identifiers"][0].update(value="9434765871"),
                ("/people/0/identifiers/0/value", "nhs-number-check-digit"),
            ),
            (
                lambda d: d["people"][0]["identifiers"].append({"system": "upn", "value": "Q207000016049"}),
                ("/people/0/identifiers/1/value", "upn-check-letter"),
            ),
        ],
    )
    def test_each_rule_names_the_field_and_the_rule(self, mutate: Any, expected: tuple[str, str]) -> None:
        doc = sample_message()
        mutate(doc)
        assert expected in rules(doc)

    @pytest.mark.parametrize("nhs", ["9434765870", "9912003888", "9449305552", "9990000018"])
    def test_valid_nhs_numbers_pass(self, nhs: str) -> None:
        doc = sample_message()
        doc["people"][0]["identifiers"] = [{"system": "nhs-number", "value": nhs}]
        assert rules(doc) == set()

    @pytest.mark.parametrize("upn", ["B801200005001", "P207000016049"])
    def test_valid_upns_pass(self, upn: str) -> None:
        doc = sample_message()
        doc["people"][0]["identifiers"] = [{"system": "upn", "value": upn}]
        assert rules(doc) == set()

    def test_violations_never_quote_the_value(self) -> None:
        canary = "CANARY-7f3a-secret-address"
        doc = sample_message()
        doc["people"][0]["birth_date"] = canary
        doc["people"][0]["sex"] = canary
        doc["people"][0]["identifiers"][0]["value"] = canary
        doc["items"][0]["category"] = canary
        doc["envelope"]["occurred_at"] = canary
        doc["people"][1]["name"]["given"] = canary * 20
        found = canonical_violations(doc, default_dictionary())
        assert len(found) >= 4
        for v in found:
            assert canary not in v.message
            assert canary not in v.field


class TestModel:
    def test_round_trip_keeps_every_field(self) -> None:
        doc = sample_message()
        again = Message.from_dict(doc).as_dict()
        assert again == doc

    def test_categories_are_those_carried(self) -> None:
        msg = Message.from_dict(sample_message())
        assert msg.categories() == {
            "identity.core",
            "identity.address",
            "identity.contact",
            "event.summary",
            "event.narrative",
            "police.risk-assessment",
        }
        no_contacts = copy.deepcopy(sample_message())
        del no_contacts["people"][1]["contacts"]
        assert "identity.contact" not in Message.from_dict(no_contacts).categories()
