"""``delivery.process: separate``: the setting, the parent's coalesced wake-ups, its merged
``/metrics``, the mirrored circuits, and the SQLite writers' lock between processes.

The gateway here runs in the test's process (``start_gateway``) and spawns a real
``gateway deliver`` child; receivers are real aiohttp servers on loopback.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import main
from gateway.config import load_deployment, load_settings
from gateway.delivery.supervisor import RemoteDispatcher
from gateway.errors import ConfigError
from gateway.metrics import DELIVERY_FAMILIES, Metrics, exposition, merged_exposition
from gateway.store.writer import GroupCommitWriter, lock_path
from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
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

SEPARATE = {"process": "separate", "poll_interval_seconds": 0.2}


def _edit_settings(config: Path, **delivery: object) -> None:
    path = config / "gateway.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["delivery"].update(delivery)
    path.write_text(yaml.safe_dump(doc))


def _families(text: str) -> list[str]:
    return [f.name for f in text_string_to_metric_families(text)]


def _sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == (labels or {}):
                return float(s.value)
    return None


class TestSetting:
    def test_default_is_inline(self, tmp_path: Path) -> None:
        config = write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9")
        assert load_settings(config).delivery_process == "inline"

    def test_separate_is_read_and_not_a_worker_setting(self, tmp_path: Path) -> None:
        config = write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9", delivery=SEPARATE)
        dep = load_deployment(config)
        assert dep.settings.delivery_process == "separate"
        assert dep.settings.delivery_socket == dep.settings.data_dir / "delivery.sock"

    def test_an_unknown_value_fails_start_up_with_file_path_and_rule(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config = write_deployment(tmp_path / "cfg", receiver_base="http://127.0.0.1:9")
        _edit_settings(config, process="threads")
        with pytest.raises(ConfigError) as info:
            load_settings(config)
        assert str(config / "gateway.yaml") in info.value.detail
        assert "/delivery/process" in info.value.detail
        assert "(enum)" in info.value.detail
        assert "threads" not in info.value.detail  # never the value
        assert main(["serve", "--config", str(config)]) == 2
        assert "/delivery/process" in capsys.readouterr().err

    def test_a_socket_path_too_long_for_unix_fails_start_up(self, tmp_path: Path) -> None:
        config = write_deployment(
            tmp_path / "cfg",
            receiver_base="http://127.0.0.1:9",
            delivery=SEPARATE,
            settings_extra={"data_dir": str(tmp_path / ("d" * 120))},
        )
        with pytest.raises(ConfigError) as info:
            load_settings(config)
        assert "/delivery/process (socket-path-length)" in info.value.detail


class TestMergedExposition:
    def test_each_family_once_and_shared_samples_summed(self) -> None:
        parent, child = Metrics(delivery_process=True), Metrics()
        parent.deliveries.labels("pull-partner", "delivered").inc(2)  # pull acks count here
        child.deliveries.labels(SCHOOL, "delivered").inc(5)
        parent.end_to_end_seconds.observe(0.01)
        child.end_to_end_seconds.observe(0.02)
        child.circuit_open.labels(SCHOOL).set(1)
        remote = exposition(child.registry, DELIVERY_FAMILIES).decode()
        assert set(_families(remote)) <= {
            *DELIVERY_FAMILIES,
            "gateway_deliveries_created",
            "gateway_delivery_attempt_seconds_created",
            "gateway_end_to_end_seconds_created",
        }
        text = merged_exposition(parent.registry, remote).decode()
        names = _families(text)
        assert len(names) == len(set(names))
        delivered = {"result": "delivered"}
        assert _sample(text, "gateway_deliveries_total", {"recipient": SCHOOL, **delivered}) == 5
        assert _sample(text, "gateway_deliveries_total", {"recipient": "pull-partner", **delivered}) == 2
        assert _sample(text, "gateway_end_to_end_seconds_count") == 2
        assert _sample(text, "gateway_circuit_open", {"recipient": SCHOOL}) == 1
        assert _sample(text, "gateway_delivery_process_up") == 0


# --- the parent's side, against a stand-in child that records its stdin -------------------

RECORDER = textwrap.dedent(
    """
    import sys
    with open(sys.argv[1], "a", encoding="utf-8") as out:
        for line in sys.stdin:
            out.write(line)
            out.flush()
    """
)


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[tuple[RemoteDispatcher, Path]]:
    lines = tmp_path / "stdin.txt"
    dispatcher = RemoteDispatcher(
        [SCHOOL, CSC],
        [sys.executable, "-c", RECORDER, str(lines)],
        tmp_path / "none.sock",
        Metrics(delivery_process=True),
        restart_backoff=(0.05, 0.2),
    )
    dispatcher.start()
    await eventually(_running(dispatcher), timeout=10)
    yield dispatcher, lines
    await dispatcher.stop()


def _running(d: RemoteDispatcher, other_than: int | None = None) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return d.pid is not None and d.pid != other_than

    return check


async def _lines(path: Path) -> list[str]:
    text = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
    return text.splitlines()


class TestRemoteDispatcher:
    async def test_wake_ups_in_one_tick_are_one_write_per_recipient_set(
        self, recorded: tuple[RemoteDispatcher, Path]
    ) -> None:
        dispatcher, lines = recorded
        for _ in range(100):  # as ingest does: one notify per message, all in one tick
            dispatcher.notify(SCHOOL)
            dispatcher.notify(CSC)
            dispatcher.notify(POLICE)  # not a webhook partner: never sent
        await eventually(lambda: _at_least(lines, 2), timeout=10)
        dispatcher.workers[SCHOOL].wake()
        await eventually(lambda: _at_least(lines, 3), timeout=10)
        await dispatcher.stop()  # closes stdin: the recorder has read everything
        assert await _lines(lines) == [CSC, SCHOOL, SCHOOL]

    async def test_a_child_that_dies_is_started_again(self, recorded: tuple[RemoteDispatcher, Path]) -> None:
        dispatcher, lines = recorded
        first = dispatcher.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await eventually(_running(dispatcher, other_than=first), timeout=10)
        dispatcher.notify(CSC)
        await eventually(lambda: _at_least(lines, 1), timeout=10)
        assert await _lines(lines) == [CSC]


async def _at_least(path: Path, n: int) -> bool:
    return len(await _lines(path)) >= n


# --- a real gateway with a real delivery process --------------------------------------------


@pytest.fixture
async def separate(start_gateway: GatewayFactory) -> RunningGateway:
    gw: RunningGateway = await start_gateway(delivery=SEPARATE)
    assert isinstance(gw.services.dispatcher, RemoteDispatcher)
    return gw


async def _scrape(gw: RunningGateway) -> str:
    async with gw.http.get(gw.url("/metrics")) as r:
        assert r.status == 200
        return await r.text()


class TestSeparateGateway:
    async def test_delivers_and_reports_the_childs_metrics_and_circuits(
        self, separate: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        gw = separate
        ids = set()
        for n, child in enumerate(valid_nhs_numbers(5)):
            async with gw.http.post(
                gw.url("/v1/messages"), data=body(message_for_child(child, n)), headers=auth(POLICE)
            ) as r:
                assert r.status == 202
                ids.add((await r.json())["message_id"])
        await receiver.wait_for(lambda: set(receiver.unique(SCHOOL)) == ids == set(receiver.unique(CSC)), 20)

        async def counted() -> bool:
            text = await _scrape(gw)
            labels = {"recipient": CSC, "result": "delivered"}
            return (
                _sample(text, "gateway_deliveries_total", labels) == len(ids)
                and _sample(text, "gateway_delivery_process_up") == 1
            )

        await eventually(counted, timeout=10)
        names = _families(await _scrape(gw))
        assert len(names) == len(set(names))
        assert {"gateway_messages_received", *DELIVERY_FAMILIES} <= set(names)

    async def test_circuits_are_mirrored_from_the_child(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw: RunningGateway = await start_gateway(
            delivery={**SEPARATE, "circuit_failure_threshold": 1, "circuit_reset_seconds": 60}
        )
        receiver.set_behaviour(CSC, status=503)
        async with gw.http.post(
            gw.url("/v1/messages"),
            data=body(message_for_child(valid_nhs_numbers(1)[0])),
            headers=auth(POLICE),
        ) as r:
            assert r.status == 202

        async def csc_open() -> bool:
            async with gw.http.get(gw.url("/v1/ops/queues"), headers=operator_auth()) as r:
                queues = {q["partner"]: q for q in (await r.json())["queues"]}
            return bool(queues[CSC]["circuit"] == "open" and queues[SCHOOL]["circuit"] == "closed")

        await eventually(csc_open, timeout=15, interval=0.1)
        text = await _scrape(gw)
        assert _sample(text, "gateway_circuit_open", {"recipient": CSC}) == 1

    async def test_metrics_answer_while_the_child_is_stopped(self, separate: RunningGateway) -> None:
        dispatcher = separate.services.dispatcher
        assert isinstance(dispatcher, RemoteDispatcher)

        async def up(value: int) -> bool:
            return _sample(await _scrape(separate), "gateway_delivery_process_up") == value

        await eventually(lambda: up(1), timeout=15, interval=0.1)
        pid = dispatcher.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # alive but not answering: the fetch times out
        try:
            await eventually(lambda: up(0), timeout=10, interval=0.1)
            names = _families(await _scrape(separate))
            assert len(names) == len(set(names))
        finally:
            os.kill(pid, signal.SIGCONT)
        await eventually(lambda: up(1), timeout=10, interval=0.1)

    async def test_the_socket_is_private(self, separate: RunningGateway) -> None:
        path = separate.services.deployment.settings.delivery_socket
        await eventually(lambda: _exists(path), timeout=15)
        mode = (await asyncio.to_thread(path.stat)).st_mode & 0o777
        assert mode == 0o600
        connector = aiohttp.UnixConnector(path=str(path))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get("http://delivery/circuits") as r,
        ):
            assert r.status == 200
            assert set((await r.json())["partners"]) == {SCHOOL, CSC}


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


# --- two processes writing one SQLite file ----------------------------------------------------

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from gateway.store.writer import GroupCommitWriter

    async def main(path: str, tag: str, rounds: int) -> None:
        writer = GroupCommitWriter(Path(path), synchronous="NORMAL")
        # No busy_timeout backstop: without the writers' lock, contention is an error at once.
        writer.start(lambda c: (c.execute("PRAGMA busy_timeout=0"),
                                c.execute("CREATE TABLE IF NOT EXISTS t (tag TEXT, n INTEGER)")))
        print("ready", flush=True)
        sys.stdin.readline()
        for r in range(rounds):
            await asyncio.gather(*(
                writer.run(lambda c, n=r * 4 + i: c.execute("INSERT INTO t VALUES (?, ?)", (tag, n)))
                for i in range(4)
            ))
        await writer.stop()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


class TestWritersLock:
    ROUNDS = 300

    async def test_two_processes_write_one_file_without_lock_errors(self, tmp_path: Path) -> None:
        db = tmp_path / "shared.db"
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITER,
                str(db),
                tag,
                str(self.ROUNDS),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for tag in ("a", "b")
        ]
        for p in procs:
            assert p.stdout is not None
            async with asyncio.timeout(30):
                assert await p.stdout.readline() == b"ready\n"
        results = await asyncio.gather(*(p.communicate(b"go\n") for p in procs))
        for p, (_, err) in zip(procs, results, strict=True):
            assert b"database is locked" not in err, err.decode()
            assert p.returncode == 0, err.decode()

        def counts() -> list[tuple[str, int, int]]:
            with sqlite3.connect(db) as conn:
                return list(conn.execute("SELECT tag, COUNT(*), COUNT(DISTINCT n) FROM t GROUP BY tag"))

        n = self.ROUNDS * 4
        assert await asyncio.to_thread(counts) == [("a", n, n), ("b", n, n)]

    async def test_a_batch_waits_for_the_lock_and_commits_once_it_is_free(self, tmp_path: Path) -> None:
        db = tmp_path / "w.db"
        writer = GroupCommitWriter(db, synchronous="NORMAL")
        await asyncio.to_thread(writer.start, lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
        fd = await asyncio.to_thread(os.open, lock_path(db), os.O_RDWR)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)  # another writer's batch
            pending = asyncio.ensure_future(writer.run(lambda c: c.execute("INSERT INTO t VALUES (1)")))
            done, _ = await asyncio.wait({pending}, timeout=0.3)
            assert not done  # held behind the lock, not failing with "database is locked"
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_UN)
            async with asyncio.timeout(10):
                await pending
        finally:
            await asyncio.to_thread(os.close, fd)
            await writer.stop()
