"""Time-ordered identifiers (ULIDs) for messages, decisions and deliveries.

A ULID is 48 bits of Unix time in milliseconds then 80 random bits, written as 26
characters of Crockford's base 32 (https://github.com/ulid/spec). Every accepted message
takes five, so the text is built here from a table of character pairs (13 look-ups)
rather than by ``python-ulid``'s character-by-character encoder, which cost several
percent of the accept path; ``tests/gateway/test_ids.py`` checks the two agree.
"""

from __future__ import annotations

import time

from gateway.entropy import random_bytes

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
"""Index ``i`` (10 bits) -> its two base-32 characters."""
_SHIFTS = tuple(range(120, -1, -10))


def ulid_text(raw: bytes) -> str:
    """The 26-character ULID text of 16 bytes (big-endian: time, then randomness)."""
    n = int.from_bytes(raw, "big")
    return "".join([_PAIRS[(n >> s) & 0x3FF] for s in _SHIFTS])


def new_id(prefix: str) -> str:
    """``prefix_`` + a ULID: sorts by creation time (to the millisecond), unique without
    coordination (80 random bits from the OS CSPRNG, ``gateway.entropy``); nothing here
    relies on order within one millisecond."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{ulid_text(millis.to_bytes(6, 'big') + random_bytes(10))}"
