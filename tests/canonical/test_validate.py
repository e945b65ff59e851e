"""The canonical schema and semantic rules: each rule by name, and errors never echo values."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical import Message, default_dictionary
from canonical.validate import canonical_violations, fast_check, schema_validator
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


# --- the accept path's compiled check agrees with jsonschema --------------------------------

_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.text(min_size=200, max_size=600),
    st.sampled_from(
        [
            "2026-11-21T21:40:00Z",
            "2026-11-21T21:40:00",
            "2026-13-01T00:00:00+00:00",
            "2026-02-29",
            "2024-02-29",
            "",
            "child",
            "nhs-number",
            "9990000018",
            "event.summary",
        ]
    ),
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _locations(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every container path in a document (where a mutation can happen)."""
    out = [path]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        if isinstance(value, dict | list):
            out += _locations(value, (*path, key))
        else:
            out.append((*path, key))
    return out


@st.composite
def mutated_messages(draw: st.DrawFn) -> Any:
    doc = sample_message()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_locations(doc)))
        if not path:
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(_JSON)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "ref", "role", "value", "labels"]))] = draw(_JSON)
    return doc


class TestFastCheckAgreesWithJsonschema:
    NAME = "canonical-message.schema.json"

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated_messages())
    def test_same_verdict_on_mutated_messages(self, doc: Any) -> None:
        assert fast_check(self.NAME)(doc) == schema_validator(self.NAME).is_valid(doc)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            (("envelope", "event_type"), "police.domestic-abuse-incident\n"),  # Python's `$`
            (("envelope", "occurred_at"), "2026-11-21T21:40:00"),  # no offset
            (("envelope", "occurred_at"), "2026-02-29T10:00:00Z"),
            (("people", 0, "birth_date"), "2019-13-01"),
            (("people", 0, "birth_date"), 20190101),
            (("envelope", "flags", "risk_of_significant_harm"), 1),
            (("envelope", "recipients"), ["school-riverside-primary", "school-riverside-primary"]),
            (("envelope", "sender_reference"), 2**70),
            (("envelope", "sender_reference"), 1.0),
            (("people", 0, "ref"), "x" * 101),
            (("items",), [{"category": "event.summary", "type": "t", "data": {}}] * 201),
        ],
    )
    def test_never_accepts_what_jsonschema_refuses(self, field: tuple[Any, ...], value: Any) -> None:
        """The contract the accept path relies on: a "yes" of the fast check is final."""
        doc = sample_message()
        parent = doc
        for key in field[:-1]:
            parent = parent[key]
        parent[field[-1]] = value
        assert not fast_check(self.NAME)(doc) or schema_validator(self.NAME).is_valid(doc)

    def test_accepts_the_valid_sample(self) -> None:
        assert fast_check(self.NAME)(sample_message()) is True
