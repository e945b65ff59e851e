"""The scale-out store: PostgreSQL via asyncpg, shared by several gateway instances.

Implements ``Store``, ``Queue`` and the rest of ``Backend`` (see ``gateway.store.base`` for
the contracts); later the queue part can move to RabbitMQ behind the same protocols. The
schema is versioned (``gateway.store.postgres_schema``) and applied by ``gateway db
upgrade``, never by ``open``.

How the contracts hold with several writers:

* ``accept`` is one transaction (``COMMIT`` is durable with ``synchronous_commit`` on,
  PostgreSQL's default; ``open`` refuses a database where it is off). Its first write is
  the idempotency row: the primary key on (source, key) makes a concurrent duplicate wait
  for the first transaction and then find its row, so the database — not a
  read-then-write in Python — decides which one wins.
* Deliveries of one order key are inserted under a transaction-level advisory lock on that
  key, so their ``seq`` order is their commit order: a lease never sees a later message of
  a child before an earlier one that is still committing.
* ``lease`` picks due rows ``FOR UPDATE SKIP LOCKED``: concurrent leasers (any instance)
  never take the same row, and a row is a candidate only when no older delivery of its
  order key is open (ready or leased), so only the head of each (recipient, child) stream
  is ever out. An expired lease is itself a candidate, so a dead instance's work returns
  without any start-up sweep.
* The audit chain head is a one-row table locked ``FOR UPDATE`` by every appender
  (``postgres_common.append_audit``), so ``verify_chain`` holds with any number of writers.
* Payloads are stored as the ``Sealed`` ciphertext and key id; this module never sees
  plaintext except inside ``rewrap``, which re-seals in memory.
* Every multi-row UPDATE locks its rows in ``seq`` order, and the chain head is always
  the last lock a transaction takes, so writers cannot deadlock one another.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from gateway.audit import AuditEvent, AuditRecord
from gateway.crypto import Keyring, Sealed
from gateway.store import audit_events
from gateway.store.base import (
    AcceptOutcome,
    DeadLetter,
    DecisionRecord,
    DeliveryRecord,
    DeliveryState,
    IdempotencyMismatch,
    InboundRecord,
    Lease,
    MessageQuery,
    MessageStatus,
    MessageSummary,
    QueueStats,
    RecipientStatus,
)
from gateway.store.postgres_common import append_audit, wall_clock
from gateway.store.postgres_consent import PostgresConsentAndReviewOps
from gateway.store.postgres_schema import LOCK_CLASS, Connection

_ORDER_LOCK_CLASS = LOCK_CLASS + 1

_LEASE_SQL = """
WITH pick AS (
    SELECT d.seq FROM deliveries d
    WHERE d.recipient = $1
      AND ((d.state = 'ready' AND d.next_attempt_at <= $2)
           OR (d.state = 'leased' AND d.lease_until < $2))
      AND NOT EXISTS (
          SELECT 1 FROM deliveries e
          WHERE e.order_key = d.order_key AND e.seq < d.seq AND e.state IN ('ready', 'leased'))
    ORDER BY d.seq
    LIMIT $5
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries q
SET state = 'leased', lease_until = $3, lease_token = $4, attempts = q.attempts + 1, updated_at = $2
FROM pick WHERE q.seq = pick.seq
RETURNING q.seq, q.id, q.message_id, q.attempts, q.max_attempts, q.media_type, q.key_id, q.payload,
          q.created_at
"""

_COMPLETE_SQL = """
WITH held AS (
    SELECT d.seq FROM deliveries d
    JOIN unnest($2::text[], $3::text[]) AS t(id, token) ON d.id = t.id AND d.lease_token = t.token
    WHERE d.state = 'leased'
    ORDER BY d.seq
    FOR UPDATE OF d
)
UPDATE deliveries q SET state = 'delivered', delivered_at = $1, updated_at = $1, lease_token = NULL
FROM held WHERE q.seq = held.seq
RETURNING q.id
"""
"""Complete the given (delivery id, lease token) pairs still leased; rows locked in ``seq``
order (see the module docstring), re-checked after any wait (READ COMMITTED)."""

_RELEASE_OWN_SQL = """
WITH target AS (
    SELECT seq FROM deliveries
    WHERE state = 'leased' AND recipient = ANY($1::text[]) AND left(lease_token, length($2)) = $2
    ORDER BY seq
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries q SET state = 'ready', lease_token = NULL, lease_until = NULL
FROM target WHERE q.seq = target.seq
"""
"""Return to the queue the leases of recipients ``$1`` whose token starts with ``$2``."""


_INSERT_DECISION = (
    "INSERT INTO decisions (id, message_id, recipient, effect, rule, agreement_id,"
    " released, policy_version, detail) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb)"
)


def _decision_row(d: DecisionRecord) -> tuple[object, ...]:
    """``d`` as ``_INSERT_DECISION``'s arguments."""
    return d.row(list(d.released))


def _initial_state(d: DeliveryRecord) -> DeliveryState:
    if d.dead_error:
        return DeliveryState.DEAD
    return DeliveryState.HELD if d.review_role else DeliveryState.READY


def _order_lock(order_key: str) -> int:
    """A signed 32-bit key for ``pg_advisory_xact_lock(class, key)``; a collision only
    serialises two unrelated children's accepts."""
    return int.from_bytes(hashlib.sha256(order_key.encode()).digest()[:4], "big", signed=True)


class PostgresBackend(PostgresConsentAndReviewOps):
    """``Store`` + ``Queue`` on a PostgreSQL database (see the module docstring)."""

    # -- Store -------------------------------------------------------------------------

    async def accept(
        self,
        inbound: InboundRecord,
        decisions: Sequence[DecisionRecord],
        deliveries: Sequence[DeliveryRecord],
        audit: Sequence[AuditEvent],
    ) -> AcceptOutcome:
        async with self._tx() as conn:
            if inbound.idempotency_key is not None:
                duplicate = await self._claim_idempotency_key(conn, inbound)
                if duplicate is not None:
                    return duplicate
            now = wall_clock()
            await conn.execute(
                "INSERT INTO messages (id, source, event_type, purpose, received_at, body_sha256,"
                " key_id, payload, subjects) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                inbound.message_id,
                inbound.source,
                inbound.event_type,
                inbound.purpose,
                inbound.received_at,
                inbound.body_sha256,
                inbound.canonical.key_id,
                inbound.canonical.blob,
                list(inbound.subjects),
            )
            if decisions:
                await conn.executemany(_INSERT_DECISION, [_decision_row(d) for d in decisions])
            if deliveries:
                # Sorted, so two accepts sharing order keys always lock in the same order.
                locks = sorted({_order_lock(d.order_key) for d in deliveries})
                await conn.executemany(
                    "SELECT pg_advisory_xact_lock($1, $2)", [(_ORDER_LOCK_CLASS, k) for k in locks]
                )
                await conn.executemany(
                    "INSERT INTO deliveries (id, message_id, decision_id, recipient, order_key, state,"
                    " max_attempts, next_attempt_at, media_type, key_id, payload, created_at, updated_at,"
                    " last_error, consent_records, review_role, review_deadline)"
                    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$8,$8,$12,$13,$14,$15)",
                    [
                        (
                            d.delivery_id,
                            d.message_id,
                            d.decision_id,
                            d.recipient,
                            d.order_key,
                            _initial_state(d).value,
                            d.max_attempts,
                            now,
                            d.media_type,
                            d.payload.key_id,
                            d.payload.blob,
                            d.dead_error,
                            list(d.consent_records) if d.consent_records else None,
                            d.review_role,
                            d.review_deadline,
                        )
                        for d in deliveries
                    ],
                )
            await append_audit(conn, audit, now)
        return AcceptOutcome(inbound.message_id, duplicate=False)

    @staticmethod
    async def _claim_idempotency_key(conn: Connection, inbound: InboundRecord) -> AcceptOutcome | None:
        """Insert the (source, key) row; None if this accept owns the key. A concurrent
        accept of the same key blocks on the primary key until the first commits (then this
        one is the duplicate) or rolls back (then this one owns the key)."""
        claimed = await conn.fetchval(
            "INSERT INTO idempotency (source, key, body_sha256, message_id) VALUES ($1,$2,$3,$4)"
            " ON CONFLICT (source, key) DO NOTHING RETURNING TRUE",
            inbound.source,
            inbound.idempotency_key,
            inbound.body_sha256,
            inbound.message_id,
        )
        if claimed:
            return None
        # A new statement in READ COMMITTED: it sees the row of the committed winner.
        row = await conn.fetchrow(
            "SELECT body_sha256, message_id FROM idempotency WHERE source=$1 AND key=$2",
            inbound.source,
            inbound.idempotency_key,
        )
        assert row is not None, "ON CONFLICT found a committed row"
        if row["body_sha256"] != inbound.body_sha256:
            raise IdempotencyMismatch(row["message_id"])
        return AcceptOutcome(row["message_id"], duplicate=True)

    async def load_canonical(self, message_id: str) -> Sealed | None:
        row = await self.pool.fetchrow("SELECT key_id, payload FROM messages WHERE id=$1", message_id)
        return Sealed(row[0], row[1]) if row is not None else None

    async def message_status(self, message_id: str) -> MessageStatus | None:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            msg = await conn.fetchrow(
                "SELECT id, source, event_type, received_at FROM messages WHERE id=$1", message_id
            )
            if msg is None:
                return None
            # Per recipient its newest decision, listed in the order of the recipient's
            # first decision; beside it the recipient's delivery (one per message and
            # recipient), whichever decision it was queued under. "Newest" is the highest
            # identity ``seq``, no migration needed: a message's later decision (a replay
            # from the original) is inserted only after its ingest committed, so it draws a
            # higher seq; two replays racing draw distinct seqs and either is a valid latest.
            rows = await conn.fetch(
                "SELECT d.recipient, d.effect, d.rule, q.id, q.state, q.attempts, q.delivered_at FROM ("
                "SELECT message_id, recipient, effect, rule,"
                " row_number() OVER (PARTITION BY recipient ORDER BY seq DESC) AS newest,"
                " min(seq) OVER (PARTITION BY recipient) AS first"
                " FROM decisions WHERE message_id=$1) d"
                " LEFT JOIN deliveries q ON q.message_id = d.message_id AND q.recipient = d.recipient"
                " WHERE d.newest = 1 ORDER BY d.first",
                message_id,
            )
        return MessageStatus(
            message_id=msg[0],
            source=msg[1],
            event_type=msg[2],
            received_at=msg[3],
            recipients=tuple(RecipientStatus(r[0], r[1], r[2], r[3], r[4], r[5] or 0, r[6]) for r in rows),
        )

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        async with self._tx() as conn:
            await append_audit(conn, events)

    async def record_decision(self, decision: DecisionRecord, audit: Sequence[AuditEvent]) -> None:
        """See ``Store.record_decision``: the decision row and its audit events, one transaction."""
        async with self._tx() as conn:
            await conn.execute(_INSERT_DECISION, *_decision_row(decision))
            await append_audit(conn, audit)

    async def audit_records(self, batch: int = 1000) -> AsyncIterator[AuditRecord]:
        after = 0
        while True:
            rows = await self.pool.fetch(
                "SELECT seq, at, kind, message_id, partner, actor, data, prev_hash, hash FROM audit"
                " WHERE seq > $1 ORDER BY seq LIMIT $2",
                after,
                batch,
            )
            if not rows:
                return
            for r in rows:
                yield AuditRecord.from_row(r)
            after = rows[-1][0]

    # -- Queue -------------------------------------------------------------------------

    async def lease(self, recipient: str, limit: int, lease_seconds: float) -> list[Lease]:
        now = wall_clock()
        until = now + lease_seconds
        token = self.new_lease_token()
        async with self._tx() as conn:
            rows = await conn.fetch(_LEASE_SQL, recipient, now, until, token, limit)
        return [
            Lease(r[1], r[2], recipient, r[3], r[4], r[5], Sealed(r[6], r[7]), token, until, r[8])
            for r in sorted(rows, key=lambda r: r[0])
        ]

    async def complete(self, lease: Lease, audit: AuditEvent) -> bool:
        (done,) = await self.complete_many([(lease, audit)])
        return done

    async def complete_many(self, items: Sequence[tuple[Lease, AuditEvent]]) -> list[bool]:
        """One transaction: the rows still held with their tokens are locked in ``seq``
        order and marked delivered, then one audit append for those (see
        ``Queue.complete_many``)."""
        if not items:
            return []
        async with self._tx() as conn:
            now = wall_clock()
            rows = await conn.fetch(
                _COMPLETE_SQL,
                now,
                [lease.delivery_id for lease, _ in items],
                [lease.lease_token for lease, _ in items],
            )
            completed = {r[0] for r in rows}
            done = [lease.delivery_id in completed for lease, _ in items]
            await append_audit(conn, [audit for (_, audit), ok in zip(items, done, strict=True) if ok], now)
        return done

    async def ack(self, recipient: str, delivery_id: str, audit: AuditEvent) -> bool:
        """A pull partner acknowledges a delivery it fetched (any lease of its own)."""
        async with self._tx() as conn:
            now = wall_clock()
            message_id = await conn.fetchval(
                "UPDATE deliveries SET state='delivered', delivered_at=$1, updated_at=$1, lease_token=NULL"
                " WHERE id=$2 AND recipient=$3 AND state='leased' RETURNING message_id",
                now,
                delivery_id,
                recipient,
            )
            if message_id is None:
                return False
            await append_audit(conn, [replace(audit, message_id=message_id)], now)
        return True

    async def fail(self, lease: Lease, error_code: str, retry_at: float | None, audit: AuditEvent) -> str:
        async with self._tx() as conn:
            now = wall_clock()
            dead = retry_at is None or lease.attempt >= lease.max_attempts
            state = DeliveryState.DEAD if dead else DeliveryState.READY
            updated = await conn.fetchval(
                "UPDATE deliveries SET state=$1, next_attempt_at=$2, last_error=$3, updated_at=$4,"
                " lease_token=NULL, lease_until=NULL"
                " WHERE id=$5 AND state='leased' AND lease_token=$6 RETURNING TRUE",
                state.value,
                retry_at if retry_at is not None else now,
                error_code,
                now,
                lease.delivery_id,
                lease.lease_token,
            )
            if not updated:
                return "lease-lost"
            events = [audit]
            if dead:
                events.append(
                    audit_events.dead_lettered(
                        lease.delivery_id, lease.message_id, lease.recipient, lease.attempt, error_code
                    )
                )
            await append_audit(conn, events, now)
        return state.value

    async def release_expired_leases(self) -> int:
        """Return leases past their expiry to the queue. Unlike the embedded backend, NOT
        every lease: other instances may hold live ones. (``lease`` takes expired leases
        anyway; this only makes them visible as ready sooner, e.g. in ``stats``.)"""
        async with self._tx() as conn:
            status = await conn.execute(
                "WITH target AS ("
                " SELECT seq FROM deliveries WHERE state='leased' AND lease_until < $1"
                " ORDER BY seq FOR UPDATE SKIP LOCKED)"
                " UPDATE deliveries q SET state='ready', lease_token=NULL, lease_until=NULL"
                " FROM target WHERE q.seq = target.seq",
                wall_clock(),
            )
        return int(status.split()[-1])

    async def release_leases_of(self, recipients: Sequence[str]) -> int:
        """See ``ReleasesPartnerLeases``: only leases of these recipients whose token
        carries this object's ``lease_holder`` (its own, or a killed predecessor's with the
        same holder); another instance's leases, live or not, are never touched."""
        if not recipients:
            return 0
        async with self._tx() as conn:
            status = await conn.execute(_RELEASE_OWN_SQL, sorted(set(recipients)), f"{self.lease_holder}.")
        return int(status.split()[-1])

    async def stats(self) -> list[QueueStats]:
        now = wall_clock()
        rows = await self.pool.fetch(
            "SELECT recipient,"
            " count(*) FILTER (WHERE state='ready'), count(*) FILTER (WHERE state='leased'),"
            " count(*) FILTER (WHERE state='delivered'), count(*) FILTER (WHERE state='dead'),"
            " min(created_at) FILTER (WHERE state IN ('ready','leased')),"
            " count(*) FILTER (WHERE state='held')"
            " FROM deliveries GROUP BY recipient ORDER BY recipient"
        )
        return [
            QueueStats(r[0], r[1], r[2], r[3], r[4], max(0.0, now - r[5]) if r[5] is not None else 0.0, r[6])
            for r in rows
        ]

    async def dead_letters(self, recipient: str | None, limit: int) -> list[DeadLetter]:
        rows = await self.pool.fetch(
            "SELECT id, message_id, recipient, attempts, last_error, updated_at FROM deliveries"
            " WHERE state='dead' AND ($1::text IS NULL OR recipient=$1) ORDER BY seq LIMIT $2",
            recipient,
            limit,
        )
        return [DeadLetter(*r) for r in rows]

    async def _resolve_dead(
        self, delivery_id: str, new_state: DeliveryState, kind: str, reason: str, actor: str
    ) -> bool:
        async with self._tx() as conn:
            now = wall_clock()
            row = await conn.fetchrow(
                "SELECT message_id, recipient, attempts, last_error FROM deliveries"
                " WHERE id=$1 AND state='dead' FOR UPDATE",
                delivery_id,
            )
            if row is None:
                return False
            replaying = new_state is DeliveryState.READY
            # A replay also returns the delivery to the RabbitMQ backend's outbox (its relay
            # republishes it), whichever backend object ran the replay (e.g. the CLI's).
            await conn.execute(
                "UPDATE deliveries SET state=$1, next_attempt_at=$2, updated_at=$2,"
                " attempts = CASE WHEN $3 THEN 0 ELSE attempts END,"
                " published = published AND NOT $3 WHERE id=$4",
                new_state.value,
                now,
                replaying,
                delivery_id,
            )
            await append_audit(
                conn,
                [
                    audit_events.dead_letter_resolved(
                        kind, delivery_id, row[0], row[1], row[2], row[3], reason, actor
                    )
                ],
                now,
            )
        return True

    async def replay(self, delivery_id: str, reason: str, actor: str) -> bool:
        """Dead letter -> queue again, same delivery id and message id (recipients de-duplicate)."""
        return await self._resolve_dead(delivery_id, DeliveryState.READY, "delivery.replayed", reason, actor)

    async def discard(self, delivery_id: str, reason: str, actor: str) -> bool:
        return await self._resolve_dead(
            delivery_id, DeliveryState.DISCARDED, "delivery.discarded", reason, actor
        )

    async def dead_letter(self, delivery_id: str) -> DeadLetter | None:
        row = await self.pool.fetchrow(
            "SELECT id, message_id, recipient, attempts, last_error, updated_at FROM deliveries"
            " WHERE id=$1 AND state='dead'",
            delivery_id,
        )
        return DeadLetter(*row) if row is not None else None

    async def requeue_with_payload(
        self,
        delivery_id: str,
        decision: DecisionRecord,
        payload: Sealed,
        media_type: str,
        audit: Sequence[AuditEvent],
        consent_records: Sequence[str] = (),
    ) -> bool:
        """See ``Queue.requeue_with_payload``. Also returns the delivery to the RabbitMQ
        backend's outbox (``published = FALSE``), whichever backend object runs it."""
        async with self._tx() as conn:
            # Locked first: FOR UPDATE re-reads a row changed meanwhile (READ COMMITTED), so
            # of two racing replays only one finds it dead; a refusal writes nothing, and the
            # decision is inserted before the delivery references it.
            dead = await conn.fetchval(
                "SELECT TRUE FROM deliveries WHERE id=$1 AND state='dead' AND message_id=$2"
                " AND recipient=$3 FOR UPDATE",
                delivery_id,
                decision.message_id,
                decision.recipient,
            )
            if not dead:
                return False
            now = wall_clock()
            await conn.execute(_INSERT_DECISION, *_decision_row(decision))
            await conn.execute(
                "UPDATE deliveries SET state='ready', attempts=0, next_attempt_at=$1, updated_at=$1,"
                " media_type=$2, key_id=$3, payload=$4, consent_records=$5, decision_id=$6,"
                " published=FALSE, lease_token=NULL, lease_until=NULL WHERE id=$7",
                now,
                media_type,
                payload.key_id,
                payload.blob,
                list(consent_records) if consent_records else None,
                decision.decision_id,
                delivery_id,
            )
            await append_audit(conn, audit, now)
        return True

    async def ready_recipients(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT recipient FROM deliveries WHERE state IN ('ready','leased') ORDER BY recipient"
        )
        return [r[0] for r in rows]

    async def rewrap(self, keyring: Keyring, batch: int = 500) -> int:
        """Re-seal every payload not under the active key, ``batch`` rows per transaction
        (safe beside running gateways: each row is locked while it is re-sealed). Returns how
        many were re-sealed."""
        total = 0
        # Locked in the order every other multi-row writer uses (deliveries by seq), and
        # FOR NO KEY UPDATE so accepts referencing a message are not blocked.
        for table, order in (("messages", "id"), ("deliveries", "seq")):
            while True:
                async with self._tx() as conn:
                    rows: list[Any] = await conn.fetch(
                        f"SELECT id, key_id, payload FROM {table} WHERE key_id <> $1"  # noqa: S608 - table and order from a fixed tuple
                        f" ORDER BY {order} LIMIT $2 FOR NO KEY UPDATE",
                        keyring.active,
                        batch,
                    )
                    resealed = [
                        (rid, keyring.seal(keyring.open(Sealed(kid, blob), rid), rid))
                        for rid, kid, blob in rows
                    ]
                    await conn.executemany(
                        f"UPDATE {table} SET key_id=$1, payload=$2 WHERE id=$3",  # noqa: S608
                        [(s.key_id, s.blob, rid) for rid, s in resealed],
                    )
                total += len(rows)
                if not rows:
                    break
        return total

    # -- Console reads (metadata and audit only; see ``ConsoleReads``) -------------------

    async def search_messages(self, query: MessageQuery) -> list[MessageSummary]:
        where, params = ["TRUE"], list[Any]()

        def arg(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        for column, value in (
            ("m.id", query.message_id),
            ("m.source", query.source),
            ("m.event_type", query.event_type),
        ):
            if value:
                where.append(f"{column}={arg(value)}")
        if query.since is not None:
            where.append(f"m.received_at >= {arg(query.since)}")
        if query.until is not None:
            where.append(f"m.received_at <= {arg(query.until)}")
        if query.recipient or query.status:
            r, s = arg(query.recipient), arg(query.status)
            match = f"({r}::text IS NULL OR q.recipient = {r}) AND ({s}::text IS NULL OR q.state = {s})"
            where.append(f"EXISTS (SELECT 1 FROM deliveries q WHERE q.message_id = m.id AND {match})")  # noqa: S608 - placeholders only
        limit = arg(query.limit)
        # Only fixed fragments and $n placeholders are joined into the SQL; values are parameters.
        conditions = " AND ".join(where)
        cols = "m.id, m.source, m.event_type, m.purpose, m.received_at"
        sql = f"SELECT {cols} FROM messages m WHERE {conditions}"  # noqa: S608
        rows = await self.pool.fetch(sql + f" ORDER BY m.received_at DESC, m.id DESC LIMIT {limit}", *params)
        if not rows:
            return []
        ids = [r[0] for r in rows]
        per: dict[str, list[tuple[str, str]]] = {}
        for d in await self.pool.fetch(
            "SELECT message_id, recipient, state FROM deliveries"
            " WHERE message_id = ANY($1::text[]) ORDER BY seq",
            ids,
        ):
            per.setdefault(d[0], []).append((d[1], d[2]))
        return [MessageSummary(r[0], r[1], r[2], r[3], r[4], tuple(per.get(r[0], ()))) for r in rows]

    async def audit_for_message(self, message_id: str) -> list[AuditRecord]:
        rows = await self.pool.fetch(
            "SELECT seq, at, kind, message_id, partner, actor, data, prev_hash, hash FROM audit"
            " WHERE message_id=$1 ORDER BY seq",
            message_id,
        )
        return [AuditRecord.from_row(r) for r in rows]

    async def recent_audit(self, kinds: Sequence[str], limit: int) -> list[AuditRecord]:
        rows = await self.pool.fetch(
            "SELECT seq, at, kind, message_id, partner, actor, data, prev_hash, hash FROM audit"
            " WHERE kind = ANY($1::text[]) ORDER BY seq DESC LIMIT $2",
            list(kinds),
            limit,
        )
        return [AuditRecord.from_row(r) for r in rows]

    async def messages_about(self, subject: str, limit: int) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT id FROM messages WHERE $1 = ANY(subjects) ORDER BY received_at, id LIMIT $2",
            subject,
            limit,
        )
        return [r[0] for r in rows]
