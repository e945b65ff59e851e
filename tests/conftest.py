"""Fixtures: a real recording receiver and a real gateway on loopback, per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from gateway.api.state import SERVICES, Services
from gateway.app import create_app
from gateway.config import Deployment, load_deployment
from gateway.server import start_site
from gateway.testing import RecordingReceiver
from tests.support import write_deployment


@pytest.fixture(autouse=True)
def _no_blocking_calls_in_event_loop() -> Iterator[None]:
    """Fail any test in which product code blocks the event loop (aiohttp's habit)."""
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["gateway", "adapters", "consent", "canonical"]):
        yield


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """CLI tests configure logging onto a captured stream; never let it leak to other tests."""
    yield
    structlog.reset_defaults()


@pytest.fixture
async def receiver() -> AsyncIterator[RecordingReceiver]:
    secrets = {
        "school-riverside-primary": "whsec_ZGVtby1zY2hvb2wtc2lnbmluZy1zZWNyZXQtbm90LWY=",
        "csc-northshire": "whsec_ZGVtby1jc2Mtc2lnbmluZy1zZWNyZXQtbm90LWZvci0=",
    }
    async with RecordingReceiver(secrets) as rx:
        yield rx


@dataclass
class RunningGateway:
    base: str
    app: web.Application
    http: aiohttp.ClientSession
    config_dir: Path

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    def url(self, path: str) -> str:
        return self.base + path


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def start_gateway(tmp_path: Path, receiver: RecordingReceiver) -> AsyncIterator[GatewayFactory]:
    """Start a gateway (in this process) on the example policy; keyword arguments go to
    ``write_deployment``. Everything is stopped at the end of the test."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(**kwargs: Any) -> RunningGateway:
        config = write_deployment(
            tmp_path / f"deploy{len(runners)}", receiver_base=f"http://127.0.0.1:{receiver.port}", **kwargs
        )
        # Start-up reads files (policy, keyring): done off the loop, as a server would before serving.
        deployment: Deployment = await asyncio.to_thread(load_deployment, config)
        app = await asyncio.to_thread(create_app, deployment)
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


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> RunningGateway:
    gw: RunningGateway = await start_gateway()
    return gw
