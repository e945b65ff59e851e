"""The PostgreSQL backend's consent registry and review queue.

As on SQLite, recording a refusal or withdrawal and cancelling the open deliveries that
relied on the consent happen in ONE transaction: once it commits, no such delivery can be
leased by any instance (a lease takes the row lock, so a withdrawal waits for an in-flight
lease statement and a later lease sees ``withdrawn``). A delivery already on the wire may
still arrive; its completion then finds the row withdrawn and records nothing.

Review resolution and escalation are single conditional UPDATEs, so with several instances
each held delivery is approved, rejected or escalated at most once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gateway.store import audit_events
from gateway.store.base import CONSENT_COLUMNS, HeldDelivery, StoredConsent
from gateway.store.postgres_common import PostgresConnections, append_audit, wall_clock

_OPEN = ["ready", "leased", "held"]


class PostgresConsentAndReviewOps(PostgresConnections):
    # -- consent registry ----------------------------------------------------------------

    async def record_consent(self, record: StoredConsent, recipients_in_scope: Sequence[str]) -> list[str]:
        """Store a consent record. If it refuses or withdraws, cancel (state ``withdrawn``) every
        open delivery to ``recipients_in_scope`` whose release relied on a consent record of
        the same subject and purpose. Returns the cancelled delivery ids, oldest first."""
        async with self._tx() as conn:
            now = wall_clock()
            await conn.execute(
                f"INSERT INTO consents ({CONSENT_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",  # noqa: S608 - fixed column list
                *record.as_row(),
            )
            events = [audit_events.consent_recorded(record)]
            cancelled: list[tuple[str, str, str]] = []
            if record.state != "given" and recipients_in_scope:
                # Rows are locked in seq order (as by every multi-row writer here), so two
                # withdrawals or an escalation running at once cannot deadlock.
                rows = await conn.fetch(
                    "WITH target AS ("
                    " SELECT seq FROM deliveries"
                    " WHERE consent_records IS NOT NULL AND state = ANY($2::text[])"
                    " AND recipient = ANY($3::text[])"
                    " AND consent_records && (SELECT array_agg(id) FROM consents"
                    "                         WHERE subject=$4 AND purpose=$5)"
                    " ORDER BY seq FOR UPDATE)"
                    " UPDATE deliveries q SET state='withdrawn', updated_at=$1, lease_token=NULL"
                    " FROM target WHERE q.seq = target.seq"
                    " RETURNING q.seq, q.id, q.message_id, q.recipient",
                    now,
                    _OPEN,
                    list(recipients_in_scope),
                    record.subject,
                    record.purpose,
                )
                cancelled = [
                    (r["id"], r["message_id"], r["recipient"]) for r in sorted(rows, key=lambda r: r[0])
                ]
                events += [audit_events.delivery_withdrawn(record, d, m, r) for d, m, r in cancelled]
            await append_audit(conn, events, now)
        return [c[0] for c in cancelled]

    async def consents_for(self, subject: str) -> list[StoredConsent]:
        rows = await self.pool.fetch(
            f"SELECT {CONSENT_COLUMNS} FROM consents WHERE subject=$1 ORDER BY recorded_at, id",  # noqa: S608
            subject,
        )
        return [StoredConsent(*r) for r in rows]

    async def consent(self, record_id: str) -> StoredConsent | None:
        row = await self.pool.fetchrow(f"SELECT {CONSENT_COLUMNS} FROM consents WHERE id=$1", record_id)  # noqa: S608
        return StoredConsent(*row) if row is not None else None

    async def all_consents(self) -> list[StoredConsent]:
        rows = await self.pool.fetch(f"SELECT {CONSENT_COLUMNS} FROM consents")  # noqa: S608
        return [StoredConsent(*r) for r in rows]

    async def audit_head_seq(self) -> int:
        return int(await self.pool.fetchval("SELECT seq FROM audit_head"))

    async def consents_since(self, audit_seq: int) -> tuple[int, list[StoredConsent]]:
        # The head is read first: every audit record up to it has committed (appends hold
        # the chain-head row lock until they commit), so none below it can appear later.
        head = await self.audit_head_seq()
        if head <= audit_seq:
            return audit_seq, []
        columns = ", ".join(f"c.{c.strip()}" for c in CONSENT_COLUMNS.split(","))
        rows = await self.pool.fetch(
            f"SELECT {columns} FROM audit a JOIN consents c"  # noqa: S608 - fixed column list
            " ON c.id = (a.data::json ->> 'record_id')"
            " WHERE a.seq > $1 AND a.seq <= $2 AND a.kind = 'consent.recorded' ORDER BY a.seq",
            audit_seq,
            head,
        )
        return head, [StoredConsent(*r) for r in rows]

    # -- review queue --------------------------------------------------------------------

    async def held(self, limit: int = 500) -> list[HeldDelivery]:
        rows = await self.pool.fetch(
            "SELECT q.id, q.message_id, q.recipient, q.review_role, q.review_deadline, q.escalated,"
            " d.detail FROM deliveries q JOIN decisions d ON d.id = q.decision_id"
            " WHERE q.state='held' ORDER BY q.review_deadline, q.seq LIMIT $1",
            limit,
        )
        return [HeldDelivery(r[0], r[1], r[2], r[3], r[4], bool(r[5]), json.loads(r[6])) for r in rows]

    async def resolve_review(self, delivery_id: str, approve: bool, reason: str, actor: str) -> bool:
        """Approve (-> ready, delivered as decided) or reject (-> rejected) a held delivery."""
        async with self._tx() as conn:
            now = wall_clock()
            row = await conn.fetchrow(
                "UPDATE deliveries SET state=$1, next_attempt_at=$2, updated_at=$2"
                " WHERE id=$3 AND state='held' RETURNING message_id, recipient",
                "ready" if approve else "rejected",
                now,
                delivery_id,
            )
            if row is None:
                return False
            await append_audit(
                conn,
                [audit_events.review_resolved(approve, delivery_id, row[0], row[1], reason, actor)],
                now,
            )
        return True

    async def escalate_overdue(self) -> list[HeldDelivery]:
        """Mark held deliveries past their deadline as escalated (once each, audited). They stay
        held: a deadline never shares anything."""
        async with self._tx() as conn:
            now = wall_clock()
            rows = await conn.fetch(
                "WITH target AS ("
                " SELECT seq FROM deliveries WHERE state='held' AND NOT escalated AND review_deadline < $1"
                " ORDER BY seq FOR UPDATE)"
                " UPDATE deliveries q SET escalated=TRUE, updated_at=$1 FROM target"
                " WHERE q.seq = target.seq"
                " RETURNING q.seq, q.id, q.message_id, q.recipient, q.review_role, q.review_deadline",
                now,
            )
            rows = sorted(rows, key=lambda r: r[0])
            await append_audit(
                conn,
                [audit_events.review_escalated(r[1], r[2], r[3], r[4], r[5]) for r in rows],
                now,
            )
        return [HeldDelivery(r[1], r[2], r[3], r[4], r[5], True, {}) for r in rows]
