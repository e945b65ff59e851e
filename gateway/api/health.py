"""Liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import json

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

import schemas
from gateway.api.state import SERVICES
from gateway.metrics import exposition, merged_exposition

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
    """This process's registry; with a delivery process, merged with its delivery families
    (each family once). A scrape answers while the store or the delivery process is down."""
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
    remote = await svc.dispatcher.remote_metrics()
    body = exposition(m.registry) if remote is None else merged_exposition(m.registry, remote)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def openapi(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps(schemas.load("openapi.json")), content_type="application/json")
