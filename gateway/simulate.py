"""What each candidate recipient would receive of a message, and why — without storing or
sending anything. The same steps as the pipeline (routing, ``consent.decide``, redaction,
the recipient's renderer), so ``gateway policy explain`` and ``gateway policy test`` show
exactly what delivery would send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters import AdapterRegistry
from canonical import InvalidInput, Message, Violation
from consent import ConsentRegistry, Decision, Effect, PolicySnapshot, candidates, decide, redact
from consent.records import consent_problems, record_from_document

SIMULATED_ID = "msg_SIMULATED0000000000000000"


@dataclass(frozen=True, slots=True)
class Outcome:
    recipient: str
    decision: Decision
    payload: bytes | None
    """What delivery would send (permit), or would send if approved (review); None on deny."""
    media_type: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "decision": self.decision.as_dict(),
            "media_type": self.media_type,
            "payload": self.payload.decode("utf-8", "replace") if self.payload is not None else None,
        }


def consent_registry(
    documents: Iterable[Any], policy: PolicySnapshot, default_time: datetime
) -> ConsentRegistry:
    """Consent records as written by an IG lead; ``InvalidInput`` naming the record and field."""
    registry = ConsentRegistry()
    for i, doc in enumerate(documents):
        problems = consent_problems(doc, policy)
        if problems:
            raise InvalidInput(
                [Violation(f"/consents/{i}{p.field.rstrip('/')}", p.rule, p.message) for p in problems],
                adapter="consent-record",
            )
        registry.add(record_from_document(doc, f"consent-{i + 1}", default_time))
    return registry


def simulate(
    message: Message,
    *,
    policy: PolicySnapshot,
    formats: Mapping[str, str],
    adapters: AdapterRegistry,
    at: datetime,
    consents: ConsentRegistry | None = None,
    only: str | None = None,
) -> list[Outcome]:
    """Decide and render for every candidate (or just ``only``) as of ``at``."""
    message = message.with_envelope(
        message_id=SIMULATED_ID, received_at=at.isoformat(timespec="milliseconds")
    )
    recipients = [only] if only else list(candidates(message, policy))
    outcomes = []
    for recipient in recipients:
        decision = decide(message, recipient, policy, at, consents)
        payload: bytes | None = None
        media_type: str | None = None
        adapter = adapters.by_name.get(formats.get(recipient, ""))
        if decision.effect in (Effect.PERMIT, Effect.REVIEW) and adapter is not None:
            payload, media_type = adapter.render(redact(message, decision)), adapter.media_type
        outcomes.append(Outcome(recipient, decision, payload, media_type))
    return outcomes
