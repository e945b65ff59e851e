"""Delivery benchmark: CPU per webhook delivery of the real ``Dispatcher`` workers.

What runs, all on loopback:

* a **receiver** in its own process (so its CPU is not counted): a minimal aiohttp server
  that reads each body, records the ``webhook-id`` per partner and answers 200;
* in this process: a SQLite store (WAL, ``synchronous=FULL``, as ``bench/e2e.py``) filled
  through ``Store.accept`` with ``--messages`` messages about ``--children`` synthetic
  children, each one delivery to each of two webhook partners (sealed ~1.2 KB JSON payloads,
  as the example notification renders), then the real ``Dispatcher`` (one ``PartnerWorker``
  per partner, the default delivery settings, uvloop when installed, as ``gateway
  deliver``) until the store reports every delivery delivered.

The timed part starts when the workers start and ends when the store has committed the
last completion. ``cpu_ms_per_delivery`` is this process's ``time.process_time()`` (user +
system of every thread, the SQLite writer's included) over that span, per delivery: steadier
than the rate on a shared machine. Filling the store is not timed.

Run:  .venv/bin/python bench/delivery.py [--messages 4000] [--children 1000] [--runs 3]

The last line printed is one JSON object with the figures (keys in bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.audit import AuditEvent  # noqa: E402 - the repository root must be importable first
from gateway.config import DeliverySettings, PartnerDelivery, PartnerRuntime, Secret  # noqa: E402
from gateway.crypto import Keyring, generate_keyring  # noqa: E402
from gateway.delivery.dispatcher import Dispatcher  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.server import bound_port  # noqa: E402
from gateway.store.base import DecisionRecord, DeliveryRecord, InboundRecord  # noqa: E402
from gateway.store.sqlite import SqliteBackend  # noqa: E402
from tests.support import valid_nhs_numbers  # noqa: E402

HERE = Path(__file__).resolve()
PARTNERS = ("school-northshire", "csc-northshire")
SECRET = "whsec_ZmljdGlvbmFsLWJlbmNoLXNpZ25pbmctc2VjcmV0LTE="
FILL_CHUNK = 250


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the receiver (its own process) ---------------------------------------------------------


def run_receiver() -> None:
    """``--receiver``: serve on a free loopback port, print it, answer until stdin closes."""
    seen: dict[str, set[str]] = {p: set() for p in PARTNERS}

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        seen.setdefault(request.match_info["partner"], set()).add(request.headers.get("webhook-id", ""))
        return web.Response(status=200)

    async def counts(request: web.Request) -> web.Response:
        return web.json_response({p: len(ids) for p, ids in seen.items()})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{partner}", receive)
        app.router.add_get("/counts", counts)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(bound_port(site), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.read()  # EOF: the benchmark is done
        await runner.cleanup()

    asyncio.run(main())


@contextlib.contextmanager
def receiver_process() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE), "--receiver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline()), proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the store and the workers (this process) -----------------------------------------------


def payload_for(nhs: str, n: int) -> bytes:
    """About the size of the example notification as rendered for a recipient (synthetic)."""
    doc = {
        "message_id": f"msg_{n:06d}",
        "event_type": "police.domestic-abuse-incident",
        "child": {"nhs_number": nhs, "given_name": "Zed", "family_name": "Example", "postcode": "ZZ99 1ZZ"},
        "incident": {"reference": f"ZZ-{n:08d}", "summary": "Synthetic benchmark incident. " * 24},
        "released": ["identity.core", "incident.summary", "contacts.lead-professional"],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


async def fill(backend: SqliteBackend, keyring: Keyring, tag: int, messages: int, children: int) -> None:
    nhs_numbers = valid_nhs_numbers(children)

    async def accept(n: int) -> None:
        mid = f"msg_{tag}_{n:06d}"
        child = n % children
        inbound = InboundRecord(
            mid,
            "police",
            "police.domestic-abuse-incident",
            "safeguarding",
            time.time(),
            "sha",
            keyring.seal(b"{}", mid),
            (f"s{child}",),
        )
        decisions = [
            DecisionRecord(
                f"dec_{tag}_{n:06d}_{i}", mid, p, "permit", "permit", "agr", ("identity.core",), "v1"
            )
            for i, p in enumerate(PARTNERS)
        ]
        payload = payload_for(nhs_numbers[child], n)
        deliveries = [
            DeliveryRecord(
                f"dlv_{tag}_{n:06d}_{i}",
                mid,
                d.decision_id,
                p,
                f"{p}:{child}",
                "application/json",
                keyring.seal(payload, f"dlv_{tag}_{n:06d}_{i}"),
                8,
            )
            for i, (p, d) in enumerate(zip(PARTNERS, decisions, strict=True))
        ]
        await backend.accept(
            inbound, decisions, deliveries, [AuditEvent("message.received", {}, mid, "police")]
        )

    for start in range(0, messages, FILL_CHUNK):
        await asyncio.gather(*(accept(n) for n in range(start, min(messages, start + FILL_CHUNK))))


def partners(port: int) -> dict[str, PartnerRuntime]:
    return {
        p: PartnerRuntime(
            p,
            frozenset(),
            PartnerDelivery(
                "webhook", "canonical", f"http://127.0.0.1:{port}/{p}", Secret(SECRET), DeliverySettings()
            ),
        )
        for p in PARTNERS
    }


async def one_run(
    db: Path, keyring: Keyring, tag: int, port: int, messages: int, children: int
) -> dict[str, float]:
    """One timed run on a new store file ``db``."""
    backend = SqliteBackend(db, synchronous="FULL")
    await backend.open()
    try:
        await fill(backend, keyring, tag, messages, children)
        total = messages * len(PARTNERS)
        metrics = Metrics()
        dispatcher = Dispatcher(partners(port), backend, keyring, metrics)

        def posted() -> float:
            # The workers' own success counter: cheap to read, unlike a scan of the store.
            return sum(
                metrics.registry.get_sample_value(
                    "gateway_deliveries_total", {"recipient": p, "result": "delivered"}
                )
                or 0.0
                for p in PARTNERS
            )

        async def committed() -> int:
            return sum(s.delivered for s in await backend.stats())

        log(f"filled ({total} deliveries); delivering")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        dispatcher.start()
        try:
            while posted() < total:  # noqa: ASYNC110 - polls a counter; no event to wait on
                await asyncio.sleep(0.05)
            while await committed() < total:  # noqa: ASYNC110 - the last completions: a linger + a commit
                await asyncio.sleep(0.02)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            await dispatcher.stop()
    finally:
        await backend.close()
    return {
        "deliveries": total,
        "seconds": round(wall, 3),
        "deliveries_per_second": round(total / wall, 1),
        "cpu_ms_per_delivery": round(cpu * 1000 / total, 4),
    }


def received_counts(port: int) -> dict[str, int]:
    async def get() -> dict[str, int]:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/counts") as r:
            out: dict[str, int] = await r.json()
            return out

    return asyncio.run(get())


def run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # optional, as for ``gateway deliver``
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000, help="messages per run (2 deliveries each)")
    parser.add_argument("--children", type=int, default=1000, help="distinct children (order keys)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        run_receiver()
        return 0
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp, receiver_process() as (port, _):
        generate_keyring(Path(tmp) / "keyring.json")
        keyring = Keyring.load(Path(tmp) / "keyring.json")
        for i in range(args.runs):
            db = Path(tmp) / f"run{i}" / "gw.db"
            result = run_async(one_run(db, keyring, i, port, args.messages, args.children))
            runs.append(result)
            log(f"run {i + 1}: {result}")
        counts = received_counts(port)
    # The receiver counts distinct webhook ids (each run has its own) per partner.
    lost = sum(max(0, args.messages * args.runs - counts.get(p, 0)) for p in PARTNERS)
    cpu = [r["cpu_ms_per_delivery"] for r in runs]
    rate = [r["deliveries_per_second"] for r in runs]
    print(f"{'run':>4} {'deliveries':>10} {'seconds':>8} {'deliveries/s':>13} {'CPU ms/delivery':>16}")
    for i, r in enumerate(runs, 1):
        print(
            f"{i:>4} {r['deliveries']:>10.0f} {r['seconds']:>8.2f} {r['deliveries_per_second']:>13.1f}"
            f" {r['cpu_ms_per_delivery']:>16.4f}"
        )
    print(
        json.dumps(
            {
                "messages": args.messages,
                "children": args.children,
                "deliveries_per_run": args.messages * len(PARTNERS),
                "uvloop": _has_uvloop(),
                "cpus": os.cpu_count(),
                "runs": runs,
                "cpu_ms_per_delivery_median": statistics.median(cpu),
                "cpu_ms_per_delivery_min": min(cpu),
                "deliveries_per_second_median": statistics.median(rate),
                "lost": lost,
            }
        )
    )
    return 1 if lost else 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401 - only whether it is installed
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
