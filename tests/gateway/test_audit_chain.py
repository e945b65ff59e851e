"""The audit chain's hash covers each record's data exactly as stored.

Records written before the serialiser changed (``json.dumps``) and after (``orjson``) must
both verify, and any change to the stored text must be found.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.audit import GENESIS, AuditEvent, AuditRecord, canonical_json, chain_hash, verify_chain

AT = "2026-12-01T10:00:00.000000+00:00"


def legacy_json(value: Any) -> str:
    """How records were serialised before ``orjson``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain(datas: list[dict[str, Any]], serialise: Any) -> list[AuditRecord]:
    """Records as a store writes and then reads them back (stored text included)."""
    records: list[AuditRecord] = []
    prev = GENESIS
    for seq, data in enumerate(datas, start=1):
        event = AuditEvent("test.event", data, "msg_1", "csc-northshire")
        text = serialise(data)
        digest = chain_hash(prev, seq, AT, event, text)
        records.append(
            AuditRecord(
                seq,
                AT,
                event.kind,
                event.message_id,
                event.partner,
                event.actor,
                json.loads(text),
                prev,
                digest,
                text,
            )
        )
        prev = digest
    return records


DATAS: list[dict[str, Any]] = [
    {"attempts": 3, "delay": 1e-05, "note": "Zoë ✓"},
    {"big": 1e16, "nested": {"b": [1, 2.5], "a": None}},
    {"ok": True},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


class TestVerify:
    def test_records_written_by_either_serialiser_verify(self) -> None:
        for serialise in (legacy_json, canonical_json):
            result = verify_chain(chain(DATAS, serialise))
            assert (result.ok, result.records) == (True, 3), serialise.__name__

    def test_the_two_serialisers_spell_some_floats_differently(self) -> None:
        # Why the stored text is hashed, not a re-serialisation of the parsed data.
        assert legacy_json({"d": 1e-05}) != canonical_json({"d": 1e-05})

    def test_any_change_to_the_stored_text_is_found(self) -> None:
        records = chain(DATAS, legacy_json)
        spaced = records[1].data_json.replace(",", ", ")  # type: ignore[union-attr]
        tampered = [records[0], replace(records[1], data_json=spaced), records[2]]
        problems = verify_chain(tampered).problems
        assert any("seq 2" in p and "edited" in p for p in problems)

    def test_records_without_stored_text_are_checked_by_reserialising(self) -> None:
        records = chain(DATAS[2:], canonical_json)
        plain = [replace(r, data_json=None) for r in records]
        assert verify_chain(plain).ok


@given(json_values)
def test_canonical_json_matches_the_legacy_form_without_floats(value: Any) -> None:
    assert canonical_json(value) == legacy_json(value)
