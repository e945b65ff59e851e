"""Time-ordered identifiers (ULIDs) for messages, decisions and deliveries."""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    """``prefix_`` + a ULID: sorts by creation time, unique without coordination."""
    return f"{prefix}_{ULID()}"
