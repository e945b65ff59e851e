"""The IG lead's API: the consent registry, the review queue and policy reload.

Every change is audited with the acting user. Consent subjects are accepted as identifiers
and stored only as keyed pseudonyms; answers never echo the identifier back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from canonical import Identifier, InvalidInput, Violation
from consent import DecidedBy
from consent.records import consent_problems
from gateway.api.bodies import json_body, reason_of
from gateway.api.state import SERVICES, Services
from gateway.audit import AuditEvent
from gateway.config import load_policy
from gateway.errors import ConfigError, NotFound
from gateway.ids import new_id
from gateway.store.base import StoredConsent

DECIDED_BY = frozenset(d.value for d in DecidedBy)

IG_ROLES = frozenset({"ig-lead", "admin"})


def _scope_recipients(svc: Services, scope: str) -> list[str]:
    partners = svc.policy.current.partners
    if scope.startswith("sector:"):
        return [p.id for p in partners.values() if p.sector == scope.removeprefix("sector:")]
    return [scope] if scope in partners else []


def _timestamp(value: str | None, default: float | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else default


async def post_consent(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    actor = svc.auth.operator(request, IG_ROLES)
    body = await json_body(request)
    problems = consent_problems(body, svc.policy.current)
    if problems:
        raise InvalidInput(problems, adapter="consent-record")
    scope = body["scope"]
    stored = await _record(svc, body, actor)
    cancelled = await svc.backend.record_consent(stored, _scope_recipients(svc, scope))
    svc.consents.add(stored)
    return web.json_response(
        {"record_id": stored.record_id, "state": stored.state, "cancelled_deliveries": cancelled}, status=201
    )


async def _record(svc: Services, body: dict[str, Any], actor: str) -> StoredConsent:
    subject = svc.consents.subject_key(Identifier(body["subject"]["system"], body["subject"]["value"]))
    now = datetime.now(UTC).timestamp()
    return StoredConsent(
        record_id=new_id("con"),
        subject=subject,
        purpose=body["purpose"],
        scope=body["scope"],
        state=body["state"],
        decided_by=body["decided_by"],
        recorded_at=_timestamp(body.get("recorded_at"), now) or now,
        expires_at=_timestamp(body.get("expires_at"), None),
        evidence_ref=body.get("evidence_ref"),
        recorded_by=f"ig:{actor}",
    )


async def withdraw_consent(request: web.Request) -> web.Response:
    """Withdraw a recorded consent: a new ``withdrawn`` record for the same subject, purpose
    and scope, effective at once (queued deliveries relying on it are cancelled)."""
    svc = request.app[SERVICES]
    actor = svc.auth.operator(request, IG_ROLES)
    body = await json_body(request)
    reason = reason_of(body)
    decided_by = body.get("decided_by")
    if decided_by is not None and decided_by not in DECIDED_BY:
        raise InvalidInput(
            [Violation("/decided_by", "enum", f"one of {', '.join(sorted(DECIDED_BY))}, or leave it out")]
        )
    original = await svc.backend.consent(request.match_info["record_id"])
    if original is None:
        raise NotFound("no consent record with this id")
    stored = StoredConsent(
        record_id=new_id("con"),
        subject=original.subject,
        purpose=original.purpose,
        scope=original.scope,
        state="withdrawn",
        decided_by=decided_by or original.decided_by,
        recorded_at=datetime.now(UTC).timestamp(),
        expires_at=None,
        evidence_ref=reason[:200],
        recorded_by=f"ig:{actor}",
    )
    cancelled = await svc.backend.record_consent(stored, _scope_recipients(svc, original.scope))
    svc.consents.add(stored)
    return web.json_response(
        {
            "record_id": stored.record_id,
            "state": "withdrawn",
            "withdraws": original.record_id,
            "cancelled_deliveries": cancelled,
        },
        status=201,
    )


async def get_consents(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    svc.auth.operator(request, IG_ROLES)
    system, value = request.query.get("system"), request.query.get("value")
    if not system or not value:
        raise InvalidInput([Violation("/query", "required", "give the subject as ?system=...&value=...")])
    records = await svc.backend.consents_for(svc.consents.subject_key(Identifier(system, value)))
    return web.json_response(
        {
            "records": [
                {
                    "record_id": r.record_id,
                    "purpose": r.purpose,
                    "scope": r.scope,
                    "state": r.state,
                    "decided_by": r.decided_by,
                    "recorded_at": r.recorded_at,
                    "expires_at": r.expires_at,
                    "evidence_ref": r.evidence_ref,
                    "recorded_by": r.recorded_by,
                }
                for r in records
            ]
        }
    )


async def get_reviews(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    svc.auth.operator(request, IG_ROLES)
    return web.json_response(
        {
            "reviews": [
                {
                    "delivery_id": h.delivery_id,
                    "message_id": h.message_id,
                    "recipient": h.recipient,
                    "review_role": h.review_role,
                    "deadline": h.review_deadline,
                    "escalated": h.escalated,
                    "decision": h.decision,
                }
                for h in await svc.backend.held()
            ]
        }
    )


async def approve_review(request: web.Request) -> web.Response:
    return await _resolve_review(request, approve=True)


async def reject_review(request: web.Request) -> web.Response:
    return await _resolve_review(request, approve=False)


async def _resolve_review(request: web.Request, *, approve: bool) -> web.Response:
    svc = request.app[SERVICES]
    actor = svc.auth.operator(request, IG_ROLES)
    reason = reason_of(await json_body(request))
    delivery_id = request.match_info["delivery_id"]
    if not await svc.backend.resolve_review(delivery_id, approve, reason, f"ig:{actor}"):
        raise NotFound("no held delivery with this id")
    for worker in svc.dispatcher.workers.values():
        worker.wake()
    return web.json_response({"delivery_id": delivery_id, "state": "ready" if approve else "rejected"})


async def reload_policy(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    actor = svc.auth.operator(request, IG_ROLES)
    version = await reload(svc, f"ig:{actor}")
    return web.json_response({"policy_version": version})


async def reload(svc: Services, actor: str) -> str:
    """Compile the policy files again and swap the snapshot atomically. An invalid policy
    (or one that adds or removes partners, which needs a restart) leaves the old one in force."""
    try:
        snapshot = await asyncio.to_thread(load_policy, svc.deployment.settings.config_dir)
    except ConfigError as exc:
        # Name files relative to the deployment folder: the server's own paths are not the
        # caller's business.
        detail = exc.detail.replace(f"{svc.deployment.settings.config_dir}/", "")
        await svc.backend.append_audit(
            [AuditEvent("policy.reload_refused", {"problems": detail}, actor=actor)]
        )
        raise InvalidInput(
            [Violation("/", "policy-invalid", line) for line in detail.splitlines()],
            detail="the new policy is invalid; the old one stays in force",
        ) from None
    if set(snapshot.partners) != set(svc.deployment.partners):
        raise InvalidInput(
            [
                Violation(
                    "/partners.yaml",
                    "partners-changed",
                    "partners were added or removed: restart the gateway to apply",
                )
            ],
            detail="the new policy changes the partner list; the old one stays in force",
        )
    if snapshot.version != svc.policy.current.version:
        svc.policy.current = snapshot
        await svc.backend.append_audit(
            [AuditEvent("policy.loaded", {"policy_version": snapshot.version}, actor=actor)]
        )
    return snapshot.version
