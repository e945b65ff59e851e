"""Ids are ULIDs: the same text as the reference implementation, sorted by time."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from gateway.ids import new_id, ulid_text

ULID_TEXT = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


@given(st.binary(min_size=16, max_size=16))
def test_the_text_is_python_ulids(raw: bytes) -> None:
    assert ulid_text(raw) == str(ULID.from_bytes(raw))


def test_the_extremes() -> None:
    assert ulid_text(bytes(16)) == "0" * 26
    assert ulid_text(b"\xff" * 16) == "7" + "Z" * 25


def test_new_ids_carry_the_prefix_the_time_and_are_unique() -> None:
    ids = [new_id("msg") for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    for i in ids:
        prefix, text = i.split("_")
        assert prefix == "msg"
        assert ULID_TEXT.match(text)
    first, last = ULID.from_str(ids[0][4:]), ULID.from_str(ids[-1][4:])
    assert first.timestamp <= last.timestamp  # later ids never sort before earlier ones' time
