"""Batched completion in the delivery worker (``gateway.delivery.dispatcher``): the successes
of a leased batch are committed together, but a slow partner response never holds a
finished delivery uncommitted for more than ``COMPLETE_LINGER_SECONDS``.

Real pieces only: a SQLite store, a keyring, and an aiohttp receiver on loopback that
answers one chosen message slowly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from gateway.audit import AuditEvent, verify_chain
from gateway.config import DeliverySettings, PartnerDelivery, PartnerRuntime, Secret
from gateway.crypto import Keyring
from gateway.delivery.dispatcher import COMPLETE_LINGER_SECONDS, CompletionBatch, PartnerWorker
from gateway.metrics import Metrics
from gateway.server import start_site
from gateway.store.sqlite import SqliteBackend
from tests.gateway.test_store_contract import records
from tests.support import eventually

SECRET = "whsec_ZmljdGlvbmFsLXRlc3Qtc2lnbmluZy1zZWNyZXQ="
SLOW_SECONDS = 3.0


class SlowReceiver:
    """Answers 200 to signed deliveries, ``SLOW_SECONDS`` late for message ids in ``slow``;
    records the webhook ids whose signature verified."""

    def __init__(self) -> None:
        self.slow: set[str] = set()
        self.verified: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        Webhook(SECRET).verify(body, dict(request.headers), json_parse=False)
        webhook_id = request.headers["webhook-id"]
        self.verified.append(webhook_id)
        if webhook_id in self.slow:
            await asyncio.sleep(SLOW_SECONDS)
        return web.Response(status=200)

    async def __aenter__(self) -> SlowReceiver:
        app = web.Application()
        app.router.add_post("/csc", self._receive)
        self._runner, self.port = await start_site(app, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def _worker(port: int, backend: SqliteBackend, keyring: Keyring) -> PartnerWorker:
    partner = PartnerRuntime(
        "csc",
        frozenset(),
        PartnerDelivery(
            "webhook",
            "canonical",
            f"http://127.0.0.1:{port}/csc",
            Secret(SECRET),
            DeliverySettings(timeout_seconds=10.0, poll_interval_seconds=0.2),
        ),
    )
    return PartnerWorker(partner, backend, keyring, Metrics())


async def _state(backend: SqliteBackend, message_id: str) -> str | None:
    status = await backend.message_status(message_id)
    assert status is not None
    return status.recipients[0].state


class TestPartnerWorker:
    async def test_a_finished_delivery_is_committed_while_a_slow_one_of_its_batch_is_in_flight(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        # Given two children's messages, one of which the partner answers slowly
        await backend.accept(*records(keyring, 1, child="a"))
        await backend.accept(*records(keyring, 2, child="b"))
        async with SlowReceiver() as rx:
            rx.slow.add("msg_0002")
            worker = _worker(rx.port, backend, keyring)
            worker.start()
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()

                # When both are posted in one batch
                async def fast_one_delivered() -> bool:
                    return await _state(backend, "msg_0001") == "delivered"

                # Then the fast one is committed long before the slow answer comes back
                await eventually(fast_one_delivered, SLOW_SECONDS, interval=0.02)
                assert loop.time() - started < SLOW_SECONDS - 1
                assert await _state(backend, "msg_0002") == "leased"

                # and the slow one once it is answered, each audited once, signed as the library checks
                async def slow_one_delivered() -> bool:
                    return await _state(backend, "msg_0002") == "delivered"

                await eventually(slow_one_delivered, SLOW_SECONDS + 5, interval=0.05)
            finally:
                await worker.stop()
        assert sorted(rx.verified) == ["msg_0001", "msg_0002"]
        chain = [r async for r in backend.audit_records()]
        assert [r.message_id for r in chain if r.kind == "delivery.succeeded"] == ["msg_0001", "msg_0002"]
        assert verify_chain(chain).ok


class TestCompletionBatch:
    async def test_flushes_after_the_linger_even_while_the_block_is_open(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1, child="a"))
        (lease,) = await backend.lease("csc", 10, 30)
        async with CompletionBatch(backend, "csc") as batch:
            batch.add(lease, AuditEvent("delivery.succeeded", {}, lease.message_id, "csc"))

            async def committed() -> bool:
                return await _state(backend, "msg_0001") == "delivered"

            await eventually(committed, COMPLETE_LINGER_SECONDS + 5, interval=0.01)
        assert [r.kind async for r in backend.audit_records()][-1] == "delivery.succeeded"

    async def test_leaving_the_block_commits_everything_in_one_call(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        for i in range(5):
            await backend.accept(*records(keyring, i, child=f"c{i}"))
        leases = await backend.lease("csc", 10, 30)
        before = backend.commit_stats[1]
        async with CompletionBatch(backend, "csc", linger=60) as batch:
            for lease in leases:
                batch.add(lease, AuditEvent("delivery.succeeded", {}, lease.message_id, "csc"))
        # One writer operation for the five, and all of them delivered when the block is left
        assert backend.commit_stats[1] == before + 1
        assert [s.delivered for s in await backend.stats()] == [5]

    async def test_a_store_error_is_raised_when_the_block_is_left(
        self, tmp_path: Path, keyring: Keyring
    ) -> None:
        store = SqliteBackend(tmp_path / "other.db")
        await store.open()
        await store.accept(*records(keyring, 1))
        (lease,) = await store.lease("csc", 10, 30)
        await store.close()
        with pytest.raises(RuntimeError, match="writer is not running"):
            async with CompletionBatch(store, "csc") as batch:
                batch.add(lease, AuditEvent("delivery.succeeded", {}, lease.message_id, "csc"))
