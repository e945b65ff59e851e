"""Retry timing, the circuit breaker and a batch's deadline: pure, with an injected clock."""

from __future__ import annotations

import math
import random

import pytest

from gateway.delivery.backoff import backoff_delay
from gateway.delivery.circuit import CircuitBreaker, CircuitState
from gateway.delivery.dispatcher import batch_deadline, post_timeout


class TestBackoff:
    def test_grows_exponentially_within_jitter_and_is_capped(self) -> None:
        rng = random.Random(7)
        for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 30.0)]:
            d = backoff_delay(attempt, 1.0, 30.0, rng)
            assert full / 2 <= d <= full

    def test_jitter_spreads_retries(self) -> None:
        rng = random.Random(1)
        assert len({round(backoff_delay(3, 1.0, 60.0, rng), 6) for _ in range(20)}) > 10

    def test_attempt_is_one_based(self) -> None:
        with pytest.raises(ValueError, match="1-based"):
            backoff_delay(0, 1.0, 2.0)


class TestCircuitBreaker:
    def test_opens_after_threshold_then_allows_one_trial(self) -> None:
        now = [100.0]
        cb = CircuitBreaker(3, 10.0, lambda: now[0])
        for _ in range(2):
            cb.record_failure()
        assert cb.allowed_batch(50) == 50
        cb.record_failure()
        assert (cb.state, cb.allowed_batch(50)) == (CircuitState.OPEN, 0)
        assert cb.seconds_until_trial() == pytest.approx(10.0)
        now[0] += 10
        assert (cb.state, cb.allowed_batch(50)) == (CircuitState.HALF_OPEN, 1)
        cb.record_failure()
        assert cb.state is CircuitState.OPEN
        now[0] += 10
        cb.record_success()
        assert (cb.state, cb.allowed_batch(50)) == (CircuitState.CLOSED, 50)


class TestBatchDeadline:
    def test_is_the_start_plus_the_timeout_rounded_up_to_a_second_from_five_seconds_as_aiohttp(self) -> None:
        assert batch_deadline(100.25, 10.0) == 111.0
        assert batch_deadline(100.25, 5.0) == 106.0
        assert batch_deadline(100.25, 4.5) == pytest.approx(104.75)

    def test_a_post_gets_what_is_left_and_none_once_the_deadline_passed(self) -> None:
        timeout = post_timeout(111.0, 103.5)
        assert timeout is not None
        assert (timeout.total, timeout.connect, timeout.sock_read, timeout.sock_connect) == (
            7.5,
            None,
            None,
            None,
        )
        assert timeout.ceil_threshold == math.inf  # the deadline is rounded once, not per post
        assert post_timeout(111.0, 111.0) is None
        assert post_timeout(111.0, 112.0) is None
