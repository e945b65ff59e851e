"""End-to-end benchmark: HTTP ingest -> decision for 2 recipients -> durable enqueue ->
signed webhook delivery to a loopback receiver, on each store backend in one run.

Processes besides this one's load generator, all on loopback:

* the gateway (``python -m gateway serve``) on a copy of the example deployment, on
  SQLite in WAL mode with ``synchronous=FULL`` (every group commit is fsync'd before any 202
  it covers) and on PostgreSQL (a server this script starts on a free port with ``fsync`` and
  ``synchronous_commit`` on, so a 202 is as durable as on SQLite), and on RabbitMQ +
  PostgreSQL (a broker node this script starts too; publisher confirms before each 202); with
  ``--instances 2`` also two gateway processes sharing the scale-out backends, the clients
  split between them;
* a receiver that records (partner, webhook-id, arrival time) and answers 200 (a new one
  for each run);
* for the baseline, a bare aiohttp endpoint that only returns 202, driven by the same load
  generator with the same body and concurrency, so the ratio compares like with like.

Each message is the example police domestic-abuse notification about one of many synthetic
children (test-range NHS numbers); the example policy releases it to the school and to
social care, so every message is two webhook deliveries.

Run:  .venv/bin/python bench/e2e.py [--backend all|both|sqlite|postgresql|rabbitmq-postgresql]
                                    [--instances 1|2]
                                    [--seconds 20] [--concurrency 64]

The last line printed is one JSON object with the figures (keys in bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import (  # noqa: E402
    INSTALL_HINT,
    RABBIT_INSTALL_HINT,
    PostgresServer,
    RabbitServer,
    start_postgres,
    start_rabbit,
)
from tests.support import (  # noqa: E402 - the repository root must be importable first
    CSC,
    POLICE,
    SCHOOL,
    auth,
    body,
    message_for_child,
    valid_nhs_numbers,
    write_deployment,
)

HERE = Path(__file__).resolve()
RECIPIENTS = (SCHOOL, CSC)
CHILDREN = 2000


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the two helper servers (run as child processes of this script) ---------------------


async def _serve_forever(app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    print(f"listening {port}", flush=True)
    await asyncio.Event().wait()


def bare_app() -> web.Application:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"message_id": "x", "status_url": "/v1/messages/x"}, status=202)

    app = web.Application()
    app.router.add_post("/v1/messages", accept)
    return app


def receiver_app() -> web.Application:
    arrivals: list[tuple[str, str, float]] = []

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append((request.match_info["partner"], request.headers["webhook-id"], time.time()))
        return web.Response(status=200)

    async def results(request: web.Request) -> web.Response:
        return web.json_response({"arrivals": arrivals})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": len(arrivals)})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/{partner}", receive)
    app.router.add_get("/_results", results)
    app.router.add_get("/_count", count)
    return app


def relay_app(receiver_base: str) -> web.Application:
    """The ceiling of this design: a "gateway" that does nothing but answer 202 and POST the
    body on to each recipient (no parsing, no decision, no store, no signature), on one
    event loop with aiohttp's server and client, as the gateway is."""
    outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def accept(request: web.Request) -> web.Response:
        data = await request.read()
        message_id = os.urandom(12).hex()
        outbox.put_nowait((message_id, data))
        return web.json_response({"message_id": message_id, "status_url": "/"}, status=202)

    async def forward(app: web.Application) -> Any:
        queues: dict[str, asyncio.Queue[tuple[str, bytes]]] = {r: asyncio.Queue() for r in RECIPIENTS}

        async def fan_out() -> None:
            while True:
                item = await outbox.get()
                for q in queues.values():
                    q.put_nowait(item)

        async def post(session: aiohttp.ClientSession, recipient: str) -> None:
            while True:
                message_id, data = await queues[recipient].get()
                headers = {"webhook-id": message_id, "content-type": "application/json"}
                async with session.post(f"{receiver_base}/{recipient}", data=data, headers=headers) as r:
                    await r.release()

        sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) for _ in RECIPIENTS]
        tasks = [asyncio.create_task(fan_out())] + [
            asyncio.create_task(post(session, r))
            for session, r in zip(sessions, RECIPIENTS, strict=True)
            for _ in range(32)
        ]
        yield
        for task in tasks:
            task.cancel()
        for session in sessions:
            await session.close()

    app = web.Application()
    app.router.add_post("/v1/messages", accept)
    app.cleanup_ctx.append(forward)
    return app


def run_role(role: str, relay_to: str | None) -> None:
    if role == "relay":
        assert relay_to is not None
        app = relay_app(relay_to)
    else:
        app = bare_app() if role == "bare" else receiver_app()
    _run(_serve_forever(app))


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# --- processes ---------------------------------------------------------------------------


@dataclass
class Child:
    proc: subprocess.Popen[str]
    port: int

    def peak_rss_mb(self) -> float:
        """VmHWM: the process's peak resident set size so far."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU time used so far by the process and its threads (``serve``) and
        by its live child processes (``deliver``: a separate delivery process)."""
        me = psutil.Process(self.proc.pid)
        used = {"serve": 0.0, "deliver": 0.0}
        for role, p in [("serve", me), *(("deliver", c) for c in me.children(recursive=True))]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = p.cpu_times()
                used[role] += times.user + times.system
        return used

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _discard(stream: IO[str]) -> None:
    for _ in stream:
        pass


def spawn(args: list[str], marker: str, timeout: float = 30) -> Child:
    # The caller's GATEWAY_DATABASE_URL would win over each run's own database: drop it.
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_DATABASE_URL"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{args[:4]} exited with {proc.wait()} before it was ready")
        if marker in line:
            # Keep reading what it prints (warnings): a full pipe would stall the process.
            threading.Thread(target=_discard, args=(proc.stdout,), daemon=True).start()
            return Child(proc, int(line.rsplit(":", 1)[-1].split()[-1].rstrip("/")))
    proc.kill()
    raise RuntimeError(f"{args[:4]} not ready within {timeout} s")


@contextlib.contextmanager
def running(child: Child) -> Iterator[Child]:
    try:
        yield child
    finally:
        child.stop()


# --- load generation ---------------------------------------------------------------------


@dataclass
class LoadResult:
    accepted: int = 0
    errors: int = 0
    sent_at: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0

    @property
    def rate(self) -> float:
        return self.accepted / max(1e-9, self.finished - self.started)


async def drive(urls: list[str], bodies: list[bytes], seconds: float, concurrency: int) -> LoadResult:
    """Closed-loop load: ``concurrency`` clients POST back to back for ``seconds``; client
    ``i`` posts to ``urls[i % len(urls)]`` (several gateway instances share the clients)."""
    result = LoadResult()
    headers = auth(POLICE)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        stop_at = time.monotonic() + seconds
        counter = iter(range(10**9))

        async def client(url: str) -> None:
            while time.monotonic() < stop_at:
                i = next(counter)
                sent = time.time()
                async with http.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                    answer = await r.json()
                if r.status == 202:
                    result.accepted += 1
                    result.sent_at[answer["message_id"]] = sent
                else:
                    result.errors += 1

        result.started = time.time()
        await asyncio.gather(*(client(urls[i % len(urls)]) for i in range(concurrency)))
        result.finished = time.time()
    return result


async def wait_for_deliveries(base: str, expected: int, timeout: float) -> list[tuple[str, str, float]]:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            async with http.get(f"{base}/_count") as r:
                count = (await r.json())["count"]
            if count >= expected:
                break
            if count != last:
                log(f"  delivered {count}/{expected}")
                last = count
            await asyncio.sleep(0.5)
        async with http.get(f"{base}/_results") as r:
            arrivals: list[tuple[str, str, float]] = [tuple(a) for a in (await r.json())["arrivals"]]
        return arrivals


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the benchmark -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One end-to-end run: a store backend and how many gateway processes share it."""

    backend: str
    instances: int

    @property
    def label(self) -> str:
        return self.backend if self.instances == 1 else f"{self.backend}-x{self.instances}"


SCALE_OUT = ("postgresql", "rabbitmq-postgresql")
"""Backends several gateway processes can share."""
BACKEND_SETS = {"all": ["sqlite", *SCALE_OUT], "both": ["sqlite", "rabbitmq-postgresql"]}


def plan(backend: str, instances: int) -> list[RunSpec]:
    """The runs for ``--backend`` and ``--instances``: with 2 instances, each scale-out
    backend's 1-instance run comes too (its scaling ratio is measured against it)."""
    backends = BACKEND_SETS.get(backend, [backend])
    runs = [RunSpec(b, 1) for b in backends]
    if instances > 1:
        runs += [RunSpec(b, instances) for b in backends if b in SCALE_OUT]
    return runs


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    numbers = valid_nhs_numbers(CHILDREN)
    bodies = [body(message_for_child(n, i)) for i, n in enumerate(numbers)]
    py = sys.executable
    me = str(HERE)
    runs = plan(args.backend, args.instances)

    log(f"bare aiohttp endpoint: {args.bare_seconds:.0f} s at concurrency {args.concurrency}")
    with running(spawn([py, me, "--role", "bare"], "listening")) as bare:
        url = f"http://127.0.0.1:{bare.port}/v1/messages"
        await drive([url], bodies, 1.0, args.concurrency)  # warm-up
        bare_result = await drive([url], bodies, args.bare_seconds, args.concurrency)
    relay_rate = await measure_relay(args, bodies)

    pg: PostgresServer | None = None
    rabbit: RabbitServer | None = None
    figures: dict[str, dict[str, Any]] = {}
    try:
        if any(r.backend in SCALE_OUT for r in runs):
            log("starting PostgreSQL (fsync on, synchronous_commit on) on a free port")
            pg = start_postgres(fsync=True)
            if pg is None:
                raise SystemExit(f"{INSTALL_HINT}; or run with --backend sqlite")
        if any(r.backend == "rabbitmq-postgresql" for r in runs):
            log("starting a RabbitMQ node on free ports")
            rabbit = start_rabbit()
            if rabbit is None:
                raise SystemExit(f"{RABBIT_INSTALL_HINT}; or run with --backend sqlite|postgresql")
        for spec in runs:
            figures[spec.label] = await measure_run(args, work, spec, bodies, pg, rabbit, bare_result.rate)
    finally:
        if rabbit is not None:
            rabbit.stop()
        if pg is not None:
            pg.stop()

    ratios = {
        r.backend: round(
            figures[r.label]["e2e_messages_per_second"]
            / max(1e-9, figures[RunSpec(r.backend, 1).label]["e2e_messages_per_second"]),
            3,
        )
        for r in runs
        if r.instances > 1
    }
    # The headline ratio is the scale-out backend's (RabbitMQ + PostgreSQL) when it ran.
    scaling = ratios.get("rabbitmq-postgresql", ratios.get("postgresql"))
    return {
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "synchronous": args.synchronous,
        "delivery_process": args.delivery_process,
        "recipients_per_message": len(RECIPIENTS),
        "bare_requests_per_second": round(bare_result.rate, 1),
        "relay_messages_per_second": round(relay_rate, 1),
        "relay_ratio_to_bare": round(relay_rate / max(1e-9, bare_result.rate), 3),
        "runs": figures,
        "scaling_ratio": scaling,
        "scaling_ratios": ratios,
        "lost": sum(f["lost"] for f in figures.values()),
    }


async def measure_relay(args: argparse.Namespace, bodies: list[bytes]) -> float:
    """Messages per second through the do-nothing relay (``relay_app``), delivered to both
    recipients of a fresh receiver: what the HTTP work alone allows on this machine."""
    py, me = sys.executable, str(HERE)
    log(f"relay (HTTP only, no gateway logic): {args.bare_seconds:.0f} s at concurrency {args.concurrency}")
    with running(spawn([py, me, "--role", "receiver"], "listening")) as receiver:
        rx_base = f"http://127.0.0.1:{receiver.port}"
        with running(spawn([py, me, "--role", "relay", "--relay-to", rx_base], "listening")) as relay:
            url = f"http://127.0.0.1:{relay.port}/v1/messages"
            load = await drive([url], bodies, args.bare_seconds, args.concurrency)
            arrivals = await wait_for_deliveries(rx_base, len(RECIPIENTS) * load.accepted, 120)
    last = max((at for _, _, at in arrivals), default=load.finished)
    return len(arrivals) / len(RECIPIENTS) / max(1e-9, last - load.started)


async def measure_run(
    args: argparse.Namespace,
    work: Path,
    spec: RunSpec,
    bodies: list[bytes],
    pg: PostgresServer | None,
    rabbit: RabbitServer | None,
    bare_rate: float,
) -> dict[str, Any]:
    """One run: a fresh receiver, fresh store (a new database on the shared server), the
    gateway process(es), warm-up, timed load, then wait for every delivery."""
    py = sys.executable
    me = str(HERE)
    settings: dict[str, Any] = {}
    if spec.backend in SCALE_OUT:
        assert pg is not None
        database = await pg.create_database()
        store: dict[str, Any] = {
            "backend": spec.backend,
            "url": pg.dsn(database),
            "pool_size": args.pool_size,
        }
        if spec.backend == "rabbitmq-postgresql":
            assert rabbit is not None
            store |= {"amqp_url": rabbit.url(), "amqp_prefix": f"bench-{spec.label}"}
        settings = {
            "store": store,
            "keyring": {"path": str(work / f"{spec.label}-keyring.json"), "create_if_missing": True},
        }
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(running(spawn([py, me, "--role", "receiver"], "listening")))
        rx_base = f"http://127.0.0.1:{receiver.port}"
        gateways: list[Child] = []
        log(
            f"{spec.label}: {spec.instances} gateway process(es), synchronous={args.synchronous}, "
            f"{args.seconds:.0f} s, concurrency {args.concurrency}"
        )
        for i in range(spec.instances):  # one after the other: the first creates the keyring
            config = write_deployment(
                work / f"{spec.label}-deploy{i}",
                receiver_base=rx_base,
                synchronous=args.synchronous,
                delivery={
                    "max_attempts": 8,
                    "base_delay_seconds": 0.5,
                    "max_delay_seconds": 5,
                    "concurrency": args.delivery_concurrency,
                    "batch_size": args.batch_size,
                    "poll_interval_seconds": 1.0,
                    "process": args.delivery_process,
                },
                settings_extra=settings,
            )
            cmd = [py, "-m", "gateway", "serve", "--config", str(config), "--log-level", "warning"]
            gateways.append(stack.enter_context(running(spawn(cmd, "gateway listening on"))))
        urls = [f"http://127.0.0.1:{gw.port}/v1/messages" for gw in gateways]
        warm = await drive(urls, bodies, 1.0, 4)
        await wait_for_deliveries(rx_base, 2 * warm.accepted, 60)
        cpu_before = [gw.cpu_seconds() for gw in gateways]
        load = await drive(urls, bodies, args.seconds, args.concurrency)
        log(f"  accepted {load.accepted} ({load.rate:.0f}/s), waiting for delivery")
        arrivals = await wait_for_deliveries(rx_base, 2 * (warm.accepted + load.accepted), 300)
        cpu_after = [gw.cpu_seconds() for gw in gateways]
        gateway_cpu = {
            role: sum(after[role] - before[role] for before, after in zip(cpu_before, cpu_after, strict=True))
            for role in ("serve", "deliver")
        }
        gateway_rss = [gw.peak_rss_mb() for gw in gateways]
        receiver_rss = receiver.peak_rss_mb()

    latencies: list[float] = []
    delivered_at: dict[str, float] = {}
    seen: set[tuple[str, str]] = set()
    for partner, message_id, at in arrivals:
        sent = load.sent_at.get(message_id)
        if sent is None or (partner, message_id) in seen:
            continue
        seen.add((partner, message_id))
        latencies.append(at - sent)
        delivered_at[message_id] = max(at, delivered_at.get(message_id, 0.0))
    complete = [m for m in load.sent_at if all((p, m) in seen for p in RECIPIENTS)]
    last = max(delivered_at.values(), default=load.finished)
    e2e_rate = len(complete) / max(1e-9, last - load.started)
    return {
        "backend": spec.backend,
        "instances": spec.instances,
        "messages_accepted": load.accepted,
        "messages_rejected": load.errors,
        "messages_delivered": len(complete),
        "deliveries": len(seen),
        "ingest_per_second": round(load.rate, 1),
        "e2e_messages_per_second": round(e2e_rate, 1),
        "latency_p50_ms": round(1000 * percentile(latencies, 0.50), 1),
        "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "gateway_peak_rss_mb": [round(r, 1) for r in gateway_rss],
        "gateway_cpu_ms_per_message": round(1000 * sum(gateway_cpu.values()) / max(1, load.accepted), 3),
        "gateway_cpu_ms_per_message_by_process": {
            role: round(1000 * used / max(1, load.accepted), 3) for role, used in gateway_cpu.items()
        },
        "receiver_peak_rss_mb": round(receiver_rss, 1),
        "ratio_to_bare": round(e2e_rate / max(1e-9, bare_rate), 3),
        "lost": load.accepted - len(complete),
    }


def report(figures: dict[str, Any]) -> None:
    header = (
        "run",
        "accepted/delivered",
        "ingest/s",
        "e2e msg/s",
        "p50/p99 ms",
        "CPU ms/msg",
        "RSS MB",
        "of bare",
    )
    rows = [header]
    for label, f in figures["runs"].items():
        rows.append(
            (
                label,
                f"{f['messages_accepted']}/{f['messages_delivered']}",
                f"{f['ingest_per_second']:.0f}",
                f"{f['e2e_messages_per_second']:.0f}",
                f"{f['latency_p50_ms']}/{f['latency_p99_ms']}",
                f"{f['gateway_cpu_ms_per_message']:.2f}",
                "+".join(f"{r:.0f}" for r in f["gateway_peak_rss_mb"]),
                f"{100 * f['ratio_to_bare']:.1f} %",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"bare aiohttp 202 endpoint: {figures['bare_requests_per_second']:.0f} req/s")
    print(
        f"relay (HTTP only, no gateway logic): {figures['relay_messages_per_second']:.0f} msg/s "
        f"= {100 * figures['relay_ratio_to_bare']:.1f} % of bare"
    )
    for backend, ratio in figures["scaling_ratios"].items():
        print(f"scaling ratio on {backend} (2 instances / 1): {ratio:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=["bare", "receiver", "relay"], help=argparse.SUPPRESS)
    parser.add_argument("--relay-to", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per run")
    parser.add_argument("--bare-seconds", type=float, default=5.0, help="load duration, bare endpoint")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent HTTP clients")
    parser.add_argument("--delivery-concurrency", type=int, default=32, help="webhook posts in flight")
    parser.add_argument("--batch-size", type=int, default=256, help="deliveries leased per batch")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"], help="SQLite only")
    parser.add_argument(
        "--backend",
        default="all",
        choices=["all", "both", "sqlite", "postgresql", "rabbitmq-postgresql"],
        help="store backend(s) to run, one after the other (both: SQLite and RabbitMQ + PostgreSQL; "
        "servers are started here)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        choices=[1, 2],
        help="2: also run two gateway processes on each scale-out backend (scaling ratio)",
    )
    parser.add_argument(
        "--delivery-process",
        default="separate",
        choices=["inline", "separate"],
        help="delivery.process: the webhook workers on the gateway's event loop, or in their own process",
    )
    parser.add_argument("--pool-size", type=int, default=10, help="PostgreSQL connections per instance")
    args = parser.parse_args()
    if args.role:
        run_role(args.role, args.relay_to)
        return 0
    if args.instances > 1 and args.backend == "sqlite":
        parser.error(
            "--instances 2 needs a scale-out backend (postgresql, rabbitmq-postgresql): "
            "SQLite serves one process"
        )
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        figures: dict[str, Any] = _run(measure(args, Path(tmp)))
    report(figures)
    print(json.dumps(figures, sort_keys=True))
    return 0 if figures["lost"] == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
