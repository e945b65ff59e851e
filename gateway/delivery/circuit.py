"""A per-partner circuit breaker: after N consecutive failures stop calling the partner for
a cool-down, then let one trial through. While open, deliveries wait in the queue without
spending their retry budget."""

from __future__ import annotations

import enum
from collections.abc import Callable


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int, reset_seconds: float, clock: Callable[[], float]) -> None:
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self._reset:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def seconds_until_trial(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._reset - self._clock())

    def allowed_batch(self, wanted: int) -> int:
        """How many deliveries may be attempted now: all, one trial, or none."""
        state = self.state
        if state is CircuitState.CLOSED:
            return wanted
        return 1 if state is CircuitState.HALF_OPEN else 0

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self.state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self._opened_at = self._clock()
