"""The gateway's consent registry: stored records (subjects as keyed pseudonyms) indexed in
memory for the decision function, kept in step with every change made through the API."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from canonical import Identifier
from consent import ConsentRecord, ConsentRegistry, ConsentState, DecidedBy
from gateway.crypto import Keyring
from gateway.store.base import StoredConsent


def to_record(stored: StoredConsent) -> ConsentRecord:
    return ConsentRecord(
        record_id=stored.record_id,
        subject=stored.subject,
        purpose=stored.purpose,
        scope=stored.scope,
        state=ConsentState(stored.state),
        decided_by=DecidedBy(stored.decided_by),
        recorded_at=datetime.fromtimestamp(stored.recorded_at, UTC),
        expires_at=datetime.fromtimestamp(stored.expires_at, UTC) if stored.expires_at is not None else None,
        evidence_ref=stored.evidence_ref,
    )


class ConsentFeed(Protocol):
    """What ``GatewayConsents.sync`` reads from the store."""

    async def consents_since(self, audit_seq: int) -> tuple[int, list[StoredConsent]]:
        """Consent records whose ``consent.recorded`` audit event comes after ``audit_seq``,
        oldest first, and the audit seq to ask from next time."""
        ...


class GatewayConsents:
    """Holds the ``ConsentRegistry`` the pipeline decides with. Subjects are looked up by the
    keyring's pseudonym of ``system:value``, the same key the store holds.

    Several gateway processes may share one store (PostgreSQL, RabbitMQ + PostgreSQL). A
    record made through one instance's API is added there at once; every other instance
    adds it on its next ``sync`` (every ``consent_sync_seconds``), which reads the records
    whose ``consent.recorded`` audit event is newer than the last one it saw. So a
    withdrawal recorded anywhere is in force everywhere within that interval. Adding is
    idempotent (by record id): a record is never counted twice.
    """

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self.registry = ConsentRegistry(key=self.subject_key)
        self._known: set[str] = set()
        self.audit_seq = 0
        """The audit seq up to which every recorded consent is in ``registry``."""

    def subject_key(self, identifier: Identifier) -> str:
        return self._keyring.pseudonym(f"{identifier.system}:{identifier.value}")

    def load(self, stored: Iterable[StoredConsent], audit_seq: int = 0) -> None:
        """Replace the registry with ``stored``, read after the audit chain's head was at
        ``audit_seq`` (records made in between come again on ``sync`` and are skipped)."""
        records = list(stored)
        self._known = {s.record_id for s in records}
        self.registry = ConsentRegistry((to_record(s) for s in records), key=self.subject_key)
        self.audit_seq = audit_seq

    def knows(self, record_id: str) -> bool:
        """Whether the record is in the registry (the decision function sees it)."""
        return record_id in self._known

    def add(self, stored: StoredConsent) -> bool:
        """Add one record; False when it is already in the registry."""
        if stored.record_id in self._known:
            return False
        self._known.add(stored.record_id)
        self.registry.add(to_record(stored))
        return True

    async def sync(self, feed: ConsentFeed) -> int:
        """Add the records other instances made since the last sync; returns how many."""
        head, records = await feed.consents_since(self.audit_seq)
        added = sum(self.add(s) for s in records)
        self.audit_seq = head
        return added

    def lookup(
        self, identifiers: tuple[Identifier, ...], purpose: str, recipient: str, sector: str, now: datetime
    ) -> ConsentRecord | None:
        """``ConsentView``: the current registry's answer (the registry is replaced on load)."""
        return self.registry.lookup(identifiers, purpose, recipient, sector, now)
