"""The canonical JSON adapter: parse errors name position and rule, render drops what
recipients must not learn, and parse(render(m)) round-trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import default_registry
from adapters.canonical_json import MEDIA_TYPE, CanonicalJsonAdapter
from canonical import InvalidInput, Message, default_dictionary
from tests.support import body, sample_message


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)


class TestCanonicalJson:
    adapter = CanonicalJsonAdapter()

    def test_parse_gives_the_typed_message(self) -> None:
        msg = self.adapter.parse(body(sample_message()), default_dictionary())
        assert msg.envelope.event_type == "police.domestic-abuse-incident"
        assert msg.children()[0].identifiers[0].value == "9990000018"

    @pytest.mark.parametrize(
        ("raw", "rule"),
        [(b"{not json", "json-syntax"), (b"\xff\xfe\x00", "utf-8"), (b"[]", "type"), (b"{}", "required")],
    )
    def test_rejections_name_the_rule(self, raw: bytes, rule: str) -> None:
        with pytest.raises(InvalidInput) as info:
            self.adapter.parse(raw, default_dictionary())
        assert rule in {v.rule for v in info.value.violations}
        assert info.value.adapter == "canonical-json"

    def test_syntax_error_gives_position_not_content(self) -> None:
        raw = b'{"envelope": {"secret": CANARY-VALUE}}'
        with pytest.raises(InvalidInput) as info:
            self.adapter.parse(raw, default_dictionary())
        text = json.dumps([v.as_dict() for v in info.value.violations])
        assert "line 1" in text
        assert "CANARY" not in text

    def test_deep_nesting_is_refused_before_decoding(self) -> None:
        with pytest.raises(InvalidInput) as info:
            self.adapter.parse(b'{"a":' * 5000 + b"1" + b"}" * 5000, default_dictionary())
        assert [v.rule for v in info.value.violations] == ["max-depth"]

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(st.binary(max_size=400), st.recursive(st.none() | st.text(max_size=20), _containers)))
    def test_any_input_gives_a_message_or_a_declared_error(self, raw: Any) -> None:
        data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
        problems = None
        try:
            self.adapter.parse(data, default_dictionary())
        except InvalidInput as exc:
            problems = exc.violations
        assert problems is None or problems

    def test_render_never_tells_a_recipient_whom_else_the_sender_named(self) -> None:
        msg = Message.from_dict(sample_message())
        assert msg.envelope.recipients
        assert b"recipients" not in self.adapter.render(msg)

    def test_round_trip(self) -> None:
        doc = sample_message()
        doc["envelope"].pop("recipients")
        msg = Message.from_dict(doc)
        assert self.adapter.parse(self.adapter.render(msg), default_dictionary()) == msg


class TestRegistry:
    def test_content_type_lookup_ignores_parameters_and_case(self) -> None:
        reg = default_registry()
        assert reg.for_content_type(f"{MEDIA_TYPE.upper()}; charset=utf-8") is reg.by_name["canonical-json"]
        assert reg.for_content_type("text/plain") is None
