"""``gateway deliver``: the delivery workers alone, in their own process.

With ``delivery.process: separate``, ``gateway serve`` spawns this process (see
``gateway.delivery.supervisor``) so that delivery (lease, open, sign, POST, complete) runs
on the second core while the server ingests on the first. The process:

* opens the same store backend, keyring and partners as ``serve`` and runs the
  ``Dispatcher`` (one ``PartnerWorker`` per webhook partner); on RabbitMQ the broker's
  arrival wake-up is wired to it here;
* reads recipient ids from stdin, one per line, and wakes those workers;
* serves ``GET /metrics`` (the delivery families of its own registry) and ``GET /circuits``
  (partner -> circuit state and delivery totals) on a unix socket in the data dir, mode
  0600; there is no TCP listener;
* exits cleanly (exit code 0) on SIGTERM or SIGINT, and when stdin reaches EOF: the parent
  died, even by ``kill -9``, so an orphan never keeps delivering beside a new gateway.

At start-up it returns to the queue the leases its killed predecessor held for its webhook
partners (``gateway.store.base.ReleasesPartnerLeases``), so their deliveries go out again at
once instead of after ``lease_seconds``. ``serve``'s supervisor gives each child it spawns
the same lease holder id (environment variable ``LEASE_HOLDER_ENV``, unique per ``serve``);
on PostgreSQL every lease token carries it, and only leases with this holder are released.
It MUST NOT release any other lease: not a pull partner's inbox lease (``serve``'s), not
another instance's (live or not). On SQLite one process leases for a webhook partner, so
every lease of those partners is its predecessor's (``serve`` itself releases every lease
once, before spawning the first child). After ``serve`` itself is killed, the new ``serve``
has a new holder id: the old one's PostgreSQL leases return when they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from gateway.config import Deployment
from gateway.delivery.dispatcher import Dispatcher
from gateway.metrics import DELIVERY_FAMILIES, Metrics, exposition
from gateway.store.base import ReleasesPartnerLeases

log = structlog.get_logger("gateway.delivery.process")

MAX_RECIPIENT_LINE = 4096
RESULTS = ("delivered", "failed", "dead")

LEASE_HOLDER_ENV = "GATEWAY_DELIVERY_LEASE_HOLDER"
"""Set by the supervisor: the lease holder id shared by the children of one ``serve``."""

DISPATCHER = web.AppKey("dispatcher", Dispatcher)
METRICS = web.AppKey("metrics", Metrics)


def status_app(dispatcher: Dispatcher, metrics: Metrics) -> web.Application:
    """The child's status endpoints (served on its unix socket only)."""
    app = web.Application()
    app[DISPATCHER] = dispatcher
    app[METRICS] = metrics
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/circuits", _circuits)
    return app


async def _metrics(request: web.Request) -> web.Response:
    body = exposition(request.app[METRICS].registry, DELIVERY_FAMILIES)
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def _circuits(request: web.Request) -> web.Response:
    """``{"partners": {id: {"circuit": state, "delivered": n, "failed": n, "dead": n}}}``:
    ids, states and counts only."""
    registry = request.app[METRICS].registry
    out: dict[str, dict[str, Any]] = {}
    for pid, worker in request.app[DISPATCHER].workers.items():
        entry: dict[str, Any] = {"circuit": worker.circuit.state.value}
        for result in RESULTS:
            labels = {"recipient": pid, "result": result}
            entry[result] = registry.get_sample_value("gateway_deliveries_total", labels) or 0.0
        out[pid] = entry
    return web.json_response({"partners": out})


def bind_status_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path`` readable and writable by this user only (a stale
    socket file from a killed process is replaced). Call before the event loop runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is created 0600, never briefly wider
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def read_wake_ups(reader: asyncio.StreamReader, dispatcher: Dispatcher) -> None:
    """Wake the worker of each recipient id read, one per line, until EOF. Unknown ids and
    over-long lines are ignored (the parent only writes partner ids)."""
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # a line longer than the reader's limit: skip it
            continue
        if not line:
            return
        if len(line) <= MAX_RECIPIENT_LINE:
            dispatcher.notify(line.decode("utf-8", "replace").strip())


def _unlink_if_ours(path: Path, inode: int) -> None:
    """Remove the socket file unless a newer delivery process has replaced it meanwhile."""
    with contextlib.suppress(OSError):
        if os.stat(path).st_ino == inode:
            path.unlink()


async def run_delivery_process(deployment: Deployment, sock: socket.socket) -> int:
    """Run the workers until SIGTERM/SIGINT or EOF on stdin; 0 after a clean stop."""
    from gateway.app import open_backend, open_keyring, wake_on_arrival

    keyring = await asyncio.to_thread(open_keyring, deployment)
    store = open_backend(deployment)
    metrics = Metrics()
    dispatcher = Dispatcher(deployment.partners, store, keyring, metrics)
    wake_on_arrival(store, dispatcher)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader(limit=MAX_RECIPIENT_LINE * 2)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    await store.open()
    holder = os.environ.get(LEASE_HOLDER_ENV, "")
    if isinstance(store, ReleasesPartnerLeases) and holder.isalnum() and len(holder) <= 64:
        store.lease_holder = holder
        released = await store.release_leases_of(sorted(dispatcher.workers))
        log.info("delivery_process.leases_released", pid=os.getpid(), released=released)
    runner = web.AppRunner(status_app(dispatcher, metrics), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    dispatcher.start()
    log.info("delivery_process.ready", pid=os.getpid(), workers=len(dispatcher.workers))
    stdin_task = asyncio.create_task(read_wake_ups(reader, dispatcher), name="delivery-stdin")
    stop_task = asyncio.create_task(stop.wait(), name="delivery-stop")
    try:
        await asyncio.wait({stdin_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        why = "signal" if stop.is_set() else "stdin-closed"
        log.info("delivery_process.stopping", pid=os.getpid(), reason=why)
    finally:
        for task in (stdin_task, stop_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await dispatcher.stop()
        await runner.cleanup()
        await store.close()
    return 0


def deliver(deployment: Deployment) -> int:
    """The ``gateway deliver`` entry point (uvloop when installed, as ``serve``)."""
    path = deployment.settings.delivery_socket
    sock = bind_status_socket(path)
    inode = os.stat(path).st_ino
    try:
        try:
            import uvloop
        except ImportError:  # optional, as for serve
            return asyncio.run(run_delivery_process(deployment, sock))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(run_delivery_process(deployment, sock))
    finally:
        _unlink_if_ours(path, inode)
        sock.close()
