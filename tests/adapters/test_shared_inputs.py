"""What every adapter relies on: bounded JSON, safe XML, identifier checks, the registry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import AdapterRegistry
from adapters.base import Adapter, AdapterOptionsError
from adapters.canonical_json import CanonicalJsonAdapter
from adapters.identifiers import identifier_violation, normalise, upn_la_code, upn_warnings
from adapters.inputs import MAX_JSON_DEPTH, check_schema, load_json, to_message
from adapters.safe_xml import XmlLimits, local, parse_xml
from canonical import DataDictionary, InvalidInput, Message, default_dictionary
from tests.support import sample_message

CANARY = "Canary-Shared-Value-3K"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)


def rules(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [v.rule for v in exc.value.violations]


class TestLoadJson:
    @pytest.mark.parametrize(
        ("raw", "rule"),
        [
            (b"\xff\xfe{", "utf-8"),
            (b'{"a": ' + CANARY.encode(), "json-syntax"),
            (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "max-depth"),
            (b'{"percent": NaN}', "finite-number"),
            (b'{"percent": -Infinity}', "finite-number"),
            (b'{"percent": 1e400}', "finite-number"),
            (b'{"name": "\\ud800' + CANARY.encode() + b'"}', "unicode"),
        ],
    )
    def test_refusals_name_the_rule_and_never_the_bytes(self, raw: bytes, rule: str) -> None:
        with pytest.raises(InvalidInput) as info:
            load_json(raw, "test-format")
        assert rules(info) == [rule]
        assert info.value.adapter == "test-format"
        assert CANARY not in str(info.value) + repr(info.value.violations)

    def test_nesting_up_to_the_limit_is_accepted(self) -> None:
        raw = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
        assert load_json(raw, "t") is not None

    def test_many_shallow_brackets_are_not_depth(self) -> None:
        raw = b"[" + b",".join([b'{"a": []}'] * (2 * MAX_JSON_DEPTH)) + b"]"
        assert len(load_json(raw, "t")) == 2 * MAX_JSON_DEPTH

    def test_integers_beyond_64_bits_stay_exact_and_pairs_stay_characters(self) -> None:
        raw = b'{"n": 123456789012345678901234567890, "e": "\\ud83d\\ude00"}'
        assert load_json(raw, "t") == {"n": 123456789012345678901234567890, "e": "\U0001f600"}

    @settings(max_examples=300, deadline=None)
    @given(json_values)
    def test_what_json_writes_reads_back_the_same(self, value: Any) -> None:
        # Both decoders (orjson's fast path, json's exact one) must give json's values.
        raw = json.dumps(value).encode()
        assert load_json(raw, "t") == json.loads(raw)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_any_bytes_give_a_value_or_a_declared_error(self, raw: bytes) -> None:
        problems = None
        try:
            load_json(raw, "t")
        except InvalidInput as exc:
            problems = exc.violations
        assert problems is None or problems


class TestSchemaAndCanonicalChecks:
    def test_check_schema_reports_pointers(self) -> None:
        doc = sample_message()
        del doc["envelope"]["purpose"]
        with pytest.raises(InvalidInput) as info:
            check_schema("canonical-message.schema.json", doc, "t")
        assert [(v.field, v.rule) for v in info.value.violations] == [("/envelope", "required")]

    def test_to_message_prefixes_canonical_fields(self) -> None:
        doc = sample_message()
        doc["envelope"]["event_type"] = "police.not-an-event"
        with pytest.raises(InvalidInput) as info:
            to_message(doc, default_dictionary(), "t")
        assert [(v.field, v.rule) for v in info.value.violations] == [
            ("canonical:/envelope/event_type", "known-event-type")
        ]

    def test_to_message_builds_the_typed_message(self) -> None:
        msg = to_message(sample_message(), default_dictionary(), "t")
        assert msg.envelope.event_type == "police.domestic-abuse-incident"


class TestSafeXml:
    @pytest.mark.parametrize(
        ("raw", "rule"),
        [
            (
                b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
                "xml-dtd-forbidden",
            ),
            (b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///nonexistent">]><r>&x;</r>', "xml-dtd-forbidden"),
            (b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/r.dtd"><r/>', "xml-dtd-forbidden"),
            (b"<r><a>" + CANARY.encode(), "xml-syntax"),
            (b'<?xml version="1.0" encoding="no-such-codec"?><r/>', "xml-encoding"),
            (b"<a>" * 30 + b"</a>" * 30, "max-depth"),
            (b"<r>" + b"<a/>" * 101 + b"</r>", "max-elements"),
            (b"<r>" + b"x" * 1025 + b"</r>", "max-text"),
            (b"<r>" + b" " * 5000 + b"</r>", "max-bytes"),
        ],
    )
    def test_hostile_xml_ends_in_a_declared_error(self, raw: bytes, rule: str) -> None:
        limits = XmlLimits(max_bytes=4096, max_depth=24, max_elements=100, max_text=1024)
        with pytest.raises(InvalidInput) as info:
            parse_xml(raw, "t", limits)
        assert rules(info) == [rule]
        assert CANARY not in str(info.value) + repr(info.value.violations)

    def test_utf16_with_a_declaration_parses(self) -> None:
        raw = '<?xml version="1.0" encoding="UTF-16"?><r><n>Éva</n></r>'.encode("utf-16")
        root = parse_xml(raw, "t")
        assert root.findtext("n") == "Éva"

    def test_namespaces_are_stripped_by_local(self) -> None:
        root = parse_xml(b'<r xmlns="urn:example"><a/></r>', "t")
        assert local(root.tag) == "r"
        assert [local(c.tag) for c in root] == ["a"]

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_any_bytes_give_a_tree_or_a_declared_error(self, raw: bytes) -> None:
        problems = None
        try:
            parse_xml(raw, "t")
        except InvalidInput as exc:
            problems = exc.violations
        assert problems is None or problems


class TestIdentifiers:
    @pytest.mark.parametrize(
        ("system", "value", "rule"),
        [
            ("nhs-number", "9434765870", None),
            ("nhs-number", "9434765871", "nhs-number-check-digit"),
            ("nhs-number", "999000001", "nhs-number-check-digit"),
            ("upn", "B801200005001", None),
            ("upn", "Q207000016049", "upn-check-letter"),
            ("upn", "P207000016049", None),
            # LA 999 is not on python-stdnum's national list: a warning, never an error
            ("upn", "M999001226001", None),
            ("upn", "A999001226001", "upn-check-letter"),
            ("local-child-id", "anything at all", None),
        ],
    )
    def test_checks(self, system: str, value: str, rule: str | None) -> None:
        found = identifier_violation(system, value, "PID-3[1].1")
        assert (found.rule if found else None) == rule
        if found:
            assert found.field == "PID-3[1].1"
            assert value not in found.message

    def test_normalise_and_la_code(self) -> None:
        assert normalise("nhs-number", "943 476 5870") == "9434765870"
        assert upn_la_code("B801200005001") == "801"

    def test_upn_la_codes_outside_the_list_are_warnings(self) -> None:
        doc = sample_message()
        doc["people"][0]["identifiers"].append({"system": "upn", "value": "B801200005001"})
        msg = Message.from_dict(doc)
        assert upn_warnings(msg, frozenset()) == []  # 801 is on python-stdnum's list
        assert upn_warnings(msg, frozenset({"801"})) == []
        (warning,) = upn_warnings(msg, frozenset({"999"}))
        assert (warning.field, warning.rule) == ("/people/0/identifiers/1/value", "upn-la-code-known")

    def test_without_a_deployment_list_python_stdnum_s_list_decides(self) -> None:
        doc = sample_message()
        doc["people"][0]["identifiers"].append({"system": "upn", "value": "M999001226001"})
        (warning,) = upn_warnings(Message.from_dict(doc), frozenset())
        assert warning.rule == "upn-la-code-known"


class _Configurable:
    """A format that takes one option, to test the registry's per-partner copies."""

    name: str = "test-configurable"
    content_types: tuple[str, ...] = ("application/vnd.test+json",)
    media_type: str = "application/vnd.test+json"

    def __init__(self, greeting: str = "") -> None:
        self.greeting = greeting

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        raise NotImplementedError  # never called here

    def render(self, message: Message) -> bytes:
        return self.greeting.encode()

    def configure(self, options: Mapping[str, Any]) -> Adapter:
        if set(options) != {"greeting"}:
            raise AdapterOptionsError("takes exactly one option: greeting")
        return _Configurable(str(options["greeting"]))


class TestRegistry:
    registry = AdapterRegistry.of([CanonicalJsonAdapter(), _Configurable()])

    def test_content_types_ignore_parameters_and_case(self) -> None:
        found = self.registry.for_content_type("Application/JSON; charset=utf-8")
        assert found is not None
        assert found.name == "canonical-json"

    def test_a_content_type_claimed_twice_is_refused(self) -> None:
        with pytest.raises(ValueError, match="claimed by"):
            AdapterRegistry.of([CanonicalJsonAdapter(), _Twin()])

    def test_configured_replaces_only_the_named_format(self) -> None:
        mine = self.registry.configured({"test-configurable": {"greeting": "hello"}})
        adapter = mine.for_content_type("application/vnd.test+json")
        assert isinstance(adapter, _Configurable)
        assert adapter.greeting == "hello"
        assert mine.by_name["canonical-json"] is self.registry.by_name["canonical-json"]
        assert self.registry.configured({}) is self.registry

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"no-such-format": {}}, "not a format"),
            ({"canonical-json": {"x": 1}}, "takes no options"),
            ({"test-configurable": {"colour": "red"}}, "exactly one option"),
        ],
    )
    def test_bad_options_are_refused(self, options: dict[str, dict[str, Any]], message: str) -> None:
        with pytest.raises(AdapterOptionsError, match=message):
            self.registry.configured(options)


class _Twin(CanonicalJsonAdapter):
    name = "twin"
