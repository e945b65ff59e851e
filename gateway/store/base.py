"""The narrow interfaces every backend implements: a ``Store`` for accepted messages,
decisions, idempotency and the audit log, and a ``Queue`` for per-partner deliveries.

The embedded backend (SQLite) implements both in one file and one transaction. A scale-out
backend (PostgreSQL + RabbitMQ) implements the same protocols; the pipeline, the delivery
workers and the HTTP API only ever see these.

Contracts every backend MUST keep:

* ``accept`` is atomic and durable: when it returns, the message, its decisions, its
  deliveries and its audit events are committed together (or, for a duplicate idempotency
  key, nothing new is written). A crash after it returns loses nothing.
* Payloads arrive already ``Sealed``; a backend never sees plaintext.
* ``lease`` hands out, per recipient, only the oldest undelivered delivery of each
  ``order_key``: order is kept per (recipient, child).
* A delivery leaves the queue only by ``complete`` (delivered), ``fail`` reaching the retry
  budget (dead letter), ``discard`` or ``cancel``, each audited in the same transaction.
* A dead letter returns to the queue only by ``replay`` (the stored payload again) or
  ``requeue_with_payload`` (a payload rebuilt from the original message), each audited in
  the same transaction, always under the same delivery id and message id.
* Every decision is a row in ``decisions``, with its ``decision.made`` audit event in the
  same transaction: at ingest (``accept``), on a replay from the original that queues
  (``requeue_with_payload``, which also points the delivery at it) and on one that does not
  (``record_decision``). A row is never updated or deleted: ``message_status`` shows the
  newest decision per recipient, the older ones stay (and stay in the audit).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gateway.audit import AuditEvent, AuditRecord, canonical_json
from gateway.crypto import Keyring, Sealed


class DeliveryState(enum.StrEnum):
    READY = "ready"
    LEASED = "leased"
    DELIVERED = "delivered"
    DEAD = "dead"
    DISCARDED = "discarded"
    HELD = "held"
    """Held for review (consent not recorded): waits for a named role; never sent by default."""
    WITHDRAWN = "withdrawn"
    """Cancelled before delivery because the consent it relied on was refused or withdrawn."""
    REJECTED = "rejected"
    """A reviewer rejected the held delivery."""


OPEN_STATES = frozenset({DeliveryState.READY, DeliveryState.LEASED, DeliveryState.HELD})


@dataclass(frozen=True, slots=True)
class InboundRecord:
    message_id: str
    source: str
    event_type: str
    purpose: str
    received_at: float
    body_sha256: str
    canonical: Sealed
    subjects: tuple[str, ...]
    """Keyed pseudonyms of the subjects' identifiers (for per-child reports)."""
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    decision_id: str
    message_id: str
    recipient: str
    effect: str
    rule: str
    agreement_id: str | None
    released: tuple[str, ...]
    policy_version: str
    detail: Mapping[str, object] = field(default_factory=dict)
    """The decision's structured explanation (no personal data)."""

    def row(self, released: object) -> tuple[object, ...]:
        """The values in ``decisions`` column order, ``released`` as the store encodes the
        list (JSON text on SQLite, an array on PostgreSQL) and the detail as canonical JSON."""
        return (
            self.decision_id,
            self.message_id,
            self.recipient,
            self.effect,
            self.rule,
            self.agreement_id,
            released,
            self.policy_version,
            canonical_json(dict(self.detail)),
        )


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    delivery_id: str
    message_id: str
    decision_id: str
    recipient: str
    order_key: str
    media_type: str
    payload: Sealed
    max_attempts: int
    dead_error: str | None = None
    """Set when the payload could not be rendered: the delivery is stored dead-lettered."""
    consent_records: tuple[str, ...] = ()
    """Consent records the release relies on; refusing or withdrawing one cancels it."""
    review_role: str | None = None
    """Set for a held delivery: who must approve it."""
    review_deadline: float | None = None


RENDER_FAILED_MEDIA_TYPE = "application/x-gateway-render-failed"


@dataclass(frozen=True, slots=True)
class AcceptOutcome:
    message_id: str
    duplicate: bool
    """True when the idempotency key was seen before with the same body: nothing new stored."""


@dataclass(frozen=True, slots=True)
class Lease:
    delivery_id: str
    message_id: str
    recipient: str
    attempt: int
    max_attempts: int
    media_type: str
    payload: Sealed
    lease_token: str
    lease_until: float
    queued_at: float
    """When the delivery was queued (accept time): for end-to-end latency."""


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    recipient: str
    effect: str
    rule: str
    delivery_id: str | None
    state: str | None
    attempts: int
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class MessageStatus:
    message_id: str
    source: str
    event_type: str
    received_at: float
    recipients: tuple[RecipientStatus, ...]


@dataclass(frozen=True, slots=True)
class QueueStats:
    recipient: str
    ready: int
    leased: int
    delivered: int
    dead: int
    oldest_ready_age_seconds: float
    held: int = 0


@dataclass(frozen=True, slots=True)
class HeldDelivery:
    delivery_id: str
    message_id: str
    recipient: str
    review_role: str
    review_deadline: float
    escalated: bool
    decision: dict[str, object]
    """The decision's structured explanation (no personal data)."""


@dataclass(frozen=True, slots=True)
class StoredConsent:
    """A consent record as stored: the subject only as a keyed pseudonym."""

    record_id: str
    subject: str
    purpose: str
    scope: str
    state: str
    decided_by: str
    recorded_at: float
    expires_at: float | None
    evidence_ref: str | None
    recorded_by: str

    def as_row(self) -> tuple[object, ...]:
        """The values in ``CONSENT_COLUMNS`` order (every backend's ``consents`` table)."""
        return (
            self.record_id,
            self.subject,
            self.purpose,
            self.scope,
            self.state,
            self.decided_by,
            self.recorded_at,
            self.expires_at,
            self.evidence_ref,
            self.recorded_by,
        )


CONSENT_COLUMNS = (
    "id, subject, purpose, scope, state, decided_by, recorded_at, expires_at, evidence_ref, recorded_by"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    delivery_id: str
    message_id: str
    recipient: str
    attempts: int
    last_error: str
    updated_at: float


class IdempotencyMismatch(Exception):
    """Same (source, key) already used with a different body; carries the first message id."""

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id)
        self.message_id = message_id


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise if the store cannot answer (for /readyz)."""

    async def accept(
        self,
        inbound: InboundRecord,
        decisions: Sequence[DecisionRecord],
        deliveries: Sequence[DeliveryRecord],
        audit: Sequence[AuditEvent],
    ) -> AcceptOutcome:
        """Atomic, durable accept. Raises ``IdempotencyMismatch``."""

    async def message_status(self, message_id: str) -> MessageStatus | None:
        """The message and, per recipient (once each, in the order of their first decision),
        its newest decision and the recipient's delivery (if any: a delivery refused on a
        replay from the original stays dead beside the new deny). ``None`` if unknown."""

    async def record_decision(self, decision: DecisionRecord, audit: Sequence[AuditEvent]) -> None:
        """Insert a decision that queues nothing (a replay from the original the current
        policy refuses, or whose rendering failed again) and append ``audit``, in one
        transaction. MUST NOT touch any delivery: the delivery keeps its old decision."""

    async def load_canonical(self, message_id: str) -> Sealed | None:
        """The message's sealed canonical copy (sealed under the message id), or ``None``."""

    async def append_audit(self, events: Sequence[AuditEvent]) -> None: ...
    def audit_records(self) -> AsyncIterator[AuditRecord]: ...


class Queue(Protocol):
    async def lease(self, recipient: str, limit: int, lease_seconds: float) -> list[Lease]: ...
    async def complete(self, lease: Lease, audit: AuditEvent) -> bool:
        """Mark delivered. False if the lease was lost (another worker or an expiry)."""

    async def complete_many(self, items: Sequence[tuple[Lease, AuditEvent]]) -> list[bool]:
        """``complete`` for several leases in one transaction: answer ``i`` is what
        ``complete(*items[i])`` would have answered. Only a lease still held with its token
        completes, and only the completed ones' audit events are appended (in ``items``
        order). All or nothing on error: when it raises, nothing was completed. MUST NOT
        be given two items for one delivery."""

    async def fail(self, lease: Lease, error_code: str, retry_at: float | None, audit: AuditEvent) -> str:
        """Record a failed attempt. ``retry_at=None`` or an exhausted budget dead-letters.
        Returns the new state."""

    async def release_expired_leases(self) -> int: ...
    async def stats(self) -> list[QueueStats]: ...
    async def dead_letters(self, recipient: str | None, limit: int) -> list[DeadLetter]: ...
    async def replay(self, delivery_id: str, reason: str, actor: str) -> bool: ...
    async def discard(self, delivery_id: str, reason: str, actor: str) -> bool: ...
    async def dead_letter(self, delivery_id: str) -> DeadLetter | None:
        """The delivery if it is a dead letter now, else ``None``."""

    async def requeue_with_payload(
        self,
        delivery_id: str,
        decision: DecisionRecord,
        payload: Sealed,
        media_type: str,
        audit: Sequence[AuditEvent],
        consent_records: Sequence[str] = (),
    ) -> bool:
        """Replay from the original: in one transaction, insert the new ``decision`` (a new
        decision id, the delivery's message id and recipient) and point the delivery at it,
        replace a dead delivery's payload (already sealed under the delivery id), media type
        and the consent records its release relies on, return it to ``ready`` with its
        attempts reset (same delivery id and message id: recipients de-duplicate by message
        id), and append ``audit``.

        Only for a delivery in state ``dead`` whose message id and recipient are the
        decision's: for any other (or unknown) id nothing is written, neither the decision
        nor the audit events, and the answer is ``False``."""

    async def ready_recipients(self) -> list[str]:
        """Recipients with deliveries due now (for worker wake-up after restarts)."""


@runtime_checkable
class ReleasesPartnerLeases(Protocol):
    """A queue on which a restarted delivery process can take back, at start-up, the leases
    its killed predecessor held, instead of waiting ``lease_seconds`` for them to expire.

    ``lease_holder`` names who holds the leases this object hands out. On SQLite one
    process leases for a webhook partner, so the holder is not recorded and every lease of
    the partner is its predecessor's. On PostgreSQL (and RabbitMQ + PostgreSQL) every lease
    token carries the holder, the delivery process takes its supervisor's holder id (the
    same for each child of one ``serve``, unique per ``serve``), and only leases with that
    holder are released: another instance's leases MUST NOT be, live or not."""

    lease_holder: str

    async def release_leases_of(self, recipients: Sequence[str]) -> int:
        """Return the leases of these recipients held by ``lease_holder`` to the queue at
        once (as if they had expired); the old holder's later ``complete``/``fail`` of them
        answer lost. Returns how many were released. MUST NOT touch other recipients'
        leases (pull partners' inbox leases included) nor other holders' leases."""


class Backend(Store, Queue, Protocol):
    """What the gateway runs on: a store and a queue (one object for SQLite)."""

    async def ack(self, recipient: str, delivery_id: str, audit: AuditEvent) -> bool:
        """A pull partner acknowledges a delivery it fetched."""

    async def rewrap(self, keyring: Keyring) -> int:
        """Re-seal every payload not under the keyring's active key."""

    async def record_consent(self, record: StoredConsent, recipients_in_scope: Sequence[str]) -> list[str]:
        """Store a consent record; a refusal or withdrawal cancels, in the same transaction,
        the open deliveries in scope that relied on the subject's consent for that purpose."""

    async def consents_for(self, subject: str) -> list[StoredConsent]: ...
    async def consent(self, record_id: str) -> StoredConsent | None: ...
    async def all_consents(self) -> list[StoredConsent]: ...
    async def audit_head_seq(self) -> int:
        """The audit chain's last seq (0 when empty); every record up to it has committed."""
        ...

    async def consents_since(self, audit_seq: int) -> tuple[int, list[StoredConsent]]:
        """Consent records whose ``consent.recorded`` audit event has a seq above
        ``audit_seq``, oldest first, and the seq to ask from next time (the head as read)."""
        ...

    async def held(self, limit: int = 500) -> list[HeldDelivery]: ...
    async def resolve_review(self, delivery_id: str, approve: bool, reason: str, actor: str) -> bool: ...
    async def escalate_overdue(self) -> list[HeldDelivery]:
        """Mark overdue held deliveries escalated (audited); they stay held."""


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """Filters for the console's message search; ``None`` means any. Times are epoch seconds."""

    message_id: str | None = None
    source: str | None = None
    recipient: str | None = None
    event_type: str | None = None
    status: str | None = None
    """A delivery state: messages with at least one delivery in it."""
    since: float | None = None
    until: float | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One message's metadata and its deliveries' (recipient, state): never content."""

    message_id: str
    source: str
    event_type: str
    purpose: str
    received_at: float
    deliveries: tuple[tuple[str, str], ...]


@runtime_checkable
class ConsoleReads(Protocol):
    """Read-only queries behind the web console. Metadata and audit records only: none of
    them opens a sealed payload."""

    async def search_messages(self, query: MessageQuery) -> list[MessageSummary]:
        """Newest first, at most ``query.limit``."""

    async def audit_for_message(self, message_id: str) -> list[AuditRecord]:
        """Every audit record about the message, in chain order."""

    async def recent_audit(self, kinds: Sequence[str], limit: int) -> list[AuditRecord]:
        """The newest ``limit`` records of these kinds, newest first."""

    async def messages_about(self, subject: str, limit: int) -> list[str]:
        """Ids of messages whose subjects include this keyed pseudonym, oldest first."""

    async def load_canonical(self, message_id: str) -> Sealed | None:
        """The sealed canonical message (for the audited IG content view only)."""
