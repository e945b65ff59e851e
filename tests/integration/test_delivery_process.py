"""``delivery.process: separate`` with real processes: ``gateway serve`` as a subprocess and
its ``gateway deliver`` child, killed with SIGKILL mid-stream.

The sender retries each message with the same ``Idempotency-Key`` until it gets a 202 (a
partner's outbox); the receivers de-duplicate by ``webhook-id``. Whatever is killed, every
202'd message reaches each recipient, none is missing, and repeats are only repeats of the
same webhook id.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.testing import RecordingReceiver
from tests.integration.test_faults import (  # reused, not copied: one way to run a gateway process
    BackendUnderTest,
    GatewayProcess,
    Sender,
    _assert_each_recipient_holds_exactly,
    _queues,
    any_backend,  # noqa: F401 - a fixture (each store backend), used by name below
    processes,  # noqa: F401 - a fixture, used by name below
)
from tests.support import CSC, SCHOOL, eventually, valid_nhs_numbers

pytestmark = pytest.mark.slow

SEPARATE = {"process": "separate"}
SETTINGS: dict[str, object] = {}
"""No top-level settings beyond the fixture's: the mode is a ``delivery`` setting."""


def _children_of(pid: int) -> list[int]:
    """Live child pids of ``pid`` (Linux ``/proc``), zombies excluded."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            pids = [int(p) for p in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError):  # the parent is gone (or being reaped)
        return []
    return [p for p in pids if _alive(p)]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        # Gone between the listing and the read: reading /proc/PID/stat of a process being
        # reaped fails with ESRCH (ProcessLookupError), not ENOENT.
        return False
    return state not in ("Z", "X")


async def _delivery_pid(gw: GatewayProcess, other_than: int | None = None) -> int:
    """The gateway's delivery process pid (a new one when ``other_than`` is given)."""
    assert gw.proc is not None
    parent = gw.proc.pid
    found: list[int] = []

    async def spawned() -> bool:
        found[:] = [p for p in await asyncio.to_thread(_children_of, parent) if p != other_than]
        return bool(found)

    await eventually(spawned, timeout=20, interval=0.05)
    return found[0]


async def _scrape(base: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as r:
        assert r.status == 200
        return await r.text()


def _sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


async def test_separate_mode_delivers_each_message_once(
    processes: Callable[..., GatewayProcess],  # noqa: F811 - the imported fixture
    receiver: RecordingReceiver,
) -> None:
    # Given a gateway whose delivery runs in its own process
    gw = processes(SETTINGS, SEPARATE)
    await gw.start()
    child = await _delivery_pid(gw)
    # When a partner sends a stream of messages
    sender = Sender([gw.base], valid_nhs_numbers(10), "separate")
    await sender.run(60)
    ids = set(sender.accepted.values())
    assert len(ids) == 60
    # Then each recipient receives exactly those, each exactly once
    await receiver.wait_for(lambda: all(set(receiver.unique(p)) == ids for p in (SCHOOL, CSC)), 30)
    _assert_each_recipient_holds_exactly(receiver, ids)
    for partner in (SCHOOL, CSC):
        assert len(receiver.for_partner(partner)) == len(ids), partner
    # and the parent's metrics count the child's deliveries, each family once
    delivered = {"recipient": SCHOOL, "result": "delivered"}

    async def counted() -> bool:
        return _sample(await _scrape(gw.base), "gateway_deliveries_total", delivered) == len(ids)

    await eventually(counted, timeout=10, interval=0.1)
    text = await _scrape(gw.base)
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names))
    assert _sample(text, "gateway_delivery_process_up", {}) == 1
    async with aiohttp.ClientSession() as http:
        queues = await _queues(http, gw.base)
    assert queues[SCHOOL]["circuit"] == queues[CSC]["circuit"] == "closed"
    assert queues[SCHOOL]["delivered"] == len(ids)
    # and a clean stop stops the child too
    assert await gw.stop() == 0
    assert not _alive(child)


async def test_a_killed_delivery_process_is_restarted_and_nothing_is_lost(
    any_backend: BackendUnderTest,  # noqa: F811 - the imported fixture
    processes: Callable[..., GatewayProcess],  # noqa: F811 - the imported fixture
    receiver: RecordingReceiver,
) -> None:
    """On every store backend: the child opens its own connection(s) as ``serve`` does."""
    gw = processes(any_backend.settings, SEPARATE)
    await gw.start()
    sender = Sender([gw.base], valid_nhs_numbers(20), "child-kill")
    stream = asyncio.create_task(sender.run(150))
    child = await _delivery_pid(gw)
    for target in (40, 90):
        # When the delivery process is killed mid-stream
        await sender.wait_accepted(target, timeout=60)
        os.kill(child, 9)
        # Then the gateway starts another one
        child = await _delivery_pid(gw, other_than=child)
    await stream
    ids = set(sender.accepted.values())
    assert len(ids) == 150
    # and every 202'd message is delivered; repeats are only repeated webhook ids
    await receiver.wait_for(lambda: all(set(receiver.unique(p)) >= ids for p in (SCHOOL, CSC)), 60)
    _assert_each_recipient_holds_exactly(receiver, ids)
    assert gw.running
    assert await gw.stop() == 0


async def test_the_delivery_process_exits_when_the_gateway_is_killed(
    processes: Callable[..., GatewayProcess],  # noqa: F811 - the imported fixture
    receiver: RecordingReceiver,
) -> None:
    gw = processes(SETTINGS, SEPARATE)
    await gw.start()
    sender = Sender([gw.base], valid_nhs_numbers(20), "parent-kill")
    stream = asyncio.create_task(sender.run(100))
    child = await _delivery_pid(gw)
    await sender.wait_accepted(40, timeout=60)
    # When the gateway itself is killed with SIGKILL (no chance to stop its child)
    await gw.kill()

    # Then its delivery process notices (stdin at EOF) and exits by itself
    async def gone() -> bool:
        return not await asyncio.to_thread(_alive, child)

    await eventually(gone, timeout=20, interval=0.05)
    # and a new gateway delivers everything that got a 202, before and after the kill
    await gw.start()
    await stream
    ids = set(sender.accepted.values())
    assert len(ids) == 100
    await receiver.wait_for(lambda: all(set(receiver.unique(p)) >= ids for p in (SCHOOL, CSC)), 60)
    _assert_each_recipient_holds_exactly(receiver, ids)
    assert await gw.stop() == 0


async def test_a_killed_delivery_process_s_leases_go_out_again_long_before_they_expire(
    any_backend: BackendUnderTest,  # noqa: F811 - the imported fixture
    processes: Callable[..., GatewayProcess],  # noqa: F811 - the imported fixture
    receiver: RecordingReceiver,
) -> None:
    """On every store backend: the new child takes back its predecessor's leases (on the
    scale-out backends by the lease holder id the supervisor gives every child)."""
    # Given 30 s leases, and a school that is slow to answer, so the delivery process
    # holds the school's leases while its posts are in flight
    lease_seconds = 30.0
    gw = processes(any_backend.settings, {**SEPARATE, "lease_seconds": lease_seconds, "timeout_seconds": 60})
    receiver.set_behaviour(SCHOOL, delay=5)
    await gw.start()
    child = await _delivery_pid(gw)
    sender = Sender([gw.base], valid_nhs_numbers(6), "lease-release")
    await sender.run(6)
    ids = set(sender.accepted.values())
    assert len(ids) == 6
    await receiver.wait_for(lambda: receiver.attempts.get(SCHOOL, 0) >= 6, 30)
    first_attempts = receiver.attempts[SCHOOL]
    # When the delivery process is killed with those posts in flight, and the school recovers
    receiver.set_behaviour(SCHOOL)
    os.kill(child, 9)
    killed_at = asyncio.get_running_loop().time()
    await _delivery_pid(gw, other_than=child)
    # Then the new process sends them again at once, not after the leases expire
    await receiver.wait_for(
        lambda: (
            {r.webhook_id for r in receiver.for_partner(SCHOOL)} >= ids
            and receiver.attempts[SCHOOL] >= first_attempts + 6
        ),
        lease_seconds / 2,
    )
    assert asyncio.get_running_loop().time() - killed_at < lease_seconds / 2
    # and social care, never slow, has everything too, each message once per webhook id
    await receiver.wait_for(lambda: set(receiver.unique(CSC)) >= ids, lease_seconds / 2)
    assert asyncio.get_running_loop().time() - killed_at < lease_seconds / 2
    _assert_each_recipient_holds_exactly(receiver, ids)
    assert await gw.stop() == 0
