"""Fakes for partners' and our own tests: a real recording webhook receiver on loopback.

``RecordingReceiver`` is an aiohttp server that accepts ``POST /{partner}``, verifies the
Standard Webhooks signature when it knows the partner's secret, records what arrived, can
be told to fail (HTTP status or delay) per partner, and lets a test wait on a condition
with a timeout instead of sleeping::

    async with RecordingReceiver(secrets) as rx:
        ...  # point partners' webhook URLs at rx.url(partner)
        await rx.wait_for(lambda: len(rx.unique("csc-northshire")) == 10, timeout=10)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.server import bound_port

MAX_BODY = 4 * 1024 * 1024


@dataclass
class Received:
    partner: str
    webhook_id: str
    body: bytes
    payload: Any
    at: float


@dataclass
class Behaviour:
    """How the receiver answers a partner's deliveries."""

    status: int = 200
    delay: float = 0.0


@dataclass
class RecordingReceiver:
    secrets: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    on_receive: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    rejected_signatures: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition | None = None

    def url(self, partner: str) -> str:
        return f"http://{self.host}:{self.port}/{partner}"

    def set_behaviour(self, partner: str, status: int = 200, delay: float = 0.0) -> None:
        self.behaviour[partner] = Behaviour(status, delay)

    def for_partner(self, partner: str) -> list[Received]:
        return [r for r in self.received if r.partner == partner]

    def unique(self, partner: str) -> dict[str, Received]:
        """What a recipient that de-duplicates by webhook-id keeps (first arrival wins)."""
        out: dict[str, Received] = {}
        for r in self.for_partner(partner):
            out.setdefault(r.webhook_id, r)
        return out

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds; raise ``TimeoutError`` after ``timeout`` s."""
        assert self._changed is not None, "receiver not started"
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _receive(self, request: web.Request) -> web.Response:
        partner = request.match_info["partner"]
        assert self._changed is not None
        async with self._changed:
            self.attempts[partner] = self.attempts.get(partner, 0) + 1
            self._changed.notify_all()
        behaviour = self.behaviour.get(partner, Behaviour())
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        body = await request.read()
        if behaviour.status >= 300:
            return web.json_response({"error": "configured failure"}, status=behaviour.status)
        secret = self.secrets.get(partner)
        if secret is not None:
            try:
                Webhook(secret).verify(body, dict(request.headers), json_parse=False)
            except WebhookVerificationError:
                self.rejected_signatures += 1
                return web.json_response({"error": "bad signature"}, status=401)
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = None
        item = Received(partner, request.headers.get("webhook-id", ""), body, payload, time.time())
        assert self._changed is not None
        async with self._changed:
            self.received.append(item)
            self._changed.notify_all()
        if self.on_receive is not None:
            self.on_receive(item)
        return web.json_response({"ok": True})

    async def _list(self, request: web.Request) -> web.Response:
        partner = request.match_info["partner"]
        return web.json_response(
            [{"webhook_id": r.webhook_id, "payload": r.payload} for r in self.for_partner(partner)]
        )

    async def start(self) -> RecordingReceiver:
        self._changed = asyncio.Condition()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/{partner}", self._receive)
        app.router.add_get("/{partner}", self._list)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = bound_port(site)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RecordingReceiver:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
