"""Delivery workers: one asyncio task per webhook partner, each with its own HTTP connection
pool, circuit breaker and concurrency limit, so a slow or failing partner never delays
another.

A worker leases a batch of due deliveries (only the head of each (recipient, child) order
key, so order holds), posts them concurrently, then completes or fails each lease. At most
``concurrency`` posts are in flight: that many runners take the batch's leases in turn
(one coroutine per runner, not one task per delivery, and no post queued inside the
connection pool). Every post of a batch MUST end by the batch's deadline, the batch's start
plus ``timeout_seconds`` (rounded up to a whole second from 5 s, as aiohttp rounds its own
timeouts): a post that waits for a runner spends its own timeout waiting, exactly as when it
waited for a pooled connection, so a batch never outlives its leases. It sleeps
until woken by a new accept, the next retry falls due, or the poll interval passes (which
also picks up replays made by the CLI from another process).

Successes are completed in groups (``CompletionBatch``): one ``Queue.complete_many`` per
group instead of one store transaction per delivery. A finished delivery waits at most
``COMPLETE_LINGER_SECONDS`` for the others of its batch: the first success of a group
starts a timer, and the group is flushed when the timer fires or when every post of the
batch has finished, whichever comes first. So a slow partner response never holds
finished deliveries uncommitted for longer than that (plus one commit): a success MUST NOT
wait for the slowest post of its batch. The next batch is leased only after every outcome
of this one is committed, so a child's next message is never leased before its previous
one is delivered (order per (recipient, child) holds as before).
Failures are still recorded one by one (``Queue.fail``): they are rare, and each needs its
own retry time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Protocol, Self

import aiohttp
import structlog
from cryptography.exceptions import InvalidTag
from yarl import URL

from gateway.audit import AuditEvent
from gateway.config import PartnerRuntime
from gateway.crypto import Keyring, UnknownKey
from gateway.delivery.backoff import backoff_delay
from gateway.delivery.circuit import CircuitBreaker, CircuitState
from gateway.delivery.webhook import WebhookSigner, post_webhook
from gateway.errors import ConfigError, DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from gateway.metrics import Metrics
from gateway.store.base import RENDER_FAILED_MEDIA_TYPE, Lease, Queue

log = structlog.get_logger("gateway.delivery")

COMPLETE_LINGER_SECONDS = 0.05
"""The longest a finished delivery waits for others before its completion is committed."""


def batch_deadline(loop_now: float, timeout: float, ceil_threshold: float = 5.0) -> float:
    """When every post of a batch started at ``loop_now`` (event-loop time) must have
    ended: as ``aiohttp.ClientTimeout(total=timeout)`` would time a request started then,
    rounded up to the whole second when ``timeout >= ceil_threshold`` (aiohttp's default)."""
    deadline = loop_now + timeout
    return math.ceil(deadline) if timeout >= ceil_threshold else deadline


def post_timeout(deadline: float, loop_now: float) -> aiohttp.ClientTimeout | None:
    """The total timeout of a post started at ``loop_now`` that must end by ``deadline``, or
    ``None`` when the deadline has passed (the post MUST NOT be sent: it timed out waiting).
    No second rounding: the deadline is already rounded."""
    remaining = deadline - loop_now
    return aiohttp.ClientTimeout(total=remaining, ceil_threshold=math.inf) if remaining > 0 else None


class CompletionBatch:
    """Collects the successful leases of one leased batch and completes them together
    (see the module docstring for when it flushes). Use as ``async with``: leaving the
    block flushes what is left and waits for every flush started, so when it returns every
    success has been committed (or the store's error is raised)."""

    def __init__(self, queue: Queue, recipient: str, linger: float = COMPLETE_LINGER_SECONDS) -> None:
        self._queue = queue
        self._recipient = recipient
        self._linger = linger
        self._pending: list[tuple[Lease, AuditEvent]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._start_flush()
        flushes, self._flushes = self._flushes, []
        # Every flush is awaited even if one fails, so none is left running unobserved.
        results = await asyncio.gather(*flushes, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def add(self, lease: Lease, audit: AuditEvent) -> None:
        """A delivery succeeded: commit it within ``linger`` seconds (or at the block's end)."""
        self._pending.append((lease, audit))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._pending:
            self._start_flush()

    def _start_flush(self) -> None:
        items, self._pending = self._pending, []
        self._flushes.append(asyncio.create_task(self._flush(items), name=f"complete:{self._recipient}"))

    async def _flush(self, items: list[tuple[Lease, AuditEvent]]) -> None:
        done = await self._queue.complete_many(items)
        for (lease, _), ok in zip(items, done, strict=True):
            if not ok:
                log.warning("delivery.lease_lost", delivery_id=lease.delivery_id, recipient=self._recipient)


class PartnerWorker:
    def __init__(
        self,
        partner: PartnerRuntime,
        queue: Queue,
        keyring: Keyring,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.partner = partner
        self._settings = partner.delivery.settings
        self._queue = queue
        self._keyring = keyring
        self._metrics = metrics
        self._clock = clock
        self._wake = asyncio.Event()
        self.circuit = CircuitBreaker(
            self._settings.circuit_failure_threshold, self._settings.circuit_reset_seconds, clock
        )
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        # Built once per worker, not per delivery: the signer decodes the secret and keys
        # its HMAC, the URL is parsed once, and the metric children are dictionary look-ups
        # under a lock.
        secret = partner.delivery.secret
        self._signer = WebhookSigner(secret.reveal()) if secret is not None else None
        self._url = URL(partner.delivery.url) if partner.delivery.url is not None else None
        self._delivered = metrics.deliveries.labels(partner.id, "delivered")
        self._delivery_seconds = metrics.delivery_seconds.labels(partner.id)
        self._circuit_open = metrics.circuit_open.labels(partner.id)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._settings.concurrency, ttl_dns_cache=300)
        # No cookies, no environment proxies: each partner's session is isolated and plain.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        self._task = asyncio.create_task(self._run(), name=f"deliver:{self.partner.id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the worker alive; the store may be restarting
                log.error("delivery.worker_error", recipient=self.partner.id, error=type(exc).__name__)
                worked = False
            if not worked:
                await self._sleep()

    async def _sleep(self) -> None:
        timeout = self._settings.poll_interval_seconds
        if self.circuit.state is CircuitState.OPEN:
            timeout = min(timeout, max(0.05, self.circuit.seconds_until_trial()))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def run_once(self) -> bool:
        """Lease and deliver one batch. Returns False when there was nothing to do."""
        allowed = self.circuit.allowed_batch(self._settings.batch_size)
        self._circuit_open.set(0 if allowed else 1)
        if not allowed:
            return False
        leases = await self._queue.lease(self.partner.id, allowed, self._settings.lease_seconds)
        if not leases:
            return False
        async with CompletionBatch(self._queue, self.partner.id) as completions:
            await self._post_all(leases, completions)
        return True

    async def _post_all(self, leases: list[Lease], completions: CompletionBatch) -> None:
        """Post every lease, at most ``concurrency`` at a time, each by the batch's deadline
        (see the module docstring). Every lease is attempted once unless a runner raises
        something other than a ``DeliveryError`` (then its error is raised, as before)."""
        loop = asyncio.get_running_loop()
        deadline = batch_deadline(loop.time(), self._settings.timeout_seconds)
        # The batch's start, for every attempt's duration: as when each post had its own
        # task started with the batch, the time spent waiting for a free slot counts.
        started = self._clock()
        todo = iter(leases)  # shared: each lease is taken by exactly one runner

        async def runner() -> None:
            for lease in todo:
                await self._deliver(lease, completions, started, post_timeout(deadline, loop.time()))

        runners = min(self._settings.concurrency, len(leases))
        if runners == 1:
            await runner()
        else:
            await asyncio.gather(*(runner() for _ in range(runners)))

    async def _deliver(
        self,
        lease: Lease,
        completions: CompletionBatch,
        started: float,
        timeout: aiohttp.ClientTimeout | None,
    ) -> None:
        assert self._session is not None
        url = self._url
        try:
            if lease.media_type == RENDER_FAILED_MEDIA_TYPE:
                raise PermanentDeliveryError("the payload could not be rendered", code="render-failed")
            payload = self._open(lease)
            if timeout is None:
                raise RetryableDeliveryError("the partner did not answer in time", code="timeout")
            assert url is not None
            assert self._signer is not None
            headers = self._signer.headers(lease.message_id, payload, lease.media_type)
            await post_webhook(self._session, url, headers, payload, timeout)
        except DeliveryError as exc:
            await self._failed(lease, exc, started)
            return
        self.circuit.record_success()
        finished = self._clock()
        self._delivery_seconds.observe(finished - started)
        self._delivered.inc()
        self._metrics.end_to_end_seconds.observe(max(0.0, finished - lease.queued_at))
        completions.add(
            lease,
            AuditEvent(
                "delivery.succeeded",
                {"delivery_id": lease.delivery_id, "attempt": lease.attempt},
                lease.message_id,
                self.partner.id,
            ),
        )

    def _open(self, lease: Lease) -> bytes:
        try:
            return self._keyring.open(lease.payload, lease.delivery_id)
        except UnknownKey:
            # Another instance rotated keys; this one gets the key when it is restarted with
            # the new keyring. Retried on the usual schedule instead of dead-lettered at once.
            raise RetryableDeliveryError(
                "the payload's key is not in this instance's keyring yet", code="payload-key-unknown"
            ) from None
        except (InvalidTag, ConfigError):
            raise PermanentDeliveryError(
                "the stored payload cannot be decrypted", code="payload-unreadable"
            ) from None

    async def _failed(self, lease: Lease, exc: DeliveryError, started: float) -> None:
        self.circuit.record_failure()
        self._delivery_seconds.observe(self._clock() - started)
        permanent = isinstance(exc, PermanentDeliveryError)
        retry_at = (
            None
            if permanent
            else self._clock()
            + backoff_delay(
                lease.attempt, self._settings.base_delay_seconds, self._settings.max_delay_seconds
            )
        )
        state = await self._queue.fail(
            lease,
            exc.code,
            retry_at,
            AuditEvent(
                "delivery.attempt_failed",
                {
                    "delivery_id": lease.delivery_id,
                    "attempt": lease.attempt,
                    "error": exc.code,
                    "permanent": permanent,
                },
                lease.message_id,
                self.partner.id,
            ),
        )
        self._metrics.deliveries.labels(self.partner.id, "dead" if state == "dead" else "failed").inc()
        log.info(
            "delivery.failed",
            delivery_id=lease.delivery_id,
            recipient=self.partner.id,
            attempt=lease.attempt,
            error=exc.code,
            state=state,
        )


class CircuitView(Protocol):
    """What the API and console read of a partner's circuit."""

    @property
    def state(self) -> CircuitState: ...


class WorkerHandle(Protocol):
    """One webhook partner's worker as the API and console see it, wherever it runs."""

    @property
    def circuit(self) -> CircuitView: ...

    def wake(self) -> None:
        """Look for due deliveries now. MUST NOT block or raise: called from handlers."""


class DeliveryWorkers(Protocol):
    """The delivery side as the rest of the gateway uses it: ``Dispatcher`` (workers on this
    event loop) or ``RemoteDispatcher`` (workers in a delivery process)."""

    @property
    def workers(self) -> Mapping[str, WorkerHandle]: ...

    def notify(self, recipient: str) -> None:
        """A delivery for ``recipient`` is ready. MUST NOT block: ingest calls it per message."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def remote_metrics(self) -> str | None:
        """The delivery families kept in another process (exposition text), or None."""

    def remote_delivery_totals(self, result: str) -> Mapping[str, float]:
        """Per-partner ``gateway_deliveries`` counts for ``result`` kept outside this
        process's registry (empty when the workers run here)."""


class Dispatcher:
    """Owns one ``PartnerWorker`` per webhook partner, on this event loop."""

    def __init__(
        self, partners: Mapping[str, PartnerRuntime], queue: Queue, keyring: Keyring, metrics: Metrics
    ) -> None:
        self.workers = {
            pid: PartnerWorker(p, queue, keyring, metrics)
            for pid, p in partners.items()
            if p.delivery.mode == "webhook"
        }

    def notify(self, recipient: str) -> None:
        worker = self.workers.get(recipient)
        if worker is not None:
            worker.wake()

    def start(self) -> None:
        for w in self.workers.values():
            w.start()
            w.wake()

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers.values()))

    async def remote_metrics(self) -> str | None:
        return None  # the workers write this process's registry

    def remote_delivery_totals(self, result: str) -> Mapping[str, float]:
        return {}
