"""Partner API: send a message, read its status, pull an inbox and acknowledge."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import orjson
from aiohttp import web

from canonical import InvalidInput, Violation
from gateway.api.problems import problem
from gateway.api.state import SERVICES
from gateway.audit import AuditEvent
from gateway.crypto import Sealed
from gateway.errors import Forbidden, IdempotencyConflict, NotFound, PayloadTooLarge
from gateway.rejections import record_rejection

MAX_IDEMPOTENCY_KEY = 200
MAX_INBOX_LIMIT = 100


async def post_message(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    started = time.perf_counter()
    source = svc.auth.partner(request)
    try:
        return await _accept(request, source, started)
    except (InvalidInput, Forbidden, IdempotencyConflict) as exc:
        # Counted and audited without content: operators see rejections per partner and rule.
        await record_rejection(svc.backend, svc.metrics, source, exc)
        raise


async def _accept(request: web.Request, source: str, started: float) -> web.Response:
    svc = request.app[SERVICES]
    limit = svc.deployment.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge([Violation("/", "max-body-bytes", f"the body must be at most {limit} bytes")])
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            [Violation("/", "max-body-bytes", f"the body must be at most {limit} bytes")]
        ) from None
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise InvalidInput(
            [
                Violation(
                    "/headers/Idempotency-Key",
                    "idempotency-key-format",
                    f"1 to {MAX_IDEMPOTENCY_KEY} printable characters",
                )
            ]
        )
    accepted = await svc.pipeline.ingest(source, request.headers.get("Content-Type", ""), body, key)
    svc.metrics.ingest_seconds.observe(time.perf_counter() - started)
    status_url = f"/v1/messages/{accepted.message_id}"
    document: dict[str, Any] = {
        "message_id": accepted.message_id,
        "status_url": status_url,
        "duplicate": accepted.duplicate,
    }
    if accepted.warnings:
        document["warnings"] = [w.as_dict() for w in accepted.warnings]
    # orjson, as for every other JSON the accept path writes (stdlib json cost ~1 % here).
    return web.Response(
        body=orjson.dumps(document),
        status=202,
        content_type="application/json",
        headers={"Location": status_url},
    )


async def get_message(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    partner = svc.auth.partner(request)
    status = await svc.backend.message_status(request.match_info["message_id"])
    if status is None:
        raise NotFound("no message with this id")
    if status.source != partner:
        raise Forbidden("only the partner that sent a message may read its status")
    return web.json_response(
        {
            "message_id": status.message_id,
            "event_type": status.event_type,
            "received_at": status.received_at,
            "status": overall_status([r.state for r in status.recipients if r.delivery_id]),
            "recipients": [
                {
                    "partner": r.recipient,
                    "decision": r.effect,
                    "rule": r.rule,
                    "delivery": r.state if r.delivery_id else "not-sent",
                    "attempts": r.attempts,
                    "delivered_at": r.delivered_at,
                }
                for r in status.recipients
            ],
        }
    )


def overall_status(delivery_states: list[str | None]) -> str:
    """One word for the sender (each recipient's own state is listed beside it):

    ``decided``    nothing to deliver: every candidate was denied
    ``queued``     a delivery is waiting or in flight
    ``held``       nothing in flight, but a delivery is held for review
    ``delivered``  every delivery arrived
    ``failed``     none open, and a delivery was dead-lettered or discarded
    ``closed``     none open, and a delivery was withdrawn (consent) or rejected (review)
    """
    states = set(delivery_states)
    if not states:
        return "decided"
    if states & {"ready", "leased"}:
        return "queued"
    if "held" in states:
        return "held"
    if states == {"delivered"}:
        return "delivered"
    return "failed" if states & {"dead", "discarded"} else "closed"


async def get_inbox(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    partner = svc.auth.partner(request)
    runtime = svc.deployment.partners[partner]
    if runtime.delivery.mode != "pull":
        return problem(
            409,
            "Not a pull partner",
            "deliveries to this partner are pushed to its webhook; there is no inbox",
            "not-a-pull-partner",
        )
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= MAX_INBOX_LIMIT:
        raise InvalidInput([Violation("/query/limit", "range", f"an integer from 1 to {MAX_INBOX_LIMIT}")])
    leases = await svc.backend.lease(partner, limit, runtime.delivery.settings.lease_seconds)
    items: list[dict[str, Any]] = []
    for lease in leases:
        payload = svc.keyring.open(Sealed(lease.payload.key_id, lease.payload.blob), lease.delivery_id)
        item: dict[str, Any] = {
            "delivery_id": lease.delivery_id,
            "message_id": lease.message_id,
            "media_type": lease.media_type,
            "attempt": lease.attempt,
            "lease_expires_at": lease.lease_until,
        }
        if lease.media_type.split(";", 1)[0].strip().endswith("json"):
            item["payload"] = json.loads(payload)
        else:
            item["payload_base64"] = base64.b64encode(payload).decode()
        items.append(item)
    return web.json_response({"items": items})


async def ack_inbox(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    partner = svc.auth.partner(request)
    delivery_id = request.match_info["delivery_id"]
    ok = await svc.backend.ack(
        partner,
        delivery_id,
        AuditEvent("delivery.succeeded", {"delivery_id": delivery_id, "mode": "pull"}, None, partner),
    )
    if not ok:
        raise NotFound(
            "no delivery with this id is waiting for your acknowledgement "
            "(already acknowledged, never fetched, or not yours)"
        )
    svc.metrics.deliveries.labels(partner, "delivered").inc()
    return web.json_response({"delivery_id": delivery_id, "state": "delivered"})
