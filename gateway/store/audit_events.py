"""The audit events a backend writes inside its own transactions, built in one place so every
backend records the same facts under the same names (the audit log is read across backends:
`gateway audit verify`, the per-child report). Ids, rules and reasons only, never content.
"""

from __future__ import annotations

from gateway.audit import AuditEvent
from gateway.store.base import StoredConsent


def dead_lettered(delivery_id: str, message_id: str, recipient: str, attempts: int, error: str) -> AuditEvent:
    return AuditEvent(
        "delivery.dead_lettered",
        {"delivery_id": delivery_id, "attempts": attempts, "last_error": error},
        message_id,
        recipient,
    )


def dead_letter_resolved(
    kind: str,
    delivery_id: str,
    message_id: str,
    recipient: str,
    previous_attempts: int,
    last_error: str | None,
    reason: str,
    actor: str,
) -> AuditEvent:
    """``delivery.replayed`` or ``delivery.discarded``, with the operator's reason."""
    return AuditEvent(
        kind,
        {
            "delivery_id": delivery_id,
            "reason": reason,
            "previous_attempts": previous_attempts,
            "last_error": last_error,
        },
        message_id,
        recipient,
        actor,
    )


def consent_recorded(record: StoredConsent) -> AuditEvent:
    """The subject appears only as its keyed pseudonym."""
    return AuditEvent(
        "consent.recorded",
        {
            "record_id": record.record_id,
            "subject": record.subject,
            "purpose": record.purpose,
            "scope": record.scope,
            "state": record.state,
            "decided_by": record.decided_by,
            "expires_at": record.expires_at,
        },
        None,
        None,
        record.recorded_by,
    )


def delivery_withdrawn(
    record: StoredConsent, delivery_id: str, message_id: str, recipient: str
) -> AuditEvent:
    return AuditEvent(
        "delivery.withdrawn",
        {"delivery_id": delivery_id, "consent_record": record.record_id, "reason": f"consent {record.state}"},
        message_id,
        recipient,
        record.recorded_by,
    )


def review_resolved(
    approve: bool, delivery_id: str, message_id: str, recipient: str, reason: str, actor: str
) -> AuditEvent:
    return AuditEvent(
        "review.approved" if approve else "review.rejected",
        {"delivery_id": delivery_id, "reason": reason},
        message_id,
        recipient,
        actor,
    )


def review_escalated(
    delivery_id: str, message_id: str, recipient: str, review_role: str, deadline: float
) -> AuditEvent:
    return AuditEvent(
        "review.escalated",
        {"delivery_id": delivery_id, "review_role": review_role, "deadline": deadline},
        message_id,
        recipient,
    )
