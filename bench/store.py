"""SQLite write-path benchmark: CPU per accepted message in the embedded store.

What runs, in this one process (no HTTP, no delivery):

1. The real ``Pipeline`` on a copy of the example deployment ingests ``--messages`` example
   police domestic-abuse notifications about different synthetic children (test-range NHS
   numbers), with a store that only records each ``accept`` call: one inbound row, two
   decisions (with their explanations), two sealed deliveries and three audit events per
   message, exactly what ``gateway serve`` hands the store under ``bench/e2e.py``.
2. For each of ``--runs`` runs, two timed phases, each on a fresh ``SqliteBackend`` (WAL,
   ``--synchronous``, FULL by default) in a new temporary folder, with ``--concurrency``
   tasks working back to back:
   - ``store``: the recorded ``accept`` calls replayed; only the store works, so this is the
     write path's own cost;
   - ``pipeline``: ``--pipeline-messages`` messages ingested by the pipeline into the store,
     so the writer thread competes for the GIL with the event loop's parsing, decisions,
     rendering and sealing, as in ``gateway serve``.

Figures per phase and run: accepts per second; CPU milliseconds per accept for the whole
process (``time.process_time``) and for the writer thread alone
(``/proc/self/task/<tid>/schedstat``, nanoseconds on a CPU); milliseconds per accept the
writers' lock was held (what a ``gateway deliver`` process waits); operations per group
commit. Medians of the runs are printed last.

Run:  .venv/bin/python bench/store.py [--messages 10000] [--pipeline-messages 4000] [--runs 3]
                                      [--concurrency 64] [--synchronous FULL|NORMAL|EXTRA]

The last line printed is one JSON object with the figures (keys in bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters import default_registry  # noqa: E402
from gateway.app import open_keyring, partner_adapters  # noqa: E402
from gateway.audit import AuditEvent  # noqa: E402
from gateway.config import load_deployment  # noqa: E402
from gateway.logging import configure_logging  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.pipeline import Pipeline, PolicyHolder  # noqa: E402
from gateway.store.base import AcceptOutcome, Backend, DecisionRecord, DeliveryRecord, InboundRecord  # noqa: E402
from gateway.store.sqlite import SqliteBackend  # noqa: E402
from tests.support import POLICE, body, message_for_child, valid_nhs_numbers, write_deployment  # noqa: E402

CONTENT_TYPE = "application/vnd.gateway.message+json"


@dataclass(frozen=True, slots=True)
class AcceptCall:
    inbound: InboundRecord
    decisions: tuple[DecisionRecord, ...]
    deliveries: tuple[DeliveryRecord, ...]
    audit: tuple[AuditEvent, ...]


class RecordingStore:
    """Stands in for the backend while the pipeline runs: records each ``accept``."""

    def __init__(self) -> None:
        self.calls: list[AcceptCall] = []

    async def accept(
        self,
        inbound: InboundRecord,
        decisions: Any,
        deliveries: Any,
        audit: Any,
    ) -> AcceptOutcome:
        self.calls.append(AcceptCall(inbound, tuple(decisions), tuple(deliveries), tuple(audit)))
        return AcceptOutcome(inbound.message_id, duplicate=False)


def build_pipeline(folder: Path, store: Backend) -> Pipeline:
    """The real pipeline on a copy of the example deployment, storing into ``store``."""
    config = write_deployment(folder, receiver_base="http://127.0.0.1:9")
    deployment = load_deployment(config)
    adapters = default_registry()
    return Pipeline(
        store=store,
        keyring=open_keyring(deployment),
        adapters=adapters,
        partner_adapters=partner_adapters(deployment, adapters),
        known_la_codes=deployment.settings.known_la_codes,
        policy=PolicyHolder(deployment.policy),
        partners=deployment.partners,
        metrics=Metrics(),
        notify=lambda _recipient: None,
    )


def message_bodies(count: int) -> list[bytes]:
    return [body(message_for_child(nhs, i)) for i, nhs in enumerate(valid_nhs_numbers(count))]


async def record_accepts(folder: Path, bodies: list[bytes]) -> list[AcceptCall]:
    recorder = RecordingStore()
    pipeline = build_pipeline(folder / "deployment", cast(Backend, recorder))
    for doc in bodies:
        await pipeline.ingest(POLICE, CONTENT_TYPE, doc, None)
    return recorder.calls


def thread_cpu_ns(name: str) -> int:
    """Nanoseconds the named thread of this process has run on a CPU."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            stat = Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text()
            return int(stat.split()[0])
    raise RuntimeError(f"no thread named {name}")


async def timed(backend: SqliteBackend, n: int, clients: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Run ``clients`` (which make ``n`` accepts) and the figures of that phase alone."""
    batches0, ops0 = backend.commit_stats
    held0 = backend.lock_held_seconds
    writer0 = thread_cpu_ns("sqlite-writer")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await clients()
    cpu1, wall1 = time.process_time(), time.perf_counter()
    writer1 = thread_cpu_ns("sqlite-writer")
    batches1, ops1 = backend.commit_stats
    held1 = backend.lock_held_seconds
    return {
        "accepts_per_second": round(n / (wall1 - wall0), 1),
        "process_cpu_ms_per_accept": round((cpu1 - cpu0) * 1000 / n, 4),
        "writer_cpu_ms_per_accept": round((writer1 - writer0) / 1e6 / n, 4),
        "lock_held_ms_per_accept": round((held1 - held0) * 1000 / n, 4),
        "operations_per_commit": round((ops1 - ops0) / max(1, batches1 - batches0), 1),
    }


async def store_run(
    calls: list[AcceptCall], folder: Path, concurrency: int, synchronous: str
) -> dict[str, Any]:
    """The recorded accepts replayed straight into a fresh store."""
    backend = SqliteBackend(folder / "gateway.db", synchronous=synchronous)
    await backend.open()
    try:
        todo = iter(calls)

        async def client() -> None:
            for call in todo:
                outcome = await backend.accept(call.inbound, call.decisions, call.deliveries, call.audit)
                assert not outcome.duplicate

        async def clients() -> None:
            await asyncio.gather(*(client() for _ in range(concurrency)))

        return await timed(backend, len(calls), clients)
    finally:
        await backend.close()


async def pipeline_run(
    bodies: list[bytes], folder: Path, concurrency: int, synchronous: str
) -> dict[str, Any]:
    """The pipeline ingesting into a fresh store: the writer thread competes for the GIL with
    the event loop's parsing and decisions, as in ``gateway serve`` (HTTP left out)."""
    backend = SqliteBackend(folder / "gateway.db", synchronous=synchronous)
    pipeline = build_pipeline(folder / "deployment", backend)
    await backend.open()
    try:
        todo = iter(bodies)

        async def client() -> None:
            for doc in todo:
                accepted = await pipeline.ingest(POLICE, CONTENT_TYPE, doc, None)
                assert not accepted.duplicate

        async def clients() -> None:
            await asyncio.gather(*(client() for _ in range(concurrency)))

        return await timed(backend, len(bodies), clients)
    finally:
        await backend.close()


def table(title: str, runs: list[dict[str, Any]]) -> dict[str, float]:
    """Print one phase's runs and their medians; return the medians."""
    keys = list(runs[0])
    print(title)
    print(f"{'run':>4} " + " ".join(f"{k:>27}" for k in keys))
    for i, run in enumerate(runs, 1):
        print(f"{i:>4} " + " ".join(f"{run[k]:>27}" for k in keys))
    medians = {k: round(statistics.median(r[k] for r in runs), 4) for k in keys}
    print("   ~ " + " ".join(f"{medians[k]:>27}" for k in keys))
    return medians


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000, help="accepts per store run")
    parser.add_argument("--pipeline-messages", type=int, default=4000, help="ingests per pipeline run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL", "EXTRA"], default="FULL")
    args = parser.parse_args()
    configure_logging("warning", sys.stderr)  # the pipeline logs every accepted message at info
    bodies = message_bodies(max(args.messages, args.pipeline_messages))
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        root = Path(tmp)
        print(f"recording {args.messages} accepts from the pipeline...", file=sys.stderr)
        calls = await record_accepts(root, bodies[: args.messages])
        store_runs, pipeline_runs = [], []
        for i in range(args.runs):
            # Interleaved, so that a noisy neighbour spoils both phases alike.
            store_runs.append(await store_run(calls, root / f"store{i}", args.concurrency, args.synchronous))
            pipeline_runs.append(
                await pipeline_run(
                    bodies[: args.pipeline_messages],
                    root / f"pipeline{i}",
                    args.concurrency,
                    args.synchronous,
                )
            )
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    store = table("store: recorded accepts replayed into SQLite", store_runs)
    pipeline = table("pipeline: ingest (parse, decide, render, seal) + accept", pipeline_runs)
    summary = {
        "messages": args.messages,
        "pipeline_messages": args.pipeline_messages,
        "concurrency": args.concurrency,
        "synchronous": args.synchronous,
        "rows_per_accept": {"messages": 1, "decisions": 2, "deliveries": 2, "audit": 3},
        "store": store,
        "pipeline": pipeline,
        "store_runs": store_runs,
        "pipeline_runs": pipeline_runs,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
