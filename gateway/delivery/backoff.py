"""Retry timing: exponential backoff with jitter, capped."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    "Equal jitter": half the exponential delay is fixed, half is random, so retries from
    many deliveries spread out but none retries immediately.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    delay = min(cap, base * 2.0 ** (attempt - 1))
    r: float = (rng or random).random()  # jitter, not security
    return delay / 2 + r * delay / 2
