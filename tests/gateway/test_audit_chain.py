"""The audit chain's hash covers each record's data exactly as stored.

Records written before the serialiser changed (``json.dumps``) and after (``orjson``) must
both verify, and any change to the stored text must be found.
"""

from __future__ import annotations

import hashlib
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


def legacy_chain_hash(prev_hash: str, seq: int, at: str, event: AuditEvent, data_json: str) -> str:
    """The record hash as first defined: sha256 over ``prev|sorted-keys JSON|data``."""
    body = legacy_json(
        {
            "seq": seq,
            "at": at,
            "kind": event.kind,
            "message_id": event.message_id,
            "partner": event.partner,
            "actor": event.actor,
        }
    )
    return hashlib.sha256(f"{prev_hash}|{body}|{data_json}".encode()).hexdigest()


class TestChainHash:
    def test_a_chain_recorded_before_the_faster_hash_still_verifies(self) -> None:
        # Hashes computed by the earlier implementation (canonical_json with OPT_SORT_KEYS
        # and an f-string) and kept here as text, so a change of spelling cannot go unseen.
        first = AuditEvent(
            "decision.made",
            {"decision_id": "dec_1", "released": ["identity.core"], "note": "Zoë ✓"},
            "msg_1",
            "csc-northshire",
        )
        second = AuditEvent("gateway.started", {"n": 1}, None, None, "cli:ops")
        h1 = "66e952fae72cd979643ada6f253e152cac1ea11c85c66918f721cdab62ca64a3"
        h2 = "aa38e44df972cdc2eece9c10142dd29e5392ebd8e14557706423286856977bfd"
        text1 = '{"decision_id":"dec_1","note":"Zoë ✓","released":["identity.core"]}'
        records = [
            AuditRecord(
                1,
                AT,
                first.kind,
                first.message_id,
                first.partner,
                first.actor,
                first.data,
                GENESIS,
                h1,
                text1,
            ),
            AuditRecord(
                2,
                "2026-12-01T10:00:01.000000+00:00",
                second.kind,
                None,
                None,
                "cli:ops",
                {"n": 1},
                h1,
                h2,
                '{"n":1}',
            ),
        ]
        assert canonical_json(dict(first.data)) == text1
        assert verify_chain(records).ok

    @given(
        st.text(),
        st.integers(1, 2**62),
        st.text(),
        st.one_of(st.none(), st.text()),
        st.one_of(st.none(), st.text()),
        st.text(),
        st.text(),
    )
    def test_matches_the_first_definition(
        self, kind: str, seq: int, at: str, message_id: str | None, partner: str | None, actor: str, data: str
    ) -> None:
        event = AuditEvent(kind, {}, message_id, partner, actor)
        assert chain_hash(GENESIS, seq, at, event, data) == legacy_chain_hash(GENESIS, seq, at, event, data)
