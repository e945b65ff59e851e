"""The last hour of queue figures per partner, kept in the gateway's memory for the
operator overview's charts and per-minute rates.

Contracts: samples hold counts and ages only (never ids or content); at most
``horizon / interval`` samples per partner are kept; a store that does not answer leaves a
gap (no sample), never an invented zero.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from gateway.store.base import QueueStats

log = structlog.get_logger("gateway.console")

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    ready: int
    in_flight: int
    dead: int
    held: int
    oldest_age: float
    delivered_total: float
    failed_total: float


class QueueSamples:
    def __init__(
        self, interval: float, horizon: float = HOUR, clock: Callable[[], float] = time.time
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._keep = max(2, int(horizon / interval) + 1)
        self._by_partner: dict[str, deque[Sample]] = {}

    def record(
        self,
        stats: Sequence[QueueStats],
        partners: Sequence[str],
        delivered: Mapping[str, float],
        failed: Mapping[str, float],
    ) -> None:
        now = self._clock()
        by = {s.recipient: s for s in stats}
        for pid in partners:
            s = by.get(pid)
            sample = Sample(
                now,
                s.ready if s else 0,
                s.leased if s else 0,
                s.dead if s else 0,
                s.held if s else 0,
                s.oldest_ready_age_seconds if s else 0.0,
                delivered.get(pid, 0.0),
                failed.get(pid, 0.0),
            )
            self._by_partner.setdefault(pid, deque(maxlen=self._keep)).append(sample)

    def series(self, partner: str) -> list[Sample]:
        return list(self._by_partner.get(partner, ()))

    def per_minute(self, partner: str) -> tuple[float, float]:
        """(delivered, failed) per minute over the last minute of samples (or what there is)."""
        samples = self._by_partner.get(partner)
        if not samples or len(samples) < 2:
            return 0.0, 0.0
        last = samples[-1]
        first = next((s for s in samples if last.at - s.at <= 60.0), samples[0])
        if first is last:
            first = samples[-2]
        minutes = max((last.at - first.at) / 60.0, 1e-9)
        return (
            max(0.0, last.delivered_total - first.delivered_total) / minutes,
            max(0.0, last.failed_total - first.failed_total) / minutes,
        )


async def sample_every(samples: QueueSamples, take: Callable[[], Awaitable[None]]) -> None:
    """Call ``take`` every ``samples.interval`` seconds until cancelled; a failure is logged
    by class and leaves a gap."""
    while True:
        try:
            await take()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the sampler
            log.warning("console.sample_failed", error=type(exc).__name__)
        await asyncio.sleep(samples.interval)
