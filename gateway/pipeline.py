"""Ingest: parse -> route -> decide -> redact and render per recipient -> one durable accept.

Everything before ``store.accept`` is pure and in memory, so a rejected message leaves no
trace but a counter and a content-free audit line. When ``accept`` returns, the message,
every decision (denials included) and every delivery are committed together: the 202 is
sent only then.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from adapters import AdapterRegistry
from adapters.base import Adapter, BatchAdapter
from adapters.identifiers import upn_warnings
from adapters.inputs import dumps
from canonical import Message, Violation
from consent import (
    ConsentView,
    Decision,
    Effect,
    PolicySnapshot,
    candidates,
    decide,
    redact,
    resolve_named_recipients,
    unknown_named_recipients,
)
from gateway.audit import AuditEvent
from gateway.config import PartnerRuntime
from gateway.crypto import Keyring
from gateway.errors import Forbidden, IdempotencyConflict, UnknownRecipient, UnsupportedMediaType
from gateway.ids import new_id
from gateway.metrics import Metrics
from gateway.store.base import (
    RENDER_FAILED_MEDIA_TYPE,
    AcceptOutcome,
    Backend,
    DecisionRecord,
    DeliveryRecord,
    IdempotencyMismatch,
    InboundRecord,
)

log = structlog.get_logger("gateway.pipeline")


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: str
    duplicate: bool
    recipients: tuple[str, ...]
    """Recipients with a delivery queued (empty for a duplicate)."""
    warnings: tuple[Violation, ...] = ()
    """Accepted, but worth the sender's attention (e.g. a UPN of an unlisted authority)."""


@dataclass(frozen=True, slots=True)
class ReplayFromOriginal:
    """What a replay from the original did: ids and the new decision's outcome, never content."""

    delivery_id: str
    message_id: str
    recipient: str
    effect: str
    """The new decision's effect: only ``permit`` queues anything."""
    rule: str
    queued: bool
    error: str | None
    """Set when the decision permitted but rendering failed again (``render-failed:...``)."""


class PolicyHolder:
    """The policy snapshot in force. Swapped whole (atomically) on reload; never mutated."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.current = snapshot


class Pipeline:
    def __init__(
        self,
        *,
        store: Backend,
        keyring: Keyring,
        adapters: AdapterRegistry,
        policy: PolicyHolder,
        partners: Mapping[str, PartnerRuntime],
        metrics: Metrics,
        notify: Callable[[str], None],
        consents: ConsentView | None = None,
        clock: Callable[[], float] = time.time,
        partner_adapters: Mapping[str, AdapterRegistry] | None = None,
        known_la_codes: frozenset[str] = frozenset(),
    ) -> None:
        self._partner_adapters = partner_adapters or {}
        self._known_la_codes = known_la_codes
        self._consents = consents
        self._store = store
        self._keyring = keyring
        self._adapters = adapters
        self._policy = policy
        self._partners = partners
        self._metrics = metrics
        self._notify = notify
        self._clock = clock

    async def ingest(
        self, source: str, content_type: str, body: bytes, idempotency_key: str | None
    ) -> Accepted:
        """One message (HTTP, MLLP). A batch format's body must carry exactly one."""
        adapter = self.adapter_for(source, content_type)
        policy = self._policy.current
        message, warnings = self._check(source, adapter.name, adapter.parse(body, policy.dictionary))
        return await self._accept(
            source, adapter.name, message, warnings, _body_sha256(content_type, body), idempotency_key
        )

    async def ingest_batch(self, source: str, format_name: str, body: bytes) -> list[Accepted]:
        """Every message of one batch file (folder drop), in file order.

        Each message's idempotency key is derived from the file's digest and its position, so a
        file processed again (a crash before it was moved to ``done/``) creates nothing new.
        The file is parsed whole first: an invalid record rejects the file and stores nothing.
        """
        registry = self._partner_adapters.get(source, self._adapters)
        adapter = registry.by_name[format_name]
        policy = self._policy.current
        if isinstance(adapter, BatchAdapter):
            messages = adapter.parse_batch(body, policy.dictionary)
        else:
            messages = (adapter.parse(body, policy.dictionary),)
        checked = [self._check(source, adapter.name, m) for m in messages]
        digest = _body_sha256(adapter.media_type, body)
        return [
            await self._accept(source, adapter.name, m, warnings, digest, f"file:{digest}:{i}")
            for i, (m, warnings) in enumerate(checked)
        ]

    def adapter_for(self, source: str, content_type: str) -> Adapter:
        registry = self._partner_adapters.get(source, self._adapters)
        adapter = registry.for_content_type(content_type)
        if adapter is None:
            supported = ", ".join(sorted(registry.by_content_type))
            raise UnsupportedMediaType(
                [Violation("/", "content-type", f"unsupported Content-Type; send one of: {supported}")]
            )
        return adapter

    def _check(
        self, source: str, adapter_name: str, message: Message
    ) -> tuple[Message, tuple[Violation, ...]]:
        """Refuse what no accept may store; return the message with named recipients resolved
        to partner ids, and the warnings for it."""
        policy = self._policy.current
        message = resolve_named_recipients(message, policy)
        if message.envelope.source and message.envelope.source != source:
            raise Forbidden("envelope.source names another partner than the authenticated one")
        unknown = unknown_named_recipients(message, policy)
        if unknown:
            idx = [i for i, r in enumerate(message.envelope.recipients) if r in unknown]
            raise UnknownRecipient(
                [
                    Violation(f"/envelope/recipients/{i}", "known-partner", "not a partner of this gateway")
                    for i in idx
                ],
                adapter=adapter_name,
            )
        return message, tuple(upn_warnings(message, self._known_la_codes))

    async def _accept(
        self,
        source: str,
        adapter_name: str,
        message: Message,
        warnings: tuple[Violation, ...],
        body_sha256: str,
        idempotency_key: str | None,
    ) -> Accepted:
        policy = self._policy.current
        received = self._clock()
        now = datetime.fromtimestamp(received, UTC)
        message_id = new_id("msg")
        message = message.with_envelope(
            message_id=message_id, source=source, received_at=now.isoformat(timespec="milliseconds")
        )
        subjects = self._subjects(message)

        decisions: list[DecisionRecord] = []
        deliveries: list[DeliveryRecord] = []
        audit: list[AuditEvent] = []
        candidate_list = candidates(message, policy)
        audit.append(
            AuditEvent(
                "message.received",
                {
                    "event_type": message.envelope.event_type,
                    "purpose": message.envelope.purpose,
                    "adapter": adapter_name,
                    "body_sha256": body_sha256,
                    "subjects": list(subjects),
                    "candidates": list(candidate_list),
                    "categories": sorted(message.categories()),
                    "risk_of_significant_harm": message.envelope.flags.risk_of_significant_harm,
                },
                message_id,
                source,
            )
        )
        deciding = time.perf_counter()
        for recipient in candidate_list:
            decision = decide(message, recipient, policy, now, self._consents)
            decision_id = new_id("dec")
            explanation = decision.as_dict()
            decisions.append(
                DecisionRecord(
                    decision_id,
                    message_id,
                    recipient,
                    decision.effect.value,
                    decision.rule,
                    decision.agreement_id,
                    tuple(sorted(decision.released)),
                    decision.policy_version,
                    explanation,
                )
            )
            event_data: dict[str, object] = {"decision_id": decision_id, **explanation}
            if decision.effect in (Effect.PERMIT, Effect.REVIEW):
                delivery = self._delivery(message, decision, decision_id, subjects)
                deliveries.append(delivery)
                event_data["delivery_id"] = delivery.delivery_id
            audit.append(AuditEvent("decision.made", event_data, message_id, recipient))
            if deliveries and deliveries[-1].dead_error and deliveries[-1].recipient == recipient:
                audit.append(
                    AuditEvent(
                        "delivery.dead_lettered",
                        {
                            "delivery_id": deliveries[-1].delivery_id,
                            "attempts": 0,
                            "last_error": deliveries[-1].dead_error,
                        },
                        message_id,
                        recipient,
                    )
                )
            self._metrics.decisions.labels(decision.effect.value, decision.rule).inc()
        # Decisions, redaction and rendering for every candidate (the pure part of ingest).
        self._metrics.decision_seconds.observe(time.perf_counter() - deciding)

        inbound = InboundRecord(
            message_id=message_id,
            source=source,
            event_type=message.envelope.event_type,
            purpose=message.envelope.purpose,
            received_at=received,
            body_sha256=body_sha256,
            canonical=self._keyring.seal(_canonical_bytes(message), message_id),
            subjects=subjects,
            idempotency_key=idempotency_key,
        )
        try:
            outcome: AcceptOutcome = await self._store.accept(inbound, decisions, deliveries, audit)
        except IdempotencyMismatch as exc:
            raise IdempotencyConflict(
                f"Idempotency-Key was already used with a different body for message {exc.message_id}; "
                "use a new key for a new message"
            ) from None
        if outcome.duplicate:
            self._metrics.duplicates.labels(source).inc()
            return Accepted(outcome.message_id, True, (), warnings)
        recipients = tuple(dict.fromkeys(d.recipient for d in deliveries))
        for r in recipients:
            self._notify(r)
        self._metrics.received.labels(source, message.envelope.event_type).inc()
        log.info(
            "message.accepted",
            message_id=message_id,
            source=source,
            event_type=message.envelope.event_type,
            candidates=len(candidate_list),
            queued=len(deliveries),
        )
        return Accepted(message_id, False, recipients, warnings)

    def _subjects(self, message: Message) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                self._keyring.pseudonym(f"{i.system}:{i.value}")
                for p in message.children()
                for i in p.identifiers
            )
        )

    def _delivery(
        self, message: Message, decision: Decision, decision_id: str, subjects: tuple[str, ...]
    ) -> DeliveryRecord:
        partner = self._partners[decision.recipient]
        delivery_id = new_id("dlv")
        payload, media_type, dead_error = self._redact_and_render(message, decision)
        # Order is kept per (recipient, child): the first child's first identifier, or the
        # message itself when it names no child.
        order_key = f"{decision.recipient}:{subjects[0] if subjects else message.envelope.message_id}"
        return DeliveryRecord(
            delivery_id=delivery_id,
            message_id=message.envelope.message_id,
            decision_id=decision_id,
            recipient=decision.recipient,
            order_key=order_key,
            media_type=media_type,
            payload=self._keyring.seal(payload, delivery_id),
            max_attempts=partner.delivery.settings.max_attempts,
            dead_error=dead_error,
            consent_records=decision.consent_records,
            review_role=decision.review_role,
            review_deadline=decision.review_deadline.timestamp() if decision.review_deadline else None,
        )

    def _redact_and_render(self, message: Message, decision: Decision) -> tuple[bytes, str, str | None]:
        """Redact ``message`` to what ``decision`` releases and render it in the recipient's
        current format: ``(payload, media_type, None)``, or ``(b"", RENDER_FAILED_MEDIA_TYPE,
        "render-failed:<ExceptionType>")`` when the renderer (or the format) fails. Never
        raises for a renderer fault; the error code names the exception type, never a value."""
        partner = self._partners.get(decision.recipient)
        fmt = partner.delivery.format if partner is not None else ""
        adapter = self._adapters.by_name.get(fmt)
        try:
            if adapter is None:  # refused at start-up; a guard for later policy reloads
                raise LookupError(fmt)
            return adapter.render(redact(message, decision)), adapter.media_type, None
        except Exception as exc:  # noqa: BLE001 - a renderer fault must not lose the message or block others
            log.error(
                "delivery.render_failed",
                message_id=message.envelope.message_id,
                recipient=decision.recipient,
                error=type(exc).__name__,
            )
            return b"", RENDER_FAILED_MEDIA_TYPE, f"render-failed:{type(exc).__name__}"

    async def replay_from_original(
        self, delivery_id: str, reason: str, actor: str
    ) -> ReplayFromOriginal | None:
        """Rebuild a dead letter's payload from the stored original message and queue it again.

        Loads the message's sealed canonical copy, opens it, **decides again** for the
        delivery's recipient with the policy and consent registry in force now (the same
        ``decide`` call as ingest), redacts, renders in the recipient's current format, seals
        under the delivery id and hands it to ``requeue_with_payload``: one transaction
        records the new decision in ``decisions`` and points the delivery at it, replaces the
        payload and media type, resets the delivery to ``ready`` with its attempts reset
        (same delivery id and message id) and audits ``decision.made`` and
        ``delivery.replayed_from_original`` (reason, actor, the new decision's explanation).

        MUST NOT release more than the current policy allows: only a ``permit`` queues
        anything. Any other outcome (agreement expired, consent withdrawn, held for review)
        and a renderer that still fails queue nothing; the delivery stays dead (pointing at
        its old decision) and the new decision is recorded with its ``decision.made`` event
        in one transaction (``record_decision``), as at ingest. Either way the sender's status
        then shows the new decision for the recipient. Returns ``None`` when the id is not a
        dead letter (or its message is gone). Neither the answer nor the audit nor a log line
        carries content: ids, effects, rules and error codes only.
        """
        letter = await self._store.dead_letter(delivery_id)
        if letter is None:
            return None
        sealed = await self._store.load_canonical(letter.message_id)
        if sealed is None:
            return None
        message = Message.from_dict(json.loads(self._keyring.open(sealed, letter.message_id)))
        recipient = letter.recipient
        decision = decide(message, recipient, self._policy.current, self._now(), self._consents)
        self._metrics.decisions.labels(decision.effect.value, decision.rule).inc()
        explanation = decision.as_dict()
        record = DecisionRecord(
            new_id("dec"),
            letter.message_id,
            recipient,
            decision.effect.value,
            decision.rule,
            decision.agreement_id,
            tuple(sorted(decision.released)),
            decision.policy_version,
            explanation,
        )
        decided: dict[str, object] = {
            "decision_id": record.decision_id,
            **explanation,
            "replay_of": delivery_id,
            "reason": reason,
        }
        events = [AuditEvent("decision.made", decided, letter.message_id, recipient, actor)]
        if decision.effect is not Effect.PERMIT:
            await self._store.record_decision(record, events)
            log.info(
                "delivery.replay_from_original_refused",
                delivery_id=delivery_id,
                message_id=letter.message_id,
                recipient=recipient,
                effect=decision.effect.value,
                rule=decision.rule,
            )
            return ReplayFromOriginal(
                delivery_id, letter.message_id, recipient, decision.effect.value, decision.rule, False, None
            )
        payload, media_type, render_error = self._redact_and_render(message, decision)
        if render_error is not None:
            decided["error"] = render_error
            await self._store.record_decision(record, events)
            return ReplayFromOriginal(
                delivery_id,
                letter.message_id,
                recipient,
                decision.effect.value,
                decision.rule,
                False,
                render_error,
            )
        decided["delivery_id"] = delivery_id  # as at ingest: the decision queued this delivery
        events.append(
            AuditEvent(
                "delivery.replayed_from_original",
                {
                    "delivery_id": delivery_id,
                    "reason": reason,
                    "previous_attempts": letter.attempts,
                    "last_error": letter.last_error,
                    "media_type": media_type,
                    "decision": explanation,
                },
                letter.message_id,
                recipient,
                actor,
            )
        )
        requeued = await self._store.requeue_with_payload(
            delivery_id,
            record,
            self._keyring.seal(payload, delivery_id),
            media_type,
            events,
            decision.consent_records,
        )
        if not requeued:  # replayed, discarded or requeued by someone else meanwhile
            return None
        self._notify(recipient)
        log.info(
            "delivery.replayed_from_original",
            delivery_id=delivery_id,
            message_id=letter.message_id,
            recipient=recipient,
            rule=decision.rule,
        )
        return ReplayFromOriginal(
            delivery_id, letter.message_id, recipient, decision.effect.value, decision.rule, True, None
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def _body_sha256(content_type: str, body: bytes) -> str:
    return hashlib.sha256(
        content_type.split(";", maxsplit=1)[0].strip().lower().encode() + b"\n" + body
    ).hexdigest()


def _canonical_bytes(message: Message) -> bytes:
    return dumps(message.as_dict())
