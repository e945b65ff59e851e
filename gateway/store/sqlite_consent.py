"""The SQLite backend's consent registry and review queue.

Recording a refusal or withdrawal and cancelling the deliveries that relied on the
consent happen in ONE transaction: once the API answers, no such delivery can be leased.
(A delivery already on the wire at that instant may still arrive: the lease-holder's
completion then finds it withdrawn and records nothing; recipients are told by the
``delivery.withdrawn`` audit trail, not by a second message.)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.store import audit_events
from gateway.store.base import CONSENT_COLUMNS, HeldDelivery, StoredConsent
from gateway.store.sqlite_common import SqliteConnections, append_audit, wall_clock


class ConsentAndReviewOps(SqliteConnections):
    # -- consent registry ----------------------------------------------------------------

    async def record_consent(self, record: StoredConsent, recipients_in_scope: Sequence[str]) -> list[str]:
        """Store a consent record. If it refuses or withdraws, cancel (state ``withdrawn``) every
        open delivery to ``recipients_in_scope`` whose release relied on a consent record of
        the same subject and purpose. Returns the cancelled delivery ids."""

        def op(conn: sqlite3.Connection) -> list[str]:
            now = wall_clock()
            conn.execute(
                f"INSERT INTO consents ({CONSENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                record.as_row(),
            )
            events = [audit_events.consent_recorded(record)]
            cancelled: list[tuple[str, str, str]] = []
            if record.state != "given" and recipients_in_scope:
                related = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM consents WHERE subject=? AND purpose=?",
                        (record.subject, record.purpose),
                    )
                ]
                marks = ",".join("?" * len(related))
                scope_marks = ",".join("?" * len(recipients_in_scope))
                cancelled = conn.execute(
                    f"UPDATE deliveries SET state='withdrawn', updated_at=?, lease_token=NULL"  # noqa: S608 - placeholders only
                    f" WHERE consent_records IS NOT NULL AND state IN ('ready','leased','held')"
                    f" AND recipient IN ({scope_marks})"
                    " AND EXISTS (SELECT 1 FROM json_each(deliveries.consent_records)"
                    f" WHERE value IN ({marks}))"
                    " RETURNING id, message_id, recipient",
                    (now, *recipients_in_scope, *related),
                ).fetchall()
                events += [audit_events.delivery_withdrawn(record, d, m, r) for d, m, r in cancelled]
            append_audit(conn, events, now)
            return [c[0] for c in cancelled]

        return await self._writer.run(op)

    async def consents_for(self, subject: str) -> list[StoredConsent]:
        rows = await self._read(
            f"SELECT {CONSENT_COLUMNS} FROM consents WHERE subject=?"  # noqa: S608
            " ORDER BY recorded_at",
            (subject,),
        )
        return [StoredConsent(*r) for r in rows]

    async def consent(self, record_id: str) -> StoredConsent | None:
        rows = await self._read(f"SELECT {CONSENT_COLUMNS} FROM consents WHERE id=?", (record_id,))  # noqa: S608
        return StoredConsent(*rows[0]) if rows else None

    async def all_consents(self) -> list[StoredConsent]:
        rows = await self._read(f"SELECT {CONSENT_COLUMNS} FROM consents")  # noqa: S608
        return [StoredConsent(*r) for r in rows]

    async def audit_head_seq(self) -> int:
        rows = await self._read("SELECT coalesce(max(seq), 0) FROM audit", ())
        return int(rows[0][0])

    async def consents_since(self, audit_seq: int) -> tuple[int, list[StoredConsent]]:
        head = await self.audit_head_seq()
        if head <= audit_seq:
            return audit_seq, []
        columns = ", ".join(f"c.{c.strip()}" for c in CONSENT_COLUMNS.split(","))
        rows = await self._read(
            f"SELECT {columns} FROM audit a JOIN consents c"  # noqa: S608 - fixed column list
            " ON c.id = json_extract(a.data, '$.record_id')"
            " WHERE a.seq > ? AND a.seq <= ? AND a.kind = 'consent.recorded' ORDER BY a.seq",
            (audit_seq, head),
        )
        return head, [StoredConsent(*r) for r in rows]

    # -- review queue --------------------------------------------------------------------

    async def held(self, limit: int = 500) -> list[HeldDelivery]:
        rows = await self._read(
            "SELECT q.id, q.message_id, q.recipient, q.review_role, q.review_deadline, q.escalated, d.detail"
            " FROM deliveries q JOIN decisions d ON d.id = q.decision_id"
            " WHERE q.state='held' ORDER BY q.review_deadline LIMIT ?",
            (limit,),
        )
        return [HeldDelivery(r[0], r[1], r[2], r[3], r[4], bool(r[5]), json.loads(r[6])) for r in rows]

    async def resolve_review(self, delivery_id: str, approve: bool, reason: str, actor: str) -> bool:
        """Approve (-> ready, delivered as decided) or reject (-> rejected) a held delivery."""

        def op(conn: sqlite3.Connection) -> bool:
            now = wall_clock()
            row = conn.execute(
                "UPDATE deliveries SET state=?, next_attempt_at=?, updated_at=? WHERE id=? AND state='held'"
                " RETURNING message_id, recipient",
                ("ready" if approve else "rejected", now, now, delivery_id),
            ).fetchone()
            if row is None:
                return False
            append_audit(
                conn,
                [audit_events.review_resolved(approve, delivery_id, row[0], row[1], reason, actor)],
                now,
            )
            return True

        return await self._writer.run(op)

    async def escalate_overdue(self) -> list[HeldDelivery]:
        """Mark held deliveries past their deadline as escalated (once each, audited). They stay
        held: a deadline never shares anything."""

        def op(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            now = wall_clock()
            rows = conn.execute(
                "UPDATE deliveries SET escalated=1, updated_at=? WHERE state='held' AND escalated=0"
                " AND review_deadline < ? RETURNING id, message_id, recipient, review_role, review_deadline",
                (now, now),
            ).fetchall()
            append_audit(
                conn,
                [audit_events.review_escalated(r[0], r[1], r[2], r[3], r[4]) for r in rows],
                now,
            )
            return rows

        rows = await self._writer.run(op)
        return [HeldDelivery(r[0], r[1], r[2], r[3], r[4], True, {}) for r in rows]
