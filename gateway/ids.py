"""Time-ordered identifiers (ULIDs) for messages, decisions and deliveries."""

from __future__ import annotations

import time

from ulid import ULID

from gateway.entropy import random_bytes


def new_id(prefix: str) -> str:
    """``prefix_`` + a ULID: sorts by creation time (to the millisecond), unique without
    coordination (80 random bits from the OS CSPRNG, ``gateway.entropy``).

    Built from the timestamp and random bytes directly: ``ULID()``'s monotonic generator
    costs twice as much, and nothing here relies on order within one millisecond.
    """
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{ULID.from_bytes(millis.to_bytes(6, 'big') + random_bytes(10))}"
