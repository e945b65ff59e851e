"""Run the gateway: the HTTP API and, with ``delivery.process: inline`` (the default), the
delivery workers on one event loop; with ``separate`` the app supervises a ``gateway
deliver`` child process that runs them (``gateway.delivery.supervisor``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
from aiohttp import web

from gateway.app import create_app
from gateway.config import Deployment

log = structlog.get_logger("gateway.server")


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on host:port (port 0 picks a free one); returns the runner and the port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, bound_port(site) if port == 0 else port


def bound_port(site: web.TCPSite) -> int:
    """The port a site listens on (useful after binding port 0)."""
    sockets = getattr(site._server, "sockets", None) or ()
    if not sockets:
        raise RuntimeError("the site is not listening")
    return int(sockets[0].getsockname()[1])


async def run_until_stopped(deployment: Deployment, ready: asyncio.Event | None = None) -> None:
    app = create_app(deployment)
    s = deployment.settings
    runner, port = await start_site(app, s.host, s.port)
    # One line on stdout that scripts and tests can wait for.
    print(f"gateway listening on http://{s.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("gateway.stopping")
        await runner.cleanup()


def serve(deployment: Deployment) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (the 'fast' extra); asyncio's loop works too
        asyncio.run(run_until_stopped(deployment))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_until_stopped(deployment))
