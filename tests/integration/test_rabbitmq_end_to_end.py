"""The real gateway on RabbitMQ + PostgreSQL (``store.backend: rabbitmq-postgresql``):
police -> school and social care through real servers with real receivers on loopback;
two instances on one broker and one database share the work; and a broker restarted
mid-stream loses nothing (the clients retry their 503s with the same Idempotency-Key)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.api.state import SERVICES
from gateway.app import create_app
from gateway.audit import verify_chain
from gateway.config import Deployment, load_deployment
from gateway.server import start_site
from gateway.store.rabbitmq import RabbitQueueBackend
from gateway.testing import RecordingReceiver
from tests.conftest import RunningGateway
from tests.servers import RabbitServer, rabbitmq_server
from tests.support import (
    CSC,
    POLICE,
    SCHOOL,
    auth,
    body,
    eventually,
    message_for_child,
    sample_message,
    valid_nhs_numbers,
    write_deployment,
)

StartGateway = Callable[[], Any]


@pytest.fixture
def rabbit(request: pytest.FixtureRequest) -> RabbitServer:
    return rabbitmq_server(request)


@pytest.fixture
async def start_gateway(
    tmp_path: Path, receiver: RecordingReceiver, dsn: str, rabbit: RabbitServer
) -> AsyncIterator[StartGateway]:
    """Start gateway instances (in this process) on one database, one broker prefix and one
    keyring, each with its own backend object (pool, broker connection, consumers)."""
    prefix = rabbit.prefix()
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start() -> RunningGateway:
        config = write_deployment(
            tmp_path / f"deploy{len(runners)}",
            receiver_base=f"http://127.0.0.1:{receiver.port}",
            settings_extra={
                "store": {"backend": "postgresql", "url": dsn, "pool_size": 4},
                "keyring": {"path": str(tmp_path / "shared-keyring.json"), "create_if_missing": True},
            },
        )
        deployment: Deployment = await asyncio.to_thread(load_deployment, config)
        backend = RabbitQueueBackend(
            dsn, rabbit.url(), pool_size=4, prefix=prefix, confirm_timeout=1.0, relay_interval=0.2
        )
        app = await asyncio.to_thread(create_app, deployment, backend=backend)
        # What open_backend's caller wires in production: arrivals wake the partner's worker.
        backend.broker.on_arrival = app[SERVICES].dispatcher.notify
        runner, port = await start_site(app, "127.0.0.1", 0)
        runners.append(runner)
        http = aiohttp.ClientSession()
        sessions.append(http)
        return RunningGateway(f"http://127.0.0.1:{port}", app, http, config)

    yield start
    for s in sessions:
        await s.close()
    for r in reversed(runners):
        await r.cleanup()


async def post_until_accepted(gw: RunningGateway, doc: dict[str, Any], key: str) -> tuple[str, int]:
    """POST as a partner system would: a 503 is retried with the same Idempotency-Key.
    Returns the message id and how many 503s were answered first."""
    unavailable = 0
    headers = {**auth(POLICE), "Idempotency-Key": key}
    while True:
        async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=headers) as r:
            if r.status == 503:
                unavailable += 1
                assert unavailable < 300, "the gateway stayed unavailable"
                await asyncio.sleep(0.1)  # a client's retry interval, not a wait for a condition
                continue
            assert r.status == 202, await r.text()
            return str((await r.json())["message_id"]), unavailable


def assert_in_order_per_child(got: list[str], sent: dict[str, str], children: list[str]) -> None:
    for child in children:
        assert [m for m in got if sent[m] == child] == [m for m in sent if sent[m] == child], child


class TestGatewayOnRabbitMQ:
    async def test_sample_message_is_accepted_delivered_and_audited(
        self, start_gateway: StartGateway, receiver: RecordingReceiver
    ) -> None:
        gw: RunningGateway = await start_gateway()
        assert isinstance(gw.services.backend, RabbitQueueBackend)
        async with gw.http.post(
            gw.url("/v1/messages"), data=body(sample_message()), headers=auth(POLICE)
        ) as r:
            assert r.status == 202, await r.text()
            message_id = (await r.json())["message_id"]
        await receiver.wait_for(lambda: bool(receiver.for_partner(SCHOOL) and receiver.for_partner(CSC)), 10)
        assert receiver.for_partner(SCHOOL)[0].webhook_id == message_id
        assert receiver.rejected_signatures == 0

        async def delivered() -> bool:
            async with gw.http.get(gw.url(f"/v1/messages/{message_id}"), headers=auth(POLICE)) as r:
                assert r.status == 200
                return bool((await r.json())["status"] == "delivered")

        await eventually(delivered, 10)
        async with gw.http.get(gw.url("/readyz")) as r:
            assert r.status == 200
        records = [r async for r in gw.services.backend.audit_records()]
        assert verify_chain(records).ok

    async def test_two_instances_share_one_broker_each_message_decided_and_delivered_once(
        self, start_gateway: StartGateway, receiver: RecordingReceiver
    ) -> None:
        # Given two gateway instances on one broker and one database
        gateways: list[RunningGateway] = [await start_gateway() for _ in range(2)]
        # When the police send 4 messages about each of 5 children, alternating instances
        children = valid_nhs_numbers(5)
        sent: dict[str, str] = {}
        for n in range(4):
            for c, child in enumerate(children):
                gw = gateways[(n + c) % 2]
                mid, _ = await post_until_accepted(gw, message_for_child(child, n * 10 + c), f"k{n}-{c}")
                sent[mid] = child
        # Then each recipient gets every message exactly once, in order per child
        await receiver.wait_for(
            lambda: all(len(receiver.for_partner(p)) >= len(sent) for p in (SCHOOL, CSC)), 30
        )
        for partner in (SCHOOL, CSC):
            got = [r.webhook_id for r in receiver.for_partner(partner)]
            assert sorted(got) == sorted(sent), partner
            assert_in_order_per_child(got, sent, children)
        backend = gateways[0].services.backend
        assert isinstance(backend, RabbitQueueBackend)

        async def all_completed() -> bool:
            kinds = [r.kind async for r in backend.audit_records()]
            return kinds.count("delivery.succeeded") == 2 * len(sent)

        await eventually(all_completed, 10)
        records = [r async for r in backend.audit_records()]
        assert verify_chain(records).ok
        # And each message was received and decided once (one decision per recipient)
        assert [r.kind for r in records].count("message.received") == len(sent)
        assert await backend.pool.fetchval("SELECT count(*) FROM decisions WHERE effect='permit'") == 2 * len(
            sent
        )

        # ...and both instances did part of the work
        def per_instance() -> list[float]:
            return [
                sum(
                    gw.services.metrics.registry.get_sample_value(
                        "gateway_deliveries_total", {"recipient": p, "result": "delivered"}
                    )
                    or 0
                    for p in (SCHOOL, CSC)
                )
                for gw in gateways
            ]

        await eventually(lambda: _true(sum(per_instance()) >= 2 * len(sent)), 10)
        assert sum(per_instance()) == 2 * len(sent)
        assert all(n > 0 for n in per_instance()), per_instance()

    async def test_a_pull_partner_fetches_from_one_instance_and_acknowledges_on_the_other(
        self, start_gateway: StartGateway
    ) -> None:
        first: RunningGateway = await start_gateway()
        second: RunningGateway = await start_gateway()
        # Given social care tells the police the outcome of their referral (police pull)
        doc = sample_message()
        doc["envelope"].update(
            event_type="social-care.referral-outcome", purpose="referral-feedback", recipients=[POLICE]
        )
        doc["items"] = [
            {
                "category": "event.outcome",
                "type": "outcome",
                "about": ["child-1"],
                "data": {"outcome": "accepted", "worker": "Duty social worker (demo)"},
            }
        ]
        async with first.http.post(first.url("/v1/messages"), data=body(doc), headers=auth(CSC)) as r:
            assert r.status == 202, await r.text()
            message_id = (await r.json())["message_id"]
        # When the police pull it through one instance (behind a load balancer)...
        items: list[dict[str, Any]] = []

        async def pulled() -> bool:
            for gw in (first, second):
                async with gw.http.get(gw.url("/v1/inbox?limit=10"), headers=auth(POLICE)) as r:
                    assert r.status == 200
                    items.extend((await r.json())["items"])
            return bool(items)

        await eventually(pulled, 10)
        assert [i["message_id"] for i in items] == [message_id]
        # ...and acknowledge it through either: it is delivered, once, and not handed out again
        for gw in (first, second):
            ack = gw.url(f"/v1/inbox/{items[0]['delivery_id']}/ack")
            async with gw.http.post(ack, headers=auth(POLICE)) as r:
                assert r.status == (200 if gw is first else 404)
        async with second.http.get(second.url(f"/v1/messages/{message_id}"), headers=auth(CSC)) as r:
            assert (await r.json())["status"] == "delivered"
        for gw in (first, second):
            async with gw.http.get(gw.url("/v1/inbox"), headers=auth(POLICE)) as r:
                assert (await r.json())["items"] == []

    async def test_broker_restart_mid_stream_loses_nothing(
        self, start_gateway: StartGateway, receiver: RecordingReceiver, rabbit: RabbitServer
    ) -> None:
        # Given a gateway taking a stream of messages about 5 children
        gw: RunningGateway = await start_gateway()
        children = valid_nhs_numbers(5, start=999_000_100)
        sent: dict[str, str] = {}
        refused: list[int] = []
        total = 30
        restarted: asyncio.Task[None] | None = None
        for i in range(total):
            if i == 10:
                # When the broker is stopped (and started again a little later) mid-stream
                await asyncio.to_thread(rabbit.stop_node)
                restarted = asyncio.create_task(asyncio.to_thread(rabbit.start))
            child = children[i % 5]
            mid, unavailable = await post_until_accepted(gw, message_for_child(child, 100 + i), f"r{i}")
            sent[mid] = child
            refused.append(unavailable)
        assert restarted is not None
        await restarted
        # Then no POST was accepted while the broker could not confirm: the first one sent
        # while it was down was answered 503 (and retried with its key until the broker was back)
        assert refused[10] > 0, refused
        # Then every accepted message reaches both recipients (de-duplicating by id), in order
        await receiver.wait_for(lambda: all(len(receiver.unique(p)) >= total for p in (SCHOOL, CSC)), 60)
        for partner in (SCHOOL, CSC):
            got = list(receiver.unique(partner))
            assert sorted(got) == sorted(sent), partner
            assert_in_order_per_child(got, sent, children)
        # And the counts add up: sent = accepted = delivered, nothing dead
        backend = gw.services.backend
        assert isinstance(backend, RabbitQueueBackend)

        async def settled() -> bool:
            stats = await backend.stats()
            return sum(s.delivered for s in stats) == 2 * total

        await eventually(settled, 20)
        stats = await backend.stats()
        assert (len(sent), sum(s.dead for s in stats), sum(s.ready + s.leased for s in stats)) == (
            total,
            0,
            0,
        )
        # And the connection is back (connect_robust), so the gateway reports ready
        await eventually(lambda: _true(backend.broker.connected), 10)
        async with gw.http.get(gw.url("/readyz")) as r:
            assert r.status == 200


async def _true(value: bool) -> bool:
    return value
