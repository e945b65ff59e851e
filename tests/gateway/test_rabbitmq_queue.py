"""The RabbitMQ queue backend's own promises, on a real broker node and a real PostgreSQL
(``tests.servers``): publisher confirms before an accept returns, no acknowledgement before
the outcome is committed, order per child across retries, the dead-letter exchange, and
the outbox when the broker cannot confirm. The ``Backend`` contract itself is checked by
``test_store_contract`` (parameter ``rabbitmq-postgresql``)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aio_pika
import pytest

from gateway.audit import AuditEvent
from gateway.crypto import Keyring
from gateway.store.base import Lease
from gateway.store.postgres import PostgresBackend
from gateway.store.rabbitmq import BrokerUnavailable, RabbitQueueBackend
from gateway.store.rabbitmq_broker import ATTEMPTS_HEADER, LAST_ERROR_HEADER, MESSAGE_ID_HEADER
from gateway.store.rabbitmq_topology import Topology, park_level
from tests.gateway.test_store_contract import records
from tests.servers import PostgresServer, RabbitServer, postgres_server, rabbitmq_server
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]

OpenQueue = Callable[..., Awaitable[RabbitQueueBackend]]


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> PostgresServer:
    return postgres_server(request)


@pytest.fixture
def rabbit(request: pytest.FixtureRequest) -> RabbitServer:
    return rabbitmq_server(request)


@pytest.fixture
async def dsn(pg: PostgresServer) -> AsyncIterator[str]:
    async with pg.database() as url:
        yield url


@pytest.fixture
def prefix(rabbit: RabbitServer) -> str:
    return rabbit.prefix()


@pytest.fixture
async def open_queue(dsn: str, rabbit: RabbitServer, prefix: str) -> AsyncIterator[OpenQueue]:
    """Opens backends (instances) on one database and one broker prefix; all closed after."""
    opened: list[RabbitQueueBackend] = []

    async def open_one(*, confirm_timeout: float = 2.0, relay_interval: float = 1.0) -> RabbitQueueBackend:
        b = RabbitQueueBackend(
            dsn,
            rabbit.url(),
            pool_size=3,
            prefix=prefix,
            lease_wait=0.3,
            confirm_timeout=confirm_timeout,
            relay_interval=relay_interval,
        )
        await b.open()
        opened.append(b)
        return b

    yield open_one
    for b in opened:
        await b.close()


@pytest.fixture
async def backend(open_queue: OpenQueue) -> RabbitQueueBackend:
    return await open_queue()


@pytest.fixture
async def amqp(rabbit: RabbitServer) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A plain channel of the test's own, to look at queues as an operator would."""
    connection = await aio_pika.connect(rabbit.url())
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def ready_in(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    count = declared.declaration_result.message_count
    assert count is not None
    return int(count)


async def lease_eventually(b: RabbitQueueBackend, recipient: str = "csc", seconds: float = 30) -> Lease:
    got: list[Lease] = []

    async def leased() -> bool:
        got.extend(await b.lease(recipient, 1, seconds))
        return bool(got)

    await eventually(leased, 15)
    return got[0]


class TestParkLadder:
    def test_a_wait_parks_in_the_longest_level_not_longer_than_it(self) -> None:
        assert park_level(0.01) == 250
        assert park_level(0.9) == 250
        assert park_level(7.5) == 5_000
        assert park_level(1e9) == 3_600_000


class TestPublisherConfirms:
    async def test_accept_returns_after_the_broker_holds_the_message(
        self, backend: RabbitQueueBackend, keyring: Keyring, amqp: aio_pika.abc.AbstractChannel, prefix: str
    ) -> None:
        # When an accept returns (nothing consumes yet)
        await backend.accept(*records(keyring, 1))
        # Then the broker already holds the delivery's message, persistent, in the partner queue
        assert await ready_in(amqp, Topology(prefix).partner_queue("csc")) == 1
        status = await backend.message_status("msg_0001")
        assert status is not None
        assert status.recipients[0].state == "ready"

    async def test_no_confirm_no_accept_and_the_outbox_publishes_later(
        self, open_queue: OpenQueue, keyring: Keyring, rabbit: RabbitServer, dsn: str
    ) -> None:
        backend = await open_queue(confirm_timeout=1.0, relay_interval=0.2)
        await backend.accept(*records(keyring, 0))  # declares the partner queue
        # Given a broker that blocks publishers (memory alarm): no confirm can come
        blocked = await asyncio.to_thread(rabbit.ctl, "set_vm_memory_high_watermark", "0")
        assert blocked.returncode == 0, blocked.stderr
        try:
            # When a message is accepted, the accept fails (503) although PostgreSQL committed
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                await backend.accept(*records(keyring, 1, key="idem-1", child="c2"))
            assert time.monotonic() - started < 5
            status = await backend.message_status("msg_0001")
            assert status is not None
            assert (
                await backend.pool.fetchval("SELECT published FROM deliveries WHERE id='dlv_0001'") is False
            )
        finally:
            restored = await asyncio.to_thread(rabbit.ctl, "set_vm_memory_high_watermark", "0.4")
            assert restored.returncode == 0, restored.stderr
        # Then, the broker back, the client's retry gets the same message id...
        again = await backend.accept(*records(keyring, 2, key="idem-1", child="c2"))
        assert (again.message_id, again.duplicate) == ("msg_0001", True)

        # ...and the delivery is published (once it counts) and leased exactly once
        async def published() -> bool:
            return bool(await backend.pool.fetchval("SELECT published FROM deliveries WHERE id='dlv_0001'"))

        await eventually(published, 10)
        leased = {
            (await lease_eventually(backend)).delivery_id,
            (await lease_eventually(backend)).delivery_id,
        }
        assert leased == {"dlv_0000", "dlv_0001"}


_CRASHING_WORKER = """
import asyncio, sys
from gateway.store.rabbitmq import RabbitQueueBackend

async def main(dsn: str, url: str, prefix: str) -> None:
    backend = RabbitQueueBackend(dsn, url, pool_size=1, prefix=prefix, lease_wait=2.0)
    await backend.open()
    leases = []
    while not leases:
        leases = await backend.lease("csc", 10, 1.0)
    print(",".join(x.delivery_id for x in leases), flush=True)
    await asyncio.sleep(3600)  # "delivering" until killed

asyncio.run(main(*sys.argv[1:]))
"""


class TestAcknowledgement:
    async def test_nothing_is_acknowledged_before_it_is_completed(
        self, open_queue: OpenQueue, keyring: Keyring, amqp: aio_pika.abc.AbstractChannel, prefix: str
    ) -> None:
        queue = Topology(prefix).partner_queue("csc")
        first = await open_queue()
        await first.accept(*records(keyring, 1))
        await first.accept(*records(keyring, 2, child="c2"))
        leases = await first.lease("csc", 10, 0.5)
        assert sorted(x.delivery_id for x in leases) == ["dlv_0001", "dlv_0002"]
        assert await first.complete(leases[0], AuditEvent("delivery.succeeded"))
        # When the instance goes away with one delivery leased but not completed
        await first.close()
        # Then exactly that one comes back to the queue (the completed one was acknowledged)
        await eventually(lambda: _equals(ready_in(amqp, queue), 1), 10)
        second = await open_queue()
        again = await lease_eventually(second)
        assert (again.delivery_id, again.attempt) == (leases[1].delivery_id, 2)
        assert await second.complete(again, AuditEvent("delivery.succeeded"))
        await eventually(lambda: _equals(ready_in(amqp, queue), 0), 10)

    async def test_a_database_error_while_leasing_leaves_the_message_to_lease_later(
        self, backend: RabbitQueueBackend, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a delivery whose message this instance has already taken from the broker
        await backend.accept(*records(keyring, 1))
        real_pool = backend.pool

        class FailingOnTheLease:
            """The real pool, except that its second ``fetch`` fails like a restarting server."""

            calls = 0

            def __getattr__(self, name: str) -> object:
                return getattr(real_pool, name)

            async def fetch(self, query: str, *args: object) -> object:
                self.calls += 1
                if self.calls == 2:  # the first call finds it due; the second would lease it
                    raise ConnectionRefusedError("database restarting")
                return await real_pool.fetch(query, *args)

        monkeypatch.setattr(backend, "_pool", FailingOnTheLease())
        # When the database fails at the moment of leasing
        with pytest.raises(ConnectionRefusedError):
            await backend.lease("csc", 10, 30)
        monkeypatch.setattr(backend, "_pool", real_pool)
        # Then the message was not lost inside this instance: the next lease gets it
        again = await lease_eventually(backend)
        assert again.delivery_id == "dlv_0001"
        assert await backend.complete(again, AuditEvent("delivery.succeeded"))

    async def test_a_killed_instance_s_delivery_is_redelivered_once(
        self, open_queue: OpenQueue, keyring: Keyring, dsn: str, rabbit: RabbitServer, prefix: str
    ) -> None:
        survivor = await open_queue()
        await survivor.accept(*records(keyring, 1))
        # Given another process that leased the delivery and is killed mid-delivery
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CRASHING_WORKER,
            dsn,
            rabbit.url(),
            prefix,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            _, err = await proc.communicate()
        assert line.decode().strip() == "dlv_0001", err.decode()[-2000:]
        # Then the survivor gets it again (same delivery id, next attempt), and only once
        again = await lease_eventually(survivor)
        assert (again.delivery_id, again.message_id, again.attempt) == ("dlv_0001", "msg_0001", 2)
        assert await survivor.complete(again, AuditEvent("delivery.succeeded"))
        await asyncio.sleep(0)  # let a stray copy, if any, arrive before the check below
        assert await survivor.lease("csc", 10, 30) == []
        kinds = [r.kind async for r in survivor.audit_records()]
        assert kinds.count("delivery.succeeded") == 1


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


class TestOrderWithRetries:
    async def test_a_child_s_later_messages_wait_for_its_retried_head(
        self, backend: RabbitQueueBackend, keyring: Keyring
    ) -> None:
        # Given three messages about child a and one about child b
        for n, child in enumerate(["a", "a", "b", "a"], start=1):
            await backend.accept(*records(keyring, n, child=child))
        out: list[str] = []
        failures = {"dlv_0001": 2, "dlv_0004": 1}  # a's head fails twice, its last once

        # When a worker delivers, failing some attempts with a short retry
        async def worker_round() -> bool:
            for lease in await backend.lease("csc", 10, 30):
                out.append(lease.delivery_id)
                if failures.get(lease.delivery_id, 0) > 0:
                    failures[lease.delivery_id] -= 1
                    retry = time.time() + 0.3
                    assert await backend.fail(lease, "http-503", retry, AuditEvent("x")) == "ready"
                else:
                    assert await backend.complete(lease, AuditEvent("delivery.succeeded"))
            return sum(r.delivered for r in await backend.stats()) == 4

        await eventually(worker_round, 20, interval=0.01)
        # Then child a's deliveries go out strictly in order, each retry before the next one
        assert [d for d in out if d != "dlv_0003"] == ["dlv_0001"] * 3 + ["dlv_0002"] + ["dlv_0004"] * 2
        assert out.count("dlv_0003") == 1
        assert out.index("dlv_0003") < out.index("dlv_0002")  # b was not held up by a's retries


class TestDeadLetterExchange:
    async def test_a_dead_letter_is_copied_with_its_last_error_and_no_content(
        self, backend: RabbitQueueBackend, keyring: Keyring, amqp: aio_pika.abc.AbstractChannel, prefix: str
    ) -> None:
        await backend.accept(*records(keyring, 1))
        await backend.accept(*records(keyring, 2))  # same child: waits behind the first
        lease = await lease_eventually(backend)
        # When the partner rejects it permanently
        assert await backend.fail(lease, "http-400", None, AuditEvent("delivery.attempt_failed")) == "dead"
        # Then the dead-letter queue holds its ids and last error, never the payload
        dead = await amqp.declare_queue(Topology(prefix).dead_queue("csc"), passive=True)
        message = await dead.get(timeout=5)
        assert message is not None
        await message.ack()
        assert message.body == b"dlv_0001"
        assert message.headers[LAST_ERROR_HEADER] == "http-400"
        assert message.headers[ATTEMPTS_HEADER] == 1
        assert message.headers[MESSAGE_ID_HEADER] == "msg_0001"
        assert b"CANARY" not in message.body + repr(message.headers).encode()
        # And the child's next message is released at once, and a replay republishes the dead one
        nxt = await lease_eventually(backend)
        assert nxt.delivery_id == "dlv_0002"
        assert await backend.complete(nxt, AuditEvent("delivery.succeeded"))
        assert await backend.replay("dlv_0001", "partner fixed their schema", "operator:test")
        replayed = await lease_eventually(backend)
        assert (replayed.delivery_id, replayed.attempt) == ("dlv_0001", 1)


class TestReplayFromAnotherProcess:
    async def test_a_replay_by_the_cli_s_plain_postgresql_backend_is_republished_by_the_relay(
        self, open_queue: OpenQueue, keyring: Keyring, dsn: str
    ) -> None:
        backend = await open_queue(relay_interval=0.2)
        await backend.accept(*records(keyring, 1))
        lease = await lease_eventually(backend)
        assert await backend.fail(lease, "http-400", None, AuditEvent("delivery.attempt_failed")) == "dead"
        # When an operator replays it with the CLI (which opens the database only)
        cli = PostgresBackend(dsn, pool_size=1)
        await cli.open()
        try:
            assert await cli.replay("dlv_0001", "partner fixed their schema", "operator:test")
        finally:
            await cli.close()
        # Then the gateway's relay puts it back on the broker, and it is delivered again
        again = await lease_eventually(backend)
        assert (again.delivery_id, again.attempt) == ("dlv_0001", 1)
