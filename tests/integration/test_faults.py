"""Fault tests for the scale-out backends: nothing accepted is ever lost, nothing is invented.

Every test counts four things and checks they add up: messages **sent**, messages
**accepted** (a 202, each under one gateway id however often the sender retried), deliveries
**delivered** to each recipient that de-duplicates by ``webhook-id`` (exactly the accepted
ids, no more, no fewer) and **dead-lettered** (only the ones a test means to poison).

* ``kill -9`` of gateway *processes*, at least ten times, alternating between two instances
  that share one PostgreSQL database, while eight senders post and retry with their
  ``Idempotency-Key`` after a cut request (a partner's outbox does so);
* PostgreSQL stopped mid-stream (fast and immediate shutdown) and started again: accepts
  during the outage are 5xx (never a 202 that was not committed), ``/readyz`` says 503, and
  afterwards every accepted message is delivered;
* a partner endpoint answering 500, then timing out, then recovering: the backlog drains,
  in order per child, and the other partner is never held up;
* a poison message whose rendering always fails: dead-lettered once per recipient, while the
  messages after it, about the same child, flow.

The backends under test are the ``BACKENDS`` list (one parametrised fixture per kind): a
backend joins by adding its name to ``SHARED_STATE_BACKENDS`` (``rabbitmq-postgresql`` has
its settings in ``_store_settings`` already). All processes and servers are real and on
loopback; waits are on conditions with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.canonical_json import CanonicalJsonAdapter
from canonical import Message
from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.servers import PostgresServer, postgres_server, rabbitmq_server
from tests.support import (
    CSC,
    POLICE,
    SCHOOL,
    auth,
    body,
    eventually,
    message_for_child,
    operator_auth,
    valid_nhs_numbers,
    write_deployment,
)

SHARED_STATE_BACKENDS = ["postgresql", "rabbitmq-postgresql"]
"""Backends on which several gateway instances share state (the scale-out ones)."""
BACKENDS = ["sqlite", *SHARED_STATE_BACKENDS]
"""Every backend: the embedded default and the scale-out ones."""
RECIPIENTS = (SCHOOL, CSC)
LISTENING = re.compile(r"gateway listening on (http://\S+)")


# --- backends ---------------------------------------------------------------------------


@dataclass
class BackendUnderTest:
    """One store backend: its name, the ``gateway.yaml`` settings that select it, and (for
    the PostgreSQL-based ones) the server, so a test can take it down."""

    name: str
    settings: dict[str, Any]
    postgres: PostgresServer | None = None


@contextlib.asynccontextmanager
async def _store_settings(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BackendUnderTest]:
    keyring = {"path": str(tmp_path / "shared-keyring.json"), "create_if_missing": True}
    if name == "sqlite":
        yield BackendUnderTest(
            name, {"store": {"backend": "sqlite", "path": "gateway.db"}, "keyring": keyring}
        )
        return
    if name == "postgresql":
        pg = postgres_server(request)
        async with pg.database() as dsn:
            store = {"backend": "postgresql", "url": dsn, "pool_size": 4}
            yield BackendUnderTest(name, {"store": store, "keyring": keyring}, pg)
        return
    if name == "rabbitmq-postgresql":
        pg, rabbit = postgres_server(request), rabbitmq_server(request)
        async with pg.database() as dsn:
            store = {
                "backend": name,
                "url": dsn,
                "pool_size": 4,
                "amqp_url": rabbit.url(),
                "amqp_prefix": rabbit.prefix(),  # this test's own queues and exchanges
            }
            yield BackendUnderTest(name, {"store": store, "keyring": keyring}, pg)
        return
    raise AssertionError(f"no settings for backend {name!r}: add them to _store_settings")


@pytest.fixture(params=BACKENDS)
async def any_backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BackendUnderTest]:
    """Each backend in turn (``BACKENDS``)."""
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    monkeypatch.delenv("GATEWAY_AMQP_URL", raising=False)
    async with _store_settings(str(request.param), request, tmp_path) as backend:
        yield backend


@pytest.fixture(params=SHARED_STATE_BACKENDS)
async def shared_backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BackendUnderTest]:
    """Each backend that several instances can share (``SHARED_STATE_BACKENDS``)."""
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    monkeypatch.delenv("GATEWAY_AMQP_URL", raising=False)
    async with _store_settings(str(request.param), request, tmp_path) as backend:
        yield backend


# --- gateway processes ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``python -m gateway serve`` on a deployment folder and a fixed port: start, kill -9,
    start again. Its stdout is drained all along (a full pipe would stall the gateway)."""

    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.base = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(self.config),
            "--log-level",
            "error",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        stdout = self.proc.stdout
        assert stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = (await stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"the gateway exited with {await self.proc.wait()} before listening")
                if LISTENING.search(line):
                    break
        self._drain = asyncio.create_task(self._discard(stdout))
        self.starts += 1

    @staticmethod
    async def _discard(stream: asyncio.StreamReader) -> None:
        while await stream.read(65536):
            pass

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        if self._drain is not None:
            await self._drain

    async def stop(self) -> int:
        """SIGTERM, then the exit code (0: a clean shutdown)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await self.proc.wait()
        if self._drain is not None:
            await self._drain
        return code


@pytest.fixture
async def processes(
    tmp_path: Path, receiver: RecordingReceiver
) -> AsyncIterator[Callable[..., GatewayProcess]]:
    """A factory of gateway processes, each with its own deployment folder and port; all are
    killed at the end of the test whatever happened."""
    made: list[GatewayProcess] = []

    def make(settings: dict[str, Any], delivery: dict[str, Any] | None = None) -> GatewayProcess:
        port = _free_port()
        config = write_deployment(
            tmp_path / f"deploy{len(made)}",
            receiver_base=f"http://127.0.0.1:{receiver.port}",
            port=port,
            # Short leases: what a killed process had leased is retried soon by any instance.
            delivery={"lease_seconds": 1.0, "poll_interval_seconds": 0.1, **(delivery or {})},
            settings_extra={**settings, "policy_watch_seconds": 0},
        )
        process = GatewayProcess(config, port)
        made.append(process)
        return process

    yield make
    for p in made:
        if p.running:
            assert p.proc is not None
            p.proc.kill()
            await p.proc.wait()


# --- the sender ---------------------------------------------------------------------------


@dataclass
class Sender:
    """A partner's outbox: each message is posted with a stable ``Idempotency-Key`` until a 202
    comes back, moving to the next gateway after a cut request or a 5xx. Anything else (a 4xx)
    fails the test. Counts what it saw."""

    gateways: list[str]
    children: list[str]
    key_prefix: str
    accepted: dict[int, str] = field(default_factory=dict)
    server_errors: int = 0
    cut_requests: int = 0
    duplicates: int = 0
    """202s that named an earlier accept (a retry of a POST whose answer was lost)."""

    async def send(self, http: aiohttp.ClientSession, n: int) -> str:
        headers = {**auth(POLICE), "Idempotency-Key": f"{self.key_prefix}-{n}"}
        data = body(message_for_child(self.children[n % len(self.children)], n))
        attempt = n
        while True:
            base = self.gateways[attempt % len(self.gateways)]
            try:
                async with http.post(f"{base}/v1/messages", data=data, headers=headers) as r:
                    if r.status == 202:
                        answer = await r.json()
                        message_id = str(answer["message_id"])
                        self.duplicates += bool(answer["duplicate"])
                        self.accepted[n] = message_id
                        return message_id
                    assert r.status >= 500, f"message {n}: unexpected {r.status}"
                    self.server_errors += 1
            except (TimeoutError, aiohttp.ClientError, OSError):
                self.cut_requests += 1
            attempt += 1
            await asyncio.sleep(0.02)

    async def wait_accepted(self, count: int, timeout: float) -> None:
        await _wait_until(lambda: len(self.accepted) >= count, timeout)

    async def run(self, total: int, workers: int = 8) -> None:
        connector = aiohttp.TCPConnector(limit=workers, force_close=True)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def worker(w: int) -> None:
                for n in range(w, total, workers):
                    await self.send(http, n)

            await asyncio.gather(*(worker(w) for w in range(workers)))


async def _wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    async def holds() -> bool:
        return predicate()

    await eventually(holds, timeout=timeout, interval=0.01)


def _assert_each_recipient_holds_exactly(receiver: RecordingReceiver, ids: set[str]) -> None:
    for partner in RECIPIENTS:
        assert set(receiver.unique(partner)) == ids, partner
    assert receiver.rejected_signatures == 0


async def _queues(http: aiohttp.ClientSession, base: str) -> dict[str, dict[str, Any]]:
    async with http.get(f"{base}/v1/ops/queues", headers=operator_auth()) as r:
        assert r.status == 200
        return {q["partner"]: q for q in (await r.json())["queues"]}


async def _wait_drained(base: str, delivered: int, timeout: float = 20) -> dict[str, dict[str, Any]]:
    """Wait until every recipient's queue holds nothing ready or in flight and ``delivered``
    delivered; the queues as the operator sees them."""
    async with aiohttp.ClientSession() as http:
        queues: dict[str, dict[str, Any]] = {}

        async def drained() -> bool:
            nonlocal queues
            queues = await _queues(http, base)
            return all(
                queues[p]["ready"] == 0
                and queues[p]["in_flight"] == 0
                and queues[p]["delivered"] == delivered
                for p in RECIPIENTS
            )

        await eventually(drained, timeout=timeout, interval=0.1)
        return queues


async def _audit_verify(config: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "audit",
        "verify",
        "--config",
        str(config),
        "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    result: dict[str, Any] = json.loads(out)
    return result


# --- the tests --------------------------------------------------------------------------


@pytest.mark.slow
class TestKillNineUnderLoad:
    MESSAGES = 300
    KILLS = 10

    async def test_two_instances_killed_alternately_lose_nothing_and_invent_nothing(
        self,
        shared_backend: BackendUnderTest,
        processes: Callable[..., GatewayProcess],
        receiver: RecordingReceiver,
    ) -> None:
        # Given two gateway processes sharing one database (and one keyring)
        gateways = [processes(shared_backend.settings) for _ in range(2)]
        for gw in gateways:
            await gw.start()
        sender = Sender([gw.base for gw in gateways], valid_nhs_numbers(40), "kill9")

        async def killer() -> None:
            # Kill the instances alternately, each time once the stream has moved on.
            for k in range(self.KILLS):
                target = (k + 1) * self.MESSAGES // (self.KILLS + 2)
                await sender.wait_accepted(target, timeout=60)
                victim = gateways[k % 2]
                await victim.kill()
                await victim.start()

        # When eight senders post 300 messages while the instances are killed ten times
        await asyncio.gather(killer(), sender.run(self.MESSAGES))

        # Then every message sent was accepted, each under exactly one id, even when its
        # retry landed on the other instance
        assert sorted(sender.accepted) == list(range(self.MESSAGES))
        ids = set(sender.accepted.values())
        assert len(ids) == self.MESSAGES
        assert sum(gw.starts for gw in gateways) == 2 + self.KILLS
        assert sender.cut_requests + sender.server_errors > 0  # the kills did cut requests

        # And each recipient that de-duplicates by webhook-id holds exactly the accepted ones
        await receiver.wait_for(lambda: all(set(receiver.unique(p)) >= ids for p in RECIPIENTS), timeout=60)
        _assert_each_recipient_holds_exactly(receiver, ids)

        # And a retry of an accepted message gets its one id from either instance
        for gw in gateways:
            retry = Sender([gw.base], sender.children, "kill9")
            await retry.run(20, workers=4)
            assert retry.accepted == {n: sender.accepted[n] for n in range(20)}
            assert retry.duplicates == 20

        # And nothing is left over or dead-lettered, as both instances' operators see it
        for gw in gateways:
            queues = await _wait_drained(gw.base, delivered=self.MESSAGES)
            assert all(queues[p]["dead_letters"] == 0 for p in RECIPIENTS)

        # And the one audit chain that both instances wrote survived every kill
        assert [await gw.stop() for gw in gateways] == [0, 0]
        result = await _audit_verify(gateways[0].config)
        assert result["ok"] is True
        assert result["records"] >= 5 * self.MESSAGES  # received, 2 decisions, 2 deliveries each


@pytest.mark.slow
class TestDatabaseRestart:
    MESSAGES = 160

    @pytest.mark.parametrize("mode", ["fast", "immediate"])
    async def test_accepts_fail_with_5xx_during_the_outage_and_all_accepted_are_delivered(
        self,
        mode: str,
        shared_backend: BackendUnderTest,
        processes: Callable[..., GatewayProcess],
        receiver: RecordingReceiver,
    ) -> None:
        pg = shared_backend.postgres
        assert pg is not None
        # Given a gateway on the database, with a sender posting a steady stream
        gw = processes(shared_backend.settings)
        await gw.start()
        sender = Sender([gw.base], valid_nhs_numbers(20), f"pg-{mode}")
        readiness: list[int] = []

        async def outage() -> None:
            await sender.wait_accepted(self.MESSAGES // 3, timeout=60)
            # When PostgreSQL goes down mid-stream...
            await asyncio.to_thread(pg.stop_server, mode)
            try:
                # ...the sender's attempts fail with 5xx, and nothing more is accepted (a 202
                # answered for a commit made just before the stop has arrived by the third 5xx)
                errors_at_stop = sender.server_errors
                await _wait_until(lambda: sender.server_errors >= errors_at_stop + 3, timeout=30)
                accepted_in_outage = len(sender.accepted)
                await _wait_until(lambda: sender.server_errors >= errors_at_stop + 8, timeout=30)
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{gw.base}/readyz") as r,
                ):
                    readiness.append(r.status)
                assert len(sender.accepted) == accepted_in_outage
            finally:
                # ...and comes back
                await asyncio.to_thread(pg.start_server)

        await asyncio.gather(outage(), sender.run(self.MESSAGES, workers=4))

        # Then every message was accepted once, and the outage was seen as 5xx and not ready
        assert sorted(sender.accepted) == list(range(self.MESSAGES))
        ids = set(sender.accepted.values())
        assert len(ids) == self.MESSAGES
        assert sender.server_errors >= 8
        assert readiness == [503]
        async with aiohttp.ClientSession() as http, http.get(f"{gw.base}/readyz") as r:
            assert r.status == 200

        # And every accepted message reaches both recipients, once after de-duplication
        await receiver.wait_for(lambda: all(set(receiver.unique(p)) >= ids for p in RECIPIENTS), timeout=60)
        _assert_each_recipient_holds_exactly(receiver, ids)
        queues = await _wait_drained(gw.base, delivered=self.MESSAGES)
        assert all(queues[p]["dead_letters"] == 0 for p in RECIPIENTS)
        assert gw.starts == 1  # the same process rode the outage out

        assert await gw.stop() == 0
        assert (await _audit_verify(gw.config))["ok"] is True


class TestPartnerFailsThenTimesOutThenRecovers:
    async def test_backlog_drains_in_order_per_child_and_the_other_partner_flows(
        self, any_backend: BackendUnderTest, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        # Given social care's endpoint answers 500 (a retry budget that rides the outage out)
        gw: RunningGateway = await start_gateway(
            settings_extra=any_backend.settings,
            delivery={
                "max_attempts": 1000,
                "base_delay_seconds": 0.02,
                "max_delay_seconds": 0.1,
                "timeout_seconds": 0.3,
            },
        )
        receiver.set_behaviour(CSC, status=500)
        children = valid_nhs_numbers(4)
        sent: dict[str, tuple[str, int]] = {}
        for seq in range(3):
            for child in children:
                doc = message_for_child(child, seq)
                async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
                    assert r.status == 202, await r.text()
                    sent[str((await r.json())["message_id"])] = (child, seq)
        ids = set(sent)

        # Then the school gets everything meanwhile, and social care only failed attempts
        await receiver.wait_for(lambda: set(receiver.unique(SCHOOL)) == ids, timeout=15)
        await receiver.wait_for(lambda: receiver.attempts.get(CSC, 0) >= 8, timeout=15)
        assert receiver.for_partner(CSC) == []

        # When the endpoint stops answering in time (slower than the 0.3 s delivery timeout)
        receiver.set_behaviour(CSC, status=200, delay=1.0)
        timing_out_from = receiver.attempts[CSC]
        await receiver.wait_for(lambda: receiver.attempts[CSC] >= timing_out_from + 8, timeout=15)
        queue = (await _queues(gw.http, gw.base))[CSC]
        assert queue["delivered"] == 0
        assert queue["ready"] + queue["in_flight"] == len(sent)
        assert queue["dead_letters"] == 0

        # And then recovers
        receiver.set_behaviour(CSC, status=200)
        await receiver.wait_for(lambda: set(receiver.unique(CSC)) >= ids, timeout=30)

        # Then the backlog drained in order per child: only each child's head was ever tried
        arrived = list(receiver.unique(CSC))
        assert set(arrived) == ids
        for child in children:
            assert [sent[m][1] for m in arrived if sent[m][0] == child] == [0, 1, 2], child
        _assert_each_recipient_holds_exactly(receiver, ids)
        queues = await _wait_drained(gw.base, delivered=len(sent))
        assert all(queues[p]["dead_letters"] == 0 for p in RECIPIENTS)


class TestPoisonMessage:
    async def test_a_message_that_never_renders_is_dead_lettered_once_and_blocks_no_one(
        self,
        any_backend: BackendUnderTest,
        start_gateway: GatewayFactory,
        receiver: RecordingReceiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given a renderer that always fails on one message (a renderer bug it triggers)
        poison_reference = "NS-TEST-000005"
        original = CanonicalJsonAdapter.render

        def render(self: CanonicalJsonAdapter, message: Message) -> bytes:
            if message.envelope.sender_reference == poison_reference:
                raise RuntimeError("renderer bug")
            return original(self, message)

        monkeypatch.setattr(CanonicalJsonAdapter, "render", render)
        gw: RunningGateway = await start_gateway(settings_extra=any_backend.settings)

        # When the police send 12 messages about 2 children; the poison one is the third
        # about its child, with three more about that child after it
        children = valid_nhs_numbers(2)
        sent: dict[str, tuple[str, int]] = {}
        poison = ""
        for seq in range(12):
            child = children[seq % 2]
            async with gw.http.post(
                gw.url("/v1/messages"), data=body(message_for_child(child, seq)), headers=auth(POLICE)
            ) as r:
                assert r.status == 202, await r.text()  # accepted: the fault is ours, not the sender's
                message_id = str((await r.json())["message_id"])
            sent[message_id] = (child, seq)
            if seq == 5:
                poison = message_id
        healthy = set(sent) - {poison}

        # Then every other message reaches both recipients, in order per child
        await receiver.wait_for(lambda: all(set(receiver.unique(p)) >= healthy for p in RECIPIENTS), 15)
        for partner in RECIPIENTS:
            arrived = list(receiver.unique(partner))
            assert set(arrived) == healthy, partner
            for child in children:
                expected = [s for m, (c, s) in sent.items() if c == child and m != poison]
                assert [sent[m][1] for m in arrived if sent[m][0] == child] == expected
        assert receiver.rejected_signatures == 0

        # And the poison message is dead-lettered once per recipient, never attempted
        queues = await _wait_drained(gw.base, delivered=len(healthy))
        assert all(queues[p]["dead_letters"] == 1 for p in RECIPIENTS)
        for partner in RECIPIENTS:
            (dead,) = await gw.services.backend.dead_letters(partner, 10)
            assert (dead.message_id, dead.attempts, dead.last_error) == (
                poison,
                0,
                "render-failed:RuntimeError",
            )
        for partner in RECIPIENTS:
            assert all(r.webhook_id != poison for r in receiver.for_partner(partner))
