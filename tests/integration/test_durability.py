"""Durability: the gateway as a real process, killed with SIGKILL mid-stream again and again.

The sender retries each message with the same ``Idempotency-Key`` until it gets a 202, as a
partner system would. After the last restart every message has been accepted exactly once,
and each recipient that de-duplicates by ``webhook-id`` holds exactly those messages: none
lost, none invented, whatever the kills interrupted (a commit, a delivery, a lease).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.testing import RecordingReceiver
from tests.support import (
    CSC,
    POLICE,
    SCHOOL,
    auth,
    body,
    eventually,
    message_for_child,
    valid_nhs_numbers,
    write_deployment,
)

pytestmark = pytest.mark.slow

MESSAGES = 240
KILLS = 6
LISTENING = re.compile(r"gateway listening on (http://\S+)")


class GatewayProcess:
    """``python -m gateway serve`` on a deployment folder; start, kill -9, restart."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.base = ""
        self.starts = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(self.config),
            "--log-level",
            "warning",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"the gateway exited with {await self.proc.wait()} before listening")
                found = LISTENING.search(line)
                if found:
                    self.base = found.group(1)
                    break
        self.starts += 1

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            return await self.proc.wait()


@pytest.fixture
async def gateway_process(tmp_path: Path, receiver: RecordingReceiver) -> AsyncIterator[GatewayProcess]:
    config = write_deployment(
        tmp_path / "deploy",
        receiver_base=f"http://127.0.0.1:{receiver.port}",
        # A fixed port so senders find the gateway again after each restart.
        port=_free_port(),
        # Short leases: a delivery leased by a killed process is retried soon after restart.
        delivery={"lease_seconds": 1.0, "poll_interval_seconds": 0.1},
    )
    process = GatewayProcess(config)
    yield process
    if process.proc is not None and process.proc.returncode is None:
        process.proc.kill()
        await process.proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _send_until_accepted(http: aiohttp.ClientSession, gw: GatewayProcess, n: int, child: str) -> str:
    """POST one message with a stable Idempotency-Key until a 202 comes back; its id."""
    headers = {**auth(POLICE), "Idempotency-Key": f"durability-{n}"}
    data = body(message_for_child(child, n))
    while True:
        try:
            async with http.post(f"{gw.base}/v1/messages", data=data, headers=headers) as r:
                if r.status == 202:
                    return str((await r.json())["message_id"])
                assert r.status >= 500, f"message {n}: unexpected {r.status} {await r.text()}"
        except (aiohttp.ClientError, OSError):
            pass  # the gateway is down (killed): try again, as a partner's outbox would
        await asyncio.sleep(0.02)


async def test_every_accepted_message_is_delivered_once_despite_repeated_kill_9(
    gateway_process: GatewayProcess, receiver: RecordingReceiver
) -> None:
    gw = gateway_process
    await gw.start()
    children = valid_nhs_numbers(40)
    accepted: dict[int, str] = {}

    async def sender(worker: int, http: aiohttp.ClientSession) -> None:
        for n in range(worker, MESSAGES, 8):
            accepted[n] = await _send_until_accepted(http, gw, n, children[n % len(children)])

    async def killer() -> None:
        for k in range(KILLS):
            # Kill once the stream has moved on since the last start, mid-stream.
            target = (k + 1) * MESSAGES // (KILLS + 2)

            async def reached(target: int = target) -> bool:
                return len(accepted) >= target

            await eventually(reached, timeout=60, interval=0.01)
            await gw.kill()
            await gw.start()

    connector = aiohttp.TCPConnector(limit=8, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(killer(), *(sender(w, http) for w in range(8)))

    # Every message was accepted, each under one id (retries of a committed POST were
    # answered with the same id, never a second message).
    assert sorted(accepted) == list(range(MESSAGES))
    ids = set(accepted.values())
    assert len(ids) == MESSAGES
    assert gw.starts == KILLS + 1

    # Each recipient that de-duplicates by webhook-id holds exactly the accepted messages.
    await receiver.wait_for(
        lambda: set(receiver.unique(SCHOOL)) >= ids and set(receiver.unique(CSC)) >= ids, timeout=60
    )
    for partner in (SCHOOL, CSC):
        assert set(receiver.unique(partner)) == ids, partner
    assert receiver.rejected_signatures == 0
    redelivered = sum(len(receiver.for_partner(p)) for p in (SCHOOL, CSC)) - 2 * MESSAGES
    assert redelivered >= 0

    # The audit chain survived every kill intact.
    assert await gw.stop() == 0
    verify = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "audit",
        "verify",
        "--config",
        str(gw.config),
        "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await verify.communicate()
    assert verify.returncode == 0, out.decode()
    result = json.loads(out)
    assert result["ok"] is True
    assert result["records"] >= 5 * MESSAGES  # received, 2 decisions, 2 deliveries per message
