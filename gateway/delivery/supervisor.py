"""``RemoteDispatcher``: the parent's side of ``delivery.process: separate``.

It spawns ``python -m gateway deliver --config DIR`` (see ``gateway.delivery.process``) and
supervises it: restarts it with a capped backoff whenever it exits, stops it on shutdown
(close its stdin, SIGTERM, wait, then SIGKILL), and logs ``delivery_process.started`` /
``.exited`` with the pid and the exit code only.

To the API and the console it offers the ``DeliveryWorkers`` interface:

* ``notify(recipient)`` coalesces: the recipients woken during one event-loop tick are
  written to the child's stdin in one write on the next tick (ingest notifies per message;
  a write per call would cost more than the delivery it announces). While the child is down
  or behind (its pipe buffer full), wake-ups are dropped: the child wakes every worker when
  it starts and polls anyway, so a dropped wake-up costs at most a poll interval;
* ``workers[pid].circuit.state`` mirrors the child's circuits, polled from its ``/circuits``
  about once a second (until the first answer, and while the child is down, the last known
  state: ``closed`` at first);
* ``remote_metrics()`` fetches the child's delivery families for the parent's ``/metrics``
  with a short timeout, and ``gateway_delivery_process_up`` is 1 only while the child runs
  and answered its last poll.

MUST NOT pass anything to the child but partner ids (on its stdin) and its lease holder
id (in its environment, ``gateway.delivery.process.LEASE_HOLDER_ENV``), nor log anything
but ids, pids, exit codes and error class names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from gateway.delivery.circuit import CircuitState
from gateway.delivery.dispatcher import WorkerHandle
from gateway.delivery.process import LEASE_HOLDER_ENV
from gateway.metrics import Metrics

log = structlog.get_logger("gateway.delivery.supervisor")

MAX_PENDING_WRITE = 64 * 1024
"""Bytes queued for the child's stdin beyond which wake-ups are dropped (it is behind)."""


class MirroredCircuit:
    """A partner's circuit state as last reported by the delivery process."""

    def __init__(self) -> None:
        self.state = CircuitState.CLOSED


class RemoteWorker:
    """A webhook partner's worker that lives in the delivery process."""

    def __init__(self, partner: str, dispatcher: RemoteDispatcher) -> None:
        self._partner = partner
        self._dispatcher = dispatcher
        self.circuit = MirroredCircuit()

    def wake(self) -> None:
        self._dispatcher.notify(self._partner)


class RemoteDispatcher:
    """Spawns, supervises and talks to the delivery process (see the module docstring)."""

    def __init__(
        self,
        webhook_partners: Sequence[str],
        command: Sequence[str],
        socket_path: Path,
        metrics: Metrics,
        *,
        poll_seconds: float = 1.0,
        fetch_timeout_seconds: float = 0.5,
        restart_backoff: tuple[float, float] = (0.1, 5.0),
        healthy_after_seconds: float = 10.0,
        stop_timeout_seconds: float = 10.0,
    ) -> None:
        self._workers = {pid: RemoteWorker(pid, self) for pid in webhook_partners}
        self._command = list(command)
        self._socket_path = socket_path
        self._metrics = metrics
        self._poll = poll_seconds
        self._fetch_timeout = fetch_timeout_seconds
        self._backoff = restart_backoff
        self._healthy_after = healthy_after_seconds
        self._stop_timeout = stop_timeout_seconds
        self._totals: dict[str, dict[str, float]] = {}
        self._pending: set[str] = set()
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # The same for every child this supervisor spawns, unique per serve: a child takes
        # back exactly its killed predecessor's leases (see ``gateway.delivery.process``).
        self._lease_holder = secrets.token_hex(8)
        self._set_up(False)

    @property
    def workers(self) -> Mapping[str, WorkerHandle]:
        return self._workers

    @property
    def pid(self) -> int | None:
        """The running delivery process's pid, if any."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    # --- wake-ups -------------------------------------------------------------------------

    def notify(self, recipient: str) -> None:
        if recipient not in self._workers or self._loop is None:
            return
        self._pending.add(recipient)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        recipients, self._pending = self._pending, set()
        proc = self._proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            return
        transport = proc.stdin.transport
        if transport.is_closing() or transport.get_write_buffer_size() > MAX_PENDING_WRITE:
            return
        proc.stdin.write("".join(f"{r}\n" for r in sorted(recipients)).encode())

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.UnixConnector(path=str(self._socket_path))
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self._fetch_timeout)
        )
        self._task = asyncio.create_task(self._supervise(), name="delivery-supervisor")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._terminate()
        if self._session is not None:
            await self._session.close()
        self._set_up(False)

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self._command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL,
                    env={**os.environ, LEASE_HOLDER_ENV: self._lease_holder},
                )
            except OSError as exc:
                log.error("delivery_process.spawn_failed", error=type(exc).__name__)
                code: int | None = None
            else:
                self._proc = proc
                log.info("delivery_process.started", pid=proc.pid)
                poller = asyncio.create_task(self._poll_status(), name="delivery-status")
                try:
                    code = await proc.wait()
                finally:
                    poller.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await poller
                    self._set_up(False)
                log.warning("delivery_process.exited", pid=proc.pid, exit_code=code)
            failures = 1 if time.monotonic() - started >= self._healthy_after else failures + 1
            first, cap = self._backoff
            await asyncio.sleep(min(cap, first * 2 ** (failures - 1)))

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # EOF alone stops it; SIGTERM too, in case it is not reading
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self._stop_timeout):
                code = await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        log.info("delivery_process.exited", pid=proc.pid, exit_code=code)

    # --- status ---------------------------------------------------------------------------

    def _set_up(self, up: bool) -> None:
        if self._metrics.delivery_process_up is not None:
            self._metrics.delivery_process_up.set(1 if up else 0)

    async def _poll_status(self) -> None:
        # Quickly until the new child first answers (it takes a second or two to start),
        # then about once per poll interval.
        answered = False
        while True:
            ok = await self._fetch_circuits()
            self._set_up(ok)
            answered = answered or ok
            await asyncio.sleep(self._poll if answered else min(0.1, self._poll))

    async def _fetch_circuits(self) -> bool:
        if self._session is None:
            return False
        try:
            async with self._session.get("http://delivery/circuits") as resp:
                if resp.status != 200:
                    return False
                doc: dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return False
        for pid, entry in doc.get("partners", {}).items():
            worker = self._workers.get(pid)
            if worker is None:
                continue
            with contextlib.suppress(ValueError):
                worker.circuit.state = CircuitState(entry.get("circuit"))
            self._totals[pid] = {k: float(v) for k, v in entry.items() if k != "circuit"}
        return True

    async def remote_metrics(self) -> str | None:
        if self._session is None or self.pid is None:
            return None
        try:
            async with self._session.get("http://delivery/metrics") as resp:
                if resp.status != 200:
                    return None
                text = await resp.text()
        except (aiohttp.ClientError, OSError, TimeoutError):
            self._set_up(False)
            return None
        self._set_up(True)
        return text

    def remote_delivery_totals(self, result: str) -> Mapping[str, float]:
        return {pid: totals.get(result, 0.0) for pid, totals in self._totals.items()}


def deliver_command(config_dir: Path, log_level: str, extra: Sequence[str] = ()) -> list[str]:
    """The child's command line: this interpreter, ``-m gateway deliver``."""
    return [
        sys.executable,
        "-m",
        "gateway",
        "deliver",
        "--config",
        str(config_dir),
        "--log-level",
        log_level,
        *extra,
    ]
