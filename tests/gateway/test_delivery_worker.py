"""``PartnerWorker`` on the wire: what one delivery sends, and how long a batch may take.

Real pieces only: a SQLite store, a keyring, and an aiohttp receiver on loopback that
records each request's headers and body, and can hold answers back until the test ends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from gateway.config import DeliverySettings, PartnerDelivery, PartnerRuntime, Secret
from gateway.crypto import Keyring
from gateway.delivery.dispatcher import PartnerWorker
from gateway.delivery.webhook import USER_AGENT
from gateway.metrics import Metrics
from gateway.server import start_site
from gateway.store.sqlite import SqliteBackend
from tests.gateway.test_store_contract import records

SECRET = "whsec_ZmljdGlvbmFsLXRlc3Qtc2lnbmluZy1zZWNyZXQ="
PAYLOAD = b"CANARY-PLAINTEXT-42"  # what ``records`` seals as each delivery's payload


@dataclass
class Capture:
    headers: dict[str, str]
    body: bytes


@dataclass
class HeaderReceiver:
    """Records every request; while ``hold`` is set, answers only when it is released."""

    hold: bool = False
    requests: list[Capture] = field(default_factory=list)
    port: int = 0
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        self.requests.append(
            Capture({k.lower(): v for k, v in request.headers.items()}, await request.read())
        )
        if self.hold:
            await self._release.wait()
        return web.Response(status=200)

    async def __aenter__(self) -> HeaderReceiver:
        app = web.Application()
        app.router.add_post("/csc", self._receive)
        self._runner, self.port = await start_site(app, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()


def _worker(port: int, backend: SqliteBackend, keyring: Keyring, settings: DeliverySettings) -> PartnerWorker:
    partner = PartnerRuntime(
        "csc",
        frozenset(),
        PartnerDelivery("webhook", "canonical", f"http://127.0.0.1:{port}/csc", Secret(SECRET), settings),
    )
    return PartnerWorker(partner, backend, keyring, Metrics())


class TestWhatADeliverySends:
    async def test_the_documented_headers_only_with_a_signature_the_library_verifies(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        # Given one ready delivery
        await backend.accept(*records(keyring, 1, child="a"))
        async with HeaderReceiver() as rx:
            worker = _worker(rx.port, backend, keyring, DeliverySettings())
            worker.start()
            try:
                # When the worker runs one batch
                assert await worker.run_once()
            finally:
                await worker.stop()
        # Then the partner got the payload with the Standard Webhooks three, the content
        # type and our user agent, plus only what HTTP/1.1 itself adds
        (got,) = rx.requests
        assert got.body == PAYLOAD
        assert set(got.headers) == {
            "host",
            "content-type",
            "content-length",
            "user-agent",
            "accept",
            "accept-encoding",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }
        assert (got.headers["content-type"], got.headers["user-agent"]) == ("application/json", USER_AGENT)
        assert got.headers["webhook-id"] == "msg_0001"
        Webhook(SECRET).verify(got.body, got.headers, json_parse=False)  # raises if it does not verify
        status = await backend.message_status("msg_0001")
        assert status is not None
        assert status.recipients[0].state == "delivered"


class TestBatchDuration:
    async def test_every_post_of_a_batch_ends_within_the_timeout_of_the_batch_start(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        # Given four times more deliveries than the partner's concurrency, and a partner
        # that never answers
        timeout = 0.4
        for i in range(8):
            await backend.accept(*records(keyring, i, child=f"c{i}"))
        settings = DeliverySettings(timeout_seconds=timeout, concurrency=2, circuit_failure_threshold=100)
        async with HeaderReceiver(hold=True) as rx:
            worker = _worker(rx.port, backend, keyring, settings)
            worker.start()
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                # When the worker runs one batch
                assert await worker.run_once()
                took = loop.time() - started
            finally:
                await worker.stop()
        # Then the batch took about one timeout, not one per round of the concurrency
        # limit (the time a post waits for a connection counts towards its timeout), so a
        # batch never outlives its leases: each delivery failed once, as a timeout
        assert took < timeout * 3, f"the batch took {took:.2f} s"
        failed = [r async for r in backend.audit_records() if r.kind == "delivery.attempt_failed"]
        assert sorted(r.message_id or "" for r in failed) == [f"msg_{i:04d}" for i in range(8)]
        assert {r.data["error"] for r in failed} == {"timeout"}
