"""Liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import json

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import schemas
from gateway.api.state import SERVICES

log = structlog.get_logger("gateway.api")


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers a read and a write-path round trip."""
    svc = request.app[SERVICES]
    try:
        await svc.backend.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return web.json_response({"status": "unavailable", "store": type(exc).__name__}, status=503)
    return web.json_response({"status": "ready", "policy_version": svc.policy.current.version})


async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    m = svc.metrics
    try:
        stats = await svc.backend.stats()
    except Exception as exc:  # noqa: BLE001 - a scrape must still answer while the store is down
        log.warning("metrics.store_unavailable", error=type(exc).__name__)
        stats = []
        m.store_up.set(0)
    else:
        m.store_up.set(1)
    for s in stats:
        m.queue_ready.labels(s.recipient).set(s.ready)
        m.queue_leased.labels(s.recipient).set(s.leased)
        m.queue_dead.labels(s.recipient).set(s.dead)
        m.queue_oldest.labels(s.recipient).set(s.oldest_ready_age_seconds)
    resp = web.Response(body=generate_latest(m.registry))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def openapi(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps(schemas.load("openapi.json")), content_type="application/json")
