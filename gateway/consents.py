"""The gateway's consent registry: stored records (subjects as keyed pseudonyms) indexed in
memory for the decision function, kept in step with every change made through the API."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

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


class GatewayConsents:
    """Holds the ``ConsentRegistry`` the pipeline decides with. Subjects are looked up by the
    keyring's pseudonym of ``system:value``, the same key the store holds."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self.registry = ConsentRegistry(key=self.subject_key)

    def subject_key(self, identifier: Identifier) -> str:
        return self._keyring.pseudonym(f"{identifier.system}:{identifier.value}")

    def load(self, stored: Iterable[StoredConsent]) -> None:
        self.registry = ConsentRegistry((to_record(s) for s in stored), key=self.subject_key)

    def add(self, stored: StoredConsent) -> None:
        self.registry.add(to_record(stored))

    def lookup(
        self, identifiers: tuple[Identifier, ...], purpose: str, recipient: str, sector: str, now: datetime
    ) -> ConsentRecord | None:
        """``ConsentView``: the current registry's answer (the registry is replaced on load)."""
        return self.registry.lookup(identifiers, purpose, recipient, sector, now)
