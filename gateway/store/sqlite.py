"""The embedded backend: SQLite in WAL mode, one file, zero set-up.

Implements both ``Store`` and ``Queue`` (see ``gateway.store.base`` for the contracts). All
writes go through one ``GroupCommitWriter`` thread; reads use a second connection on a
reader thread, which WAL lets run beside the writer.

Durability: ``synchronous=FULL`` by default. In WAL mode NORMAL already survives a process
crash (``kill -9``), but can lose the last commits on power loss or an OS crash; an
accepted safeguarding message must survive both, and group commit makes FULL affordable.

Other processes (the CLI replaying a dead letter while the gateway runs) may write too:
every transaction starts with ``BEGIN IMMEDIATE`` and reads the audit chain's head inside
it, so the chain stays linear with several writers.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

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
from gateway.store.sqlite_common import append_audit, json_list, wall_clock
from gateway.store.sqlite_consent import ConsentAndReviewOps
from gateway.store.writer import insert_rows

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    event_type TEXT NOT NULL,
    purpose TEXT NOT NULL,
    received_at REAL NOT NULL,
    body_sha256 TEXT NOT NULL,
    key_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    subjects TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages(id),
    PRIMARY KEY (source, key)
);
CREATE TABLE IF NOT EXISTS decisions (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id),
    recipient TEXT NOT NULL,
    effect TEXT NOT NULL,
    rule TEXT NOT NULL,
    agreement_id TEXT,
    released TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_message ON decisions(message_id);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL REFERENCES messages(id),
    decision_id TEXT NOT NULL REFERENCES decisions(id),
    recipient TEXT NOT NULL,
    order_key TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    lease_token TEXT,
    media_type TEXT NOT NULL,
    key_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    delivered_at REAL,
    consent_records TEXT,
    review_role TEXT,
    review_deadline REAL,
    escalated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deliveries_held ON deliveries(review_deadline) WHERE state = 'held';
CREATE INDEX IF NOT EXISTS deliveries_relying_on_consent ON deliveries(seq)
    WHERE consent_records IS NOT NULL AND state IN ('ready', 'leased', 'held');
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    scope TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    expires_at REAL,
    evidence_ref TEXT,
    recorded_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS consents_by_subject ON consents(subject, purpose);
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries(recipient, state, seq);
CREATE INDEX IF NOT EXISTS deliveries_open_by_order
    ON deliveries(order_key, seq) WHERE state IN ('ready', 'leased');
CREATE INDEX IF NOT EXISTS deliveries_by_message ON deliveries(message_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_id TEXT,
    partner TEXT,
    actor TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_message ON audit(message_id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

_OPEN_STATES = (DeliveryState.READY.value, DeliveryState.LEASED.value)


_INSERT_DECISION = (
    "INSERT INTO decisions (id, message_id, recipient, effect, rule, agreement_id, released,"
    " policy_version, detail) VALUES (?,?,?,?,?,?,?,?,?)"
)
"""One decision outside an accept (a replay from the original): not gathered."""


def _decision_row(d: DecisionRecord) -> tuple[object, ...]:
    """``d`` in ``decisions`` column order (as ``accept`` inserts it)."""
    return d.row(json_list(d.released))


def _initial_state(d: DeliveryRecord) -> DeliveryState:
    if d.dead_error:
        return DeliveryState.DEAD
    return DeliveryState.HELD if d.review_role else DeliveryState.READY


class SqliteBackend(ConsentAndReviewOps):
    """``Store`` + ``Queue`` on one SQLite file."""

    schema = SCHEMA
    lease_holder = "embedded"
    """Not recorded: one process leases for each partner on the embedded backend."""

    # -- Store -------------------------------------------------------------------------

    async def accept(
        self,
        inbound: InboundRecord,
        decisions: Sequence[DecisionRecord],
        deliveries: Sequence[DeliveryRecord],
        audit: Sequence[AuditEvent],
    ) -> AcceptOutcome:
        def op(conn: sqlite3.Connection) -> AcceptOutcome:
            if inbound.idempotency_key is not None:
                row = conn.execute(
                    "SELECT body_sha256, message_id FROM idempotency WHERE source=? AND key=?",
                    (inbound.source, inbound.idempotency_key),
                ).fetchone()
                if row is not None:
                    if row[0] != inbound.body_sha256:
                        raise IdempotencyMismatch(row[1])
                    return AcceptOutcome(row[1], duplicate=True)
            now = wall_clock()
            insert_rows(
                conn,
                "INSERT INTO messages",
                9,
                [
                    (
                        inbound.message_id,
                        inbound.source,
                        inbound.event_type,
                        inbound.purpose,
                        inbound.received_at,
                        inbound.body_sha256,
                        inbound.canonical.key_id,
                        inbound.canonical.blob,
                        json_list(inbound.subjects),
                    )
                ],
            )
            if inbound.idempotency_key is not None:
                # Gathered too: a concurrent duplicate in the same batch fails the gathered
                # insert, and the batch's run with savepoints then finds it by the SELECT above.
                insert_rows(
                    conn,
                    "INSERT INTO idempotency",
                    4,
                    [(inbound.source, inbound.idempotency_key, inbound.body_sha256, inbound.message_id)],
                )
            insert_rows(
                conn,
                "INSERT INTO decisions",
                9,
                [_decision_row(d) for d in decisions],
            )
            insert_rows(
                conn,
                "INSERT INTO deliveries (id, message_id, decision_id, recipient, order_key, state,"
                " max_attempts, next_attempt_at, media_type, key_id, payload, created_at, updated_at,"
                " last_error, consent_records, review_role, review_deadline)",
                17,
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
                        now,
                        now,
                        d.dead_error,
                        json_list(d.consent_records) if d.consent_records else None,
                        d.review_role,
                        d.review_deadline,
                    )
                    for d in deliveries
                ],
            )
            append_audit(conn, audit, now)
            return AcceptOutcome(inbound.message_id, duplicate=False)

        # Gathering: an accept reads only the idempotency table (writer module docstring).
        return await self._writer.run(op, gathers=True)

    async def load_canonical(self, message_id: str) -> Sealed | None:
        rows = await self._read("SELECT key_id, payload FROM messages WHERE id=?", (message_id,))
        return Sealed(rows[0][0], rows[0][1]) if rows else None

    async def message_status(self, message_id: str) -> MessageStatus | None:
        msg = await self._read(
            "SELECT id, source, event_type, received_at FROM messages WHERE id=?", (message_id,)
        )
        if not msg:
            return None
        # Per recipient its newest decision (the highest rowid: decisions are only ever
        # inserted, so a later insert has a higher rowid), listed in the order of the
        # recipient's first decision; beside it the recipient's delivery (one per message and
        # recipient), whichever decision it was queued under.
        rows = await self._read(
            "SELECT d.recipient, d.effect, d.rule, q.id, q.state, q.attempts, q.delivered_at FROM ("
            "SELECT message_id, recipient, effect, rule,"
            " ROW_NUMBER() OVER (PARTITION BY recipient ORDER BY rowid DESC) AS newest,"
            " MIN(rowid) OVER (PARTITION BY recipient) AS first"
            " FROM decisions WHERE message_id=?) d"
            " LEFT JOIN deliveries q ON q.message_id = d.message_id AND q.recipient = d.recipient"
            " WHERE d.newest = 1 ORDER BY d.first",
            (message_id,),
        )
        return MessageStatus(
            message_id=msg[0][0],
            source=msg[0][1],
            event_type=msg[0][2],
            received_at=msg[0][3],
            recipients=tuple(RecipientStatus(r[0], r[1], r[2], r[3], r[4], r[5] or 0, r[6]) for r in rows),
        )

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        await self._writer.run(lambda conn: append_audit(conn, events))

    async def record_decision(self, decision: DecisionRecord, audit: Sequence[AuditEvent]) -> None:
        """See ``Store.record_decision``: the decision row and its audit events, one transaction."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_INSERT_DECISION, _decision_row(decision))
            append_audit(conn, audit)

        await self._writer.run(op)

    async def audit_records(self, batch: int = 1000) -> AsyncIterator[AuditRecord]:
        after = 0
        while True:
            rows = await self._read(
                "SELECT seq, at, kind, message_id, partner, actor, data, prev_hash, hash FROM audit"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, batch),
            )
            if not rows:
                return
            for r in rows:
                yield AuditRecord.from_row(r)
            after = rows[-1][0]

    # -- Queue -------------------------------------------------------------------------

    async def lease(self, recipient: str, limit: int, lease_seconds: float) -> list[Lease]:
        def op(conn: sqlite3.Connection) -> list[Lease]:
            now = wall_clock()
            until = now + lease_seconds
            token = secrets.token_hex(8)
            # Leases whose holder died or overran return to the queue first, so one query
            # below (walking the (recipient, state, seq) index in order) sees them.
            conn.execute(
                "UPDATE deliveries SET state='ready', lease_token=NULL, lease_until=NULL"
                " WHERE recipient=? AND state='leased' AND lease_until<?",
                (recipient, now),
            )
            rows = conn.execute(
                """
                UPDATE deliveries SET state='leased', lease_until=:until, lease_token=:token,
                       attempts=attempts+1, updated_at=:now
                WHERE seq IN (
                    SELECT d.seq FROM deliveries d
                    WHERE d.recipient=:r AND d.state='ready' AND d.next_attempt_at<=:now
                      AND NOT EXISTS (
                          SELECT 1 FROM deliveries e
                          WHERE e.order_key=d.order_key AND e.seq<d.seq
                            AND e.state IN ('ready','leased'))
                    ORDER BY d.seq LIMIT :n)
                RETURNING seq, id, message_id, attempts, max_attempts, media_type, key_id, payload, created_at
                """,
                {"until": until, "token": token, "now": now, "r": recipient, "n": limit},
            ).fetchall()
            rows.sort(key=lambda r: r[0])
            return [
                Lease(r[1], r[2], recipient, r[3], r[4], r[5], Sealed(r[6], r[7]), token, until, r[8])
                for r in rows
            ]

        return await self._writer.run(op)

    async def complete(self, lease: Lease, audit: AuditEvent) -> bool:
        (done,) = await self.complete_many([(lease, audit)])
        return done

    async def complete_many(self, items: Sequence[tuple[Lease, AuditEvent]]) -> list[bool]:
        """One writer job for the whole batch: the conditional UPDATEs, then one audit
        append for the completed ones (see ``Queue.complete_many``)."""
        if not items:
            return []

        def op(conn: sqlite3.Connection) -> list[bool]:
            now = wall_clock()
            done: list[bool] = []
            events: list[AuditEvent] = []
            for lease, audit in items:
                cur = conn.execute(
                    "UPDATE deliveries SET state='delivered', delivered_at=?, updated_at=?, lease_token=NULL"
                    " WHERE id=? AND state='leased' AND lease_token=?",
                    (now, now, lease.delivery_id, lease.lease_token),
                )
                ok = cur.rowcount == 1
                done.append(ok)
                if ok:
                    events.append(audit)
            append_audit(conn, events, now)
            return done

        return await self._writer.run(op)

    async def ack(self, recipient: str, delivery_id: str, audit: AuditEvent) -> bool:
        """A pull partner acknowledges a delivery it fetched (any lease of its own)."""

        def op(conn: sqlite3.Connection) -> bool:
            now = wall_clock()
            row = conn.execute(
                "UPDATE deliveries SET state='delivered', delivered_at=?, updated_at=?, lease_token=NULL"
                " WHERE id=? AND recipient=? AND state='leased' RETURNING message_id",
                (now, now, delivery_id, recipient),
            ).fetchone()
            if row is None:
                return False
            append_audit(conn, [replace(audit, message_id=row[0])], now)
            return True

        return await self._writer.run(op)

    async def fail(self, lease: Lease, error_code: str, retry_at: float | None, audit: AuditEvent) -> str:
        def op(conn: sqlite3.Connection) -> str:
            now = wall_clock()
            dead = retry_at is None or lease.attempt >= lease.max_attempts
            state = DeliveryState.DEAD if dead else DeliveryState.READY
            cur = conn.execute(
                "UPDATE deliveries SET state=?, next_attempt_at=?, last_error=?, updated_at=?,"
                " lease_token=NULL, lease_until=NULL WHERE id=? AND state='leased' AND lease_token=?",
                (
                    state.value,
                    retry_at if retry_at is not None else now,
                    error_code,
                    now,
                    lease.delivery_id,
                    lease.lease_token,
                ),
            )
            if cur.rowcount != 1:
                return "lease-lost"
            events = [audit]
            if dead:
                events.append(
                    audit_events.dead_lettered(
                        lease.delivery_id, lease.message_id, lease.recipient, lease.attempt, error_code
                    )
                )
            append_audit(conn, events, now)
            return state.value

        return await self._writer.run(op)

    async def release_expired_leases(self) -> int:
        """At start-up of the single embedded instance: leases held by a dead process return
        to the queue at once instead of waiting for expiry."""

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE deliveries SET state='ready', lease_token=NULL, lease_until=NULL WHERE state='leased'"
            ).rowcount

        return await self._writer.run(op)

    async def release_leases_of(self, recipients: Sequence[str]) -> int:
        """See ``ReleasesPartnerLeases``: the delivery process, at its start, takes back
        the leases its killed predecessor held for the webhook partners (the only process
        leasing for them, so every lease of theirs), instead of waiting ``lease_seconds``
        for them to expire."""
        wanted = sorted(set(recipients))
        if not wanted:
            return 0

        def op(conn: sqlite3.Connection) -> int:
            marks = ",".join("?" * len(wanted))
            return conn.execute(
                "UPDATE deliveries SET state='ready', lease_token=NULL, lease_until=NULL"  # noqa: S608 - placeholders only
                f" WHERE state='leased' AND recipient IN ({marks})",
                wanted,
            ).rowcount

        return await self._writer.run(op)

    async def stats(self) -> list[QueueStats]:
        now = wall_clock()
        rows = await self._read(
            "SELECT recipient,"
            " SUM(state='ready'), SUM(state='leased'), SUM(state='delivered'), SUM(state='dead'),"
            " MIN(CASE WHEN state IN ('ready','leased') THEN created_at END), SUM(state='held')"
            " FROM deliveries GROUP BY recipient ORDER BY recipient"
        )
        return [
            QueueStats(
                r[0],
                r[1] or 0,
                r[2] or 0,
                r[3] or 0,
                r[4] or 0,
                max(0.0, now - r[5]) if r[5] is not None else 0.0,
                r[6] or 0,
            )
            for r in rows
        ]

    async def dead_letters(self, recipient: str | None, limit: int) -> list[DeadLetter]:
        sql = (
            "SELECT id, message_id, recipient, attempts, last_error, updated_at FROM deliveries"
            " WHERE state='dead'"
        )
        params: list[Any] = []
        if recipient is not None:
            sql += " AND recipient=?"
            params.append(recipient)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return [DeadLetter(*r) for r in await self._read(sql, params)]

    async def _resolve_dead(
        self, delivery_id: str, new_state: DeliveryState, kind: str, reason: str, actor: str
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            now = wall_clock()
            row = conn.execute(
                "SELECT message_id, recipient, attempts, last_error FROM deliveries"
                " WHERE id=? AND state='dead'",
                (delivery_id,),
            ).fetchone()
            if row is None:
                return False
            reset = ", attempts=0" if new_state is DeliveryState.READY else ""
            conn.execute(
                f"UPDATE deliveries SET state=?, next_attempt_at=?, updated_at=?{reset}"  # noqa: S608 - fixed fragment
                " WHERE id=?",
                (new_state.value, now, now, delivery_id),
            )
            append_audit(
                conn,
                [
                    audit_events.dead_letter_resolved(
                        kind, delivery_id, row[0], row[1], row[2], row[3], reason, actor
                    )
                ],
                now,
            )
            return True

        return await self._writer.run(op)

    async def replay(self, delivery_id: str, reason: str, actor: str) -> bool:
        """Dead letter -> queue again, same delivery id and message id (recipients de-duplicate)."""
        return await self._resolve_dead(delivery_id, DeliveryState.READY, "delivery.replayed", reason, actor)

    async def discard(self, delivery_id: str, reason: str, actor: str) -> bool:
        return await self._resolve_dead(
            delivery_id, DeliveryState.DISCARDED, "delivery.discarded", reason, actor
        )

    async def dead_letter(self, delivery_id: str) -> DeadLetter | None:
        rows = await self._read(
            "SELECT id, message_id, recipient, attempts, last_error, updated_at FROM deliveries"
            " WHERE id=? AND state='dead'",
            (delivery_id,),
        )
        return DeadLetter(*rows[0]) if rows else None

    async def requeue_with_payload(
        self,
        delivery_id: str,
        decision: DecisionRecord,
        payload: Sealed,
        media_type: str,
        audit: Sequence[AuditEvent],
        consent_records: Sequence[str] = (),
    ) -> bool:
        """See ``Queue.requeue_with_payload``: only a dead letter of the decision's message
        and recipient; the decision, payload, state and audit events in one transaction."""

        def op(conn: sqlite3.Connection) -> bool:
            # Checked first (BEGIN IMMEDIATE: no other writer until COMMIT), so a refusal
            # writes nothing, and the decision exists before the delivery references it.
            dead = conn.execute(
                "SELECT 1 FROM deliveries WHERE id=? AND state='dead' AND message_id=? AND recipient=?",
                (delivery_id, decision.message_id, decision.recipient),
            ).fetchone()
            if dead is None:
                return False
            now = wall_clock()
            conn.execute(_INSERT_DECISION, _decision_row(decision))
            conn.execute(
                "UPDATE deliveries SET state='ready', attempts=0, next_attempt_at=?, updated_at=?,"
                " media_type=?, key_id=?, payload=?, consent_records=?, decision_id=?,"
                " lease_token=NULL, lease_until=NULL WHERE id=? AND state='dead'",
                (
                    now,
                    now,
                    media_type,
                    payload.key_id,
                    payload.blob,
                    json_list(consent_records) if consent_records else None,
                    decision.decision_id,
                    delivery_id,
                ),
            )
            append_audit(conn, audit, now)
            return True

        return await self._writer.run(op)

    async def ready_recipients(self) -> list[str]:
        rows = await self._read("SELECT DISTINCT recipient FROM deliveries WHERE state IN ('ready','leased')")
        return [r[0] for r in rows]

    async def rewrap(self, keyring: Keyring, batch: int = 500) -> int:
        """Re-seal every payload not under the active key. Returns how many were re-sealed."""
        total = 0
        for table in ("messages", "deliveries"):
            while True:

                def op(conn: sqlite3.Connection, table: str = table) -> int:
                    rows = conn.execute(
                        f"SELECT id, key_id, payload FROM {table} WHERE key_id != ? LIMIT ?",  # noqa: S608 - table from a fixed tuple
                        (keyring.active, batch),
                    ).fetchall()
                    for rid, kid, blob in rows:
                        plain = keyring.open(Sealed(kid, blob), rid)
                        sealed = keyring.seal(plain, rid)
                        conn.execute(
                            f"UPDATE {table} SET key_id=?, payload=? WHERE id=?",  # noqa: S608
                            (sealed.key_id, sealed.blob, rid),
                        )
                    return len(rows)

                n = await self._writer.run(op)
                total += n
                if n == 0:
                    break
        return total

    # -- Console reads (metadata and audit only; see ``ConsoleReads``) -------------------

    async def search_messages(self, query: MessageQuery) -> list[MessageSummary]:
        where, params = ["1=1"], list[Any]()
        for column, value in (
            ("m.id", query.message_id),
            ("m.source", query.source),
            ("m.event_type", query.event_type),
        ):
            if value:
                where.append(f"{column}=?")
                params.append(value)
        if query.since is not None:
            where.append("m.received_at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("m.received_at <= ?")
            params.append(query.until)
        if query.recipient or query.status:
            where.append(
                "EXISTS (SELECT 1 FROM deliveries q WHERE q.message_id = m.id"
                " AND (? IS NULL OR q.recipient = ?) AND (? IS NULL OR q.state = ?))"
            )
            params += [query.recipient, query.recipient, query.status, query.status]
        # Only fixed fragments and placeholders are joined into the SQL; values are parameters.
        conditions = " AND ".join(where)
        cols = "m.id, m.source, m.event_type, m.purpose, m.received_at"
        sql = f"SELECT {cols} FROM messages m WHERE {conditions}"  # noqa: S608
        order = " ORDER BY m.received_at DESC, m.id DESC LIMIT ?"
        rows = await self._read(sql + order, [*params, query.limit])
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        per: dict[str, list[tuple[str, str]]] = {}
        sql = f"SELECT message_id, recipient, state FROM deliveries WHERE message_id IN ({marks})"  # noqa: S608
        for mid, recipient, state in await self._read(sql + " ORDER BY seq", ids):
            per.setdefault(mid, []).append((recipient, state))
        return [MessageSummary(r[0], r[1], r[2], r[3], r[4], tuple(per.get(r[0], ()))) for r in rows]

    async def audit_for_message(self, message_id: str) -> list[AuditRecord]:
        rows = await self._read(
            "SELECT seq, at, kind, message_id, partner, actor, data, prev_hash, hash FROM audit"
            " WHERE message_id=? ORDER BY seq",
            (message_id,),
        )
        return [AuditRecord.from_row(r) for r in rows]

    async def recent_audit(self, kinds: Sequence[str], limit: int) -> list[AuditRecord]:
        if not kinds:
            return []
        marks = ",".join("?" * len(kinds))
        columns = "seq, at, kind, message_id, partner, actor, data, prev_hash, hash"
        sql = f"SELECT {columns} FROM audit WHERE kind IN ({marks}) ORDER BY seq DESC LIMIT ?"  # noqa: S608
        rows = await self._read(sql, [*kinds, limit])
        return [AuditRecord.from_row(r) for r in rows]

    async def messages_about(self, subject: str, limit: int) -> list[str]:
        # subjects is a JSON list of hex pseudonyms; json_each matches whole elements only.
        rows = await self._read(
            "SELECT m.id FROM messages m WHERE EXISTS"
            " (SELECT 1 FROM json_each(m.subjects) s WHERE s.value = ?)"
            " ORDER BY m.received_at, m.id LIMIT ?",
            (subject, limit),
        )
        return [r[0] for r in rows]
