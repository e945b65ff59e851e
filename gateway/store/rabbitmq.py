"""The scale-out queue: ``store.backend: rabbitmq-postgresql``.

PostgreSQL (``gateway.store.postgres``) stays the record of every message, decision,
delivery state, consent, review and the audit chain; RabbitMQ carries the deliveries (see
``gateway.store.rabbitmq_topology`` for the queues and exchanges). How the contracts of
``gateway.store.base`` hold:

* **Accept = committed and confirmed.** ``accept`` commits in PostgreSQL (deliveries
  recorded ``published = false``: the outbox), then publishes one message per ready
  delivery and awaits the broker's confirms together. Only then does it return (202 /
  ``AA``). If the broker does not confirm, it raises ``BrokerUnavailable`` (HTTP 503 with
  ``Retry-After``): nothing is lost — the relay publishes the outbox when the broker is
  back, and the client's retry with the same Idempotency-Key returns the same message id
  (and publishes what is still unpublished, or answers 503 again).
* **Ack after the outcome.** ``lease`` hands out deliveries whose AMQP message this
  instance holds unacknowledged (per-partner consumer, bounded prefetch). The message is
  acknowledged only after ``complete``, ``ack`` or ``fail`` committed the outcome in
  PostgreSQL (and, for a retry or a dead letter, after the broker confirmed the parked or
  dead-letter copy). A crashed instance's unacknowledged messages return to the queue: that
  is its lease expiry.
* **At least once; the consumer de-duplicates.** A message can be published twice (relay
  after a crash between confirm and the ``published`` update, a nudge, a park), so every
  message is checked against PostgreSQL before it is leased: the conditional lease UPDATE
  (state, due time, lease token) is the only way out, so one delivery is never out twice;
  a message for a delivered, dead, withdrawn... delivery is acknowledged and dropped.
* **Order per (recipient, child).** A delivery whose order key has an older open delivery
  is not leased but parked (until that head is due, or its lease ends); completing,
  acknowledging or dead-lettering the head publishes its successor at once (a "nudge").
* **Retries** are parked copies in the TTL ladder, the time chosen by the worker
  (``gateway.delivery.backoff``) and the budget the partner's ``max_attempts`` (recorded in
  PostgreSQL, as on every backend). Quorum ``delivery-limit`` is not used: it counts
  redeliveries after crashes too, and a crash is not a failed attempt.
* **Dead letters**: state ``dead`` in PostgreSQL (operators replay or discard from there,
  as today; ``replay`` republishes), plus a copy on ``{p}.dead.{partner}`` with the last
  error code and attempts in headers.

A message carries only ids: payloads stay encrypted in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage

from gateway.audit import AuditEvent
from gateway.crypto import Sealed
from gateway.store.base import (
    AcceptOutcome,
    DecisionRecord,
    DeliveryRecord,
    DeliveryState,
    InboundRecord,
    Lease,
    StoredConsent,
)
from gateway.store.postgres import PostgresBackend
from gateway.store.postgres_common import wall_clock
from gateway.store.rabbitmq_broker import (
    Broker,
    BrokerUnavailable,
    Outgoing,
    PartnerConsumer,
    delivery_id_of,
)
from gateway.store.rabbitmq_topology import PARK_LEVELS_MS, Topology

__all__ = ["BrokerUnavailable", "RabbitQueueBackend"]

log = structlog.get_logger("gateway.store.rabbitmq")

_SHORT_PARK = PARK_LEVELS_MS[0] / 1000

_OPEN_OLDER = (
    "SELECT 1 FROM deliveries e WHERE e.order_key = d.order_key AND e.seq < d.seq"
    " AND e.state IN ('ready', 'leased')"
)
_LEASABLE = "((d.state = 'ready' AND d.next_attempt_at <= $2) OR (d.state = 'leased' AND d.lease_until < $2))"

_DUE_SQL = f"""
SELECT d.id FROM deliveries d
WHERE d.recipient = $1 AND {_LEASABLE} AND NOT EXISTS ({_OPEN_OLDER})
ORDER BY d.seq LIMIT $3
"""  # noqa: S608 - fixed fragments

_LEASE_SQL = f"""
WITH pick AS (
    SELECT d.seq FROM deliveries d
    WHERE d.id = ANY($1::text[]) AND d.recipient = $5 AND {_LEASABLE} AND NOT EXISTS ({_OPEN_OLDER})
    ORDER BY d.seq
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries q
SET state = 'leased', lease_until = $3, lease_token = $4, attempts = q.attempts + 1, updated_at = $2
FROM pick WHERE q.seq = pick.seq
RETURNING q.seq, q.id, q.message_id, q.attempts, q.max_attempts, q.media_type, q.key_id, q.payload,
          q.created_at
"""  # noqa: S608 - fixed fragments

_CLASSIFY_SQL = """
SELECT d.id, d.state, d.next_attempt_at, d.lease_until, h.state, h.next_attempt_at, h.lease_until
FROM deliveries d
LEFT JOIN LATERAL (
    SELECT e.state, e.next_attempt_at, e.lease_until FROM deliveries e
    WHERE e.order_key = d.order_key AND e.seq < d.seq AND e.state IN ('ready', 'leased')
    ORDER BY e.seq LIMIT 1
) h ON TRUE
WHERE d.id = ANY($1::text[])
"""

_SUCCESSOR_SQL = """
SELECT s.id, s.message_id, s.recipient, s.next_attempt_at FROM deliveries d
JOIN LATERAL (
    SELECT e.id, e.message_id, e.recipient, e.next_attempt_at FROM deliveries e
    WHERE e.order_key = d.order_key AND e.state = 'ready' ORDER BY e.seq LIMIT 1
) s ON TRUE
WHERE d.id = ANY($1::text[])
"""

_TERMINAL = frozenset(
    {
        DeliveryState.DELIVERED,
        DeliveryState.DEAD,
        DeliveryState.DISCARDED,
        DeliveryState.WITHDRAWN,
        DeliveryState.REJECTED,
        DeliveryState.HELD,
    }
)
"""States in which a consumed copy is simply dropped (a held delivery is published again
when approved)."""


_RELEASE_OWN_SQL = """
WITH target AS (
    SELECT seq FROM deliveries
    WHERE state = 'leased' AND recipient = ANY($1::text[]) AND left(lease_token, length($2)) = $2
    ORDER BY seq
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries q SET state = 'ready', lease_token = NULL, lease_until = NULL, published = FALSE
FROM target WHERE q.seq = target.seq
"""
"""As ``postgres._RELEASE_OWN_SQL``, and back into the outbox."""


@dataclass(slots=True)
class _Held:
    message: AbstractIncomingMessage
    token: str
    lease_until: float
    recipient: str


class RabbitQueueBackend(PostgresBackend):
    """``Backend`` on PostgreSQL (state) and RabbitMQ (the queue); see the module docstring.

    Both URLs are secrets: they MUST NOT appear in logs or errors.
    """

    def __init__(
        self,
        dsn: str,
        amqp_url: str,
        *,
        pool_size: int = 10,
        prefix: str = "gateway",
        prefetch: int = 50,
        confirm_timeout: float = 5.0,
        lease_wait: float = 0.5,
        lease_linger: float = 0.05,
        relay_interval: float = 1.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        super().__init__(dsn, pool_size=pool_size)
        self.broker = Broker(
            amqp_url,
            Topology(prefix),
            prefetch=prefetch,
            confirm_timeout=confirm_timeout,
            reconnect_interval=reconnect_interval,
        )
        self._lease_wait = lease_wait
        self._lease_linger = lease_linger
        self._relay_interval = relay_interval
        # Not relayed while a fresh accept may still be awaiting its own confirms.
        self._relay_grace = confirm_timeout
        self._held: dict[str, _Held] = {}
        self._relay: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dsn='**********', broker={self.broker!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        await super().open()
        try:
            await self.broker.open()
        except BaseException:
            await super().close()
            raise
        self._relay = asyncio.create_task(self._relay_loop(), name="rabbitmq-outbox-relay")

    async def close(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
            self._relay = None
        # Unacknowledged messages go back to their queues when the channels close.
        self._held.clear()
        await self.broker.close()
        await super().close()

    async def ping(self) -> None:
        await super().ping()
        if not self.broker.connected:
            raise BrokerUnavailable("the message broker is not connected")

    # -- outbox ------------------------------------------------------------------------

    async def accept(
        self,
        inbound: InboundRecord,
        decisions: Sequence[DecisionRecord],
        deliveries: Sequence[DeliveryRecord],
        audit: Sequence[AuditEvent],
    ) -> AcceptOutcome:
        """Commit, then publish and await the confirms (see the module docstring); raises
        ``BrokerUnavailable`` after the commit when the broker does not confirm."""
        outcome = await super().accept(inbound, decisions, deliveries, audit)
        if outcome.duplicate:
            # The first attempt may have been answered 503: publish what it could not.
            await self.publish_outbox(message_id=outcome.message_id)
            return outcome
        ready = [
            Outgoing(d.delivery_id, d.message_id, d.recipient)
            for d in deliveries
            if not d.dead_error and not d.review_role
        ]
        await self.broker.publish(ready)
        await self._mark_published([o.delivery_id for o in ready])
        return outcome

    async def _mark_published(self, ids: Sequence[str]) -> None:
        if ids:
            await self.pool.execute(
                "UPDATE deliveries SET published = TRUE WHERE id = ANY($1::text[])", list(ids)
            )

    async def publish_outbox(
        self, *, message_id: str | None = None, delivery_id: str | None = None, older_than: float = 0.0
    ) -> int:
        """Publish ready deliveries not yet confirmed by the broker (oldest first, 500 at a
        time), then mark them published. Rows are locked while publishing so two relays
        (instances) never publish the same row at once. Raises ``BrokerUnavailable``."""
        now = wall_clock()
        async with self._tx() as conn:
            rows = await conn.fetch(
                "SELECT id, message_id, recipient, next_attempt_at FROM deliveries"
                " WHERE state = 'ready' AND NOT published AND updated_at <= $1"
                " AND ($2::text IS NULL OR message_id = $2) AND ($3::text IS NULL OR id = $3)"
                " ORDER BY seq LIMIT 500 FOR UPDATE SKIP LOCKED",
                now - older_than,
                message_id,
                delivery_id,
            )
            if not rows:
                return 0
            await self.broker.publish([Outgoing(r[0], r[1], r[2], r[3] - now) for r in rows])
            await conn.execute(
                "UPDATE deliveries SET published = TRUE WHERE id = ANY($1::text[])", [r[0] for r in rows]
            )
        return len(rows)

    async def _relay_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.broker.reconnected.wait(), self._relay_interval)
            self.broker.reconnected.clear()
            try:
                while await self.publish_outbox(older_than=self._relay_grace) == 500:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep relaying; broker or database may be restarting
                log.warning("rabbitmq.relay_failed", error=type(exc).__name__)

    async def _nudge(self, delivery_ids: Sequence[str]) -> None:
        """Publish the next ready delivery of each given delivery's order key now, so a
        child's next message need not wait for its parked copy. Best effort: the parked
        copies are the guarantee."""
        if not delivery_ids:
            return
        try:
            now = wall_clock()
            rows = await self.pool.fetch(_SUCCESSOR_SQL, list(delivery_ids))
            await self.broker.publish(
                [Outgoing(r[0], r[1], r[2], r[3] - now) for r in {r[0]: r for r in rows}.values()]
            )
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.info("rabbitmq.nudge_skipped", error=type(exc).__name__)

    # -- leasing -----------------------------------------------------------------------

    async def lease(self, recipient: str, limit: int, lease_seconds: float) -> list[Lease]:
        """Lease up to ``limit`` of the deliveries whose messages this instance holds.

        When PostgreSQL says deliveries are due, waits (up to ``lease_wait``) for their
        messages to arrive: all of them, or no further arrival for ``lease_linger`` once
        some are here (the others may be prefetched by another instance)."""
        consumer = await self.broker.consumer(recipient)
        async with consumer.lock:
            now = wall_clock()
            for did, held in list(self._held.items()):
                if held.recipient == recipient and held.lease_until < now:
                    # Expired: the message is still ours and unacknowledged; lease it again.
                    del self._held[did]
                    consumer.give_back(held.message)
            due = await self.pool.fetch(_DUE_SQL, recipient, now, limit)
            if due:
                await consumer.wait_for({r[0] for r in due}, self._lease_wait, linger=self._lease_linger)
            leases: list[tuple[int, Lease]] = []
            # One pass over what is buffered now: messages set aside and requeued (broker
            # refusing to park) come back at once, and must not keep this call going.
            budget = len(consumer)
            while len(leases) < limit and budget > 0:
                n = min(limit - len(leases), budget)
                budget -= n
                leases += await self._lease_batch(consumer, n, lease_seconds)
        return [lease for _, lease in sorted(leases, key=lambda x: x[0])]

    async def _lease_batch(
        self, consumer: PartnerConsumer, n: int, lease_seconds: float
    ) -> list[tuple[int, Lease]]:
        batch = consumer.take(n)
        if not batch:
            return []
        now = wall_clock()
        until = now + lease_seconds
        token = self.new_lease_token()
        ids = sorted({delivery_id_of(m) for m in batch})
        try:
            rows = await self.pool.fetch(_LEASE_SQL, ids, now, until, token, consumer.recipient)
        except BaseException:
            # The database is unreachable (or the call was cancelled): the messages are still
            # ours and unacknowledged; put them back, or nothing would ever offer them again.
            _give_back(consumer, batch)
            raise
        got = {r[1]: r for r in rows}
        out: list[tuple[int, Lease]] = []
        rest: list[AbstractIncomingMessage] = []
        for message in batch:
            r = got.pop(delivery_id_of(message), None)
            if r is None:
                rest.append(message)  # includes a second copy of one just leased
                continue
            lease = Lease(
                r[1], r[2], consumer.recipient, r[3], r[4], r[5], Sealed(r[6], r[7]), token, until, r[8]
            )
            self._held[lease.delivery_id] = _Held(message, token, until, consumer.recipient)
            out.append((r[0], lease))
        await self._set_aside(consumer, rest)
        return out

    async def _set_aside(
        self, consumer: PartnerConsumer, messages: Sequence[AbstractIncomingMessage]
    ) -> None:
        """Messages that cannot be leased now: park them until they can be, or drop those
        of finished deliveries; each acknowledged only after its parked copy is confirmed."""
        if not messages:
            return
        recipient = consumer.recipient
        now = wall_clock()
        try:
            found = await self.pool.fetch(_CLASSIFY_SQL, [delivery_id_of(m) for m in messages])
        except BaseException:
            _give_back(consumer, messages)
            raise
        rows = {r[0]: r for r in found}
        park: list[tuple[AbstractIncomingMessage, Outgoing]] = []
        drop: list[AbstractIncomingMessage] = []
        for message in messages:
            did = delivery_id_of(message)
            row = rows.get(did)
            delay = None if row is None else _wait_for(row, now)
            if delay is None:
                drop.append(message)
                if row is None:
                    log.warning("rabbitmq.unknown_delivery", delivery_id=did, recipient=recipient)
            else:
                mid = str((message.headers or {}).get("x-gateway-message-id", ""))
                park.append((message, Outgoing(did, mid, recipient, delay)))
        try:
            await self.broker.publish([o for _, o in park])
        except BrokerUnavailable:
            for message, _ in park:
                await self.broker.settle(message, requeue=True)
        else:
            drop += [m for m, _ in park]
        for message in drop:
            await self.broker.settle(message)

    # -- outcomes ----------------------------------------------------------------------

    def _take_held(self, lease: Lease) -> AbstractIncomingMessage | None:
        held = self._held.get(lease.delivery_id)
        if held is None or held.token != lease.lease_token:
            return None
        del self._held[lease.delivery_id]
        return held.message

    async def complete(self, lease: Lease, audit: AuditEvent) -> bool:
        (done,) = await self.complete_many([(lease, audit)])
        return done

    async def complete_many(self, items: Sequence[tuple[Lease, AuditEvent]]) -> list[bool]:
        """Commit all in PostgreSQL (one transaction), then nudge the completed ones'
        successors, then acknowledge the messages: never an ack before the commit. If the
        commit raises, the messages stay held (their leases expire as usual)."""
        done = await super().complete_many(items)
        messages = [self._take_held(lease) for lease, _ in items]
        await self._nudge([lease.delivery_id for (lease, _), ok in zip(items, done, strict=True) if ok])
        # Acknowledged after the commit; a lost lease's copy is redundant (another copy holds
        # the live lease, or the delivery is finished).
        for message in messages:
            if message is not None:
                await self.broker.settle(message)
        return done

    async def ack(self, recipient: str, delivery_id: str, audit: AuditEvent) -> bool:
        done = await super().ack(recipient, delivery_id, audit)
        held = self._held.get(delivery_id)
        if done:
            await self._nudge([delivery_id])
            if held is not None and held.recipient == recipient:
                del self._held[delivery_id]
                await self.broker.settle(held.message)
        return done

    async def fail(self, lease: Lease, error_code: str, retry_at: float | None, audit: AuditEvent) -> str:
        state = await super().fail(lease, error_code, retry_at, audit)
        message = self._take_held(lease)
        if state == DeliveryState.READY.value:
            due = retry_at if retry_at is not None else wall_clock()
            try:
                await self.broker.publish(
                    [Outgoing(lease.delivery_id, lease.message_id, lease.recipient, due - wall_clock())]
                )
            except BrokerUnavailable:
                # Recorded for the relay instead; if even that fails, the message goes back.
                try:
                    await self.pool.execute(
                        "UPDATE deliveries SET published = FALSE WHERE id = $1 AND state = 'ready'",
                        lease.delivery_id,
                    )
                except Exception:  # noqa: BLE001 - the database is down too: requeue instead
                    if message is not None:
                        await self.broker.settle(message, requeue=True)
                    return state
        elif state == DeliveryState.DEAD.value:
            item = Outgoing(lease.delivery_id, lease.message_id, lease.recipient)
            try:
                await self.broker.dead_letter(item, error_code, lease.attempt)
            except BrokerUnavailable:
                log.warning("rabbitmq.dead_letter_copy_skipped", delivery_id=lease.delivery_id)
            await self._nudge([lease.delivery_id])
        if message is not None:
            await self.broker.settle(message)
        return state

    async def release_expired_leases(self) -> int:
        """Return expired leases to the queue AND to the outbox (their messages may have
        been acknowledged by a lease that was lost), then publish them."""
        async with self._tx() as conn:
            status = await conn.execute(
                "WITH target AS ("
                " SELECT seq FROM deliveries WHERE state='leased' AND lease_until < $1"
                " ORDER BY seq FOR UPDATE SKIP LOCKED)"
                " UPDATE deliveries q SET state='ready', lease_token=NULL, lease_until=NULL, published=FALSE"
                " FROM target WHERE q.seq = target.seq",
                wall_clock(),
            )
        released = int(status.split()[-1])
        if released:
            with contextlib.suppress(BrokerUnavailable):
                await self.publish_outbox()
        return released

    async def release_leases_of(self, recipients: Sequence[str]) -> int:
        """See ``PostgresBackend.release_leases_of`` (only this holder's leases); the
        released deliveries go back to the outbox too and are published now (the killed
        holder's unacknowledged copies also return from the broker: the conditional lease
        keeps one delivery from going out twice at once)."""
        if not recipients:
            return 0
        async with self._tx() as conn:
            status = await conn.execute(_RELEASE_OWN_SQL, sorted(set(recipients)), f"{self.lease_holder}.")
        released = int(status.split()[-1])
        if released:
            with contextlib.suppress(BrokerUnavailable):
                await self.publish_outbox()
        return released

    async def _republish(self, delivery_id: str) -> None:
        """A delivery made ready again (replay, approval): back into the outbox, then
        published now if the broker confirms (else by the relay)."""
        await self.pool.execute(
            "UPDATE deliveries SET published = FALSE WHERE id = $1 AND state = 'ready'", delivery_id
        )
        with contextlib.suppress(BrokerUnavailable):
            await self.publish_outbox(delivery_id=delivery_id)

    async def replay(self, delivery_id: str, reason: str, actor: str) -> bool:
        """Dead letter -> queue again (same ids), republished to the broker."""
        replayed = await super().replay(delivery_id, reason, actor)
        if replayed:
            await self._republish(delivery_id)
        return replayed

    async def requeue_with_payload(
        self,
        delivery_id: str,
        decision: DecisionRecord,
        payload: Sealed,
        media_type: str,
        audit: Sequence[AuditEvent],
        consent_records: Sequence[str] = (),
    ) -> bool:
        """Replay from the original (same ids, new payload and decision), republished to the
        broker (the decision is recorded in PostgreSQL, as every decision)."""
        requeued = await super().requeue_with_payload(
            delivery_id, decision, payload, media_type, audit, consent_records
        )
        if requeued:
            await self._republish(delivery_id)
        return requeued

    async def resolve_review(self, delivery_id: str, approve: bool, reason: str, actor: str) -> bool:
        resolved = await super().resolve_review(delivery_id, approve, reason, actor)
        if resolved and approve:
            await self._republish(delivery_id)
        return resolved

    async def record_consent(self, record: StoredConsent, recipients_in_scope: Sequence[str]) -> list[str]:
        cancelled = await super().record_consent(record, recipients_in_scope)
        await self._nudge(cancelled)
        return cancelled


def _give_back(consumer: PartnerConsumer, messages: Sequence[AbstractIncomingMessage]) -> None:
    """Return taken messages to the head of the buffer, in their order."""
    for message in reversed(messages):
        consumer.give_back(message)


def _wait_for(row: Any, now: float) -> float | None:
    """How long a consumed copy must be parked; None to drop it (see ``_CLASSIFY_SQL``)."""
    _, state, next_at, lease_until, head_state, head_next, head_until = row
    if state in _TERMINAL:
        return None
    if state == DeliveryState.READY and next_at > now:
        return float(next_at - now)
    if state == DeliveryState.LEASED and lease_until is not None and lease_until >= now:
        return max(_SHORT_PARK, float(lease_until - now))
    if head_state == DeliveryState.LEASED and head_until is not None:
        return max(_SHORT_PARK, float(head_until - now))
    if head_state == DeliveryState.READY and head_next > now:
        return max(_SHORT_PARK, float(head_next - now))
    return _SHORT_PARK
