"""Parse and render throughput of every format adapter, for a typical and a large message.

For each case in ``bench/adapter_cases/*.py`` (one module per format family): ``parse`` of
the typical body and of the large one (``parse_batch`` where the adapter is a batch format:
a CTF of 30 pupils, a CIN census of 30 children), then ``render`` of each parsed message.
Each operation is repeated for about ``--seconds`` seconds after a warm-up, one
``perf_counter_ns`` pair per call, the garbage collector paused during the timed loop.

Run:  .venv/bin/python bench/adapters.py [--seconds 1.0] [--only NAME]

The last line printed is one JSON object with the figures (keys in bench/README.md).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import pkgutil
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from adapters.base import BatchAdapter, NotRenderable  # noqa: E402 - after the sys.path set-up above
from bench import adapter_cases  # noqa: E402
from bench.adapter_cases import BenchCase  # noqa: E402
from canonical import DataDictionary, Message, default_dictionary  # noqa: E402


@dataclass(frozen=True)
class Figure:
    calls: int
    per_second: float
    p50_us: float
    p99_us: float

    def as_dict(self) -> dict[str, float]:
        return {
            "calls": self.calls,
            "per_second": round(self.per_second, 1),
            "p50_us": round(self.p50_us, 1),
            "p99_us": round(self.p99_us, 1),
        }


def timed(call: Callable[[], object], seconds: float) -> Figure:
    for _ in range(20):  # warm-up
        call()
    samples: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    gc.disable()
    try:
        while clock() < deadline or len(samples) < 50:
            t0 = clock()
            call()
            samples.append(clock() - t0)
    finally:
        gc.enable()
    samples.sort()
    n = len(samples)
    return Figure(n, n / (sum(samples) / 1e9), samples[n // 2] / 1000, samples[int(0.99 * n)] / 1000)


def parse_all(case: BenchCase, body: bytes, dictionary: DataDictionary) -> tuple[Message, ...]:
    if isinstance(case.adapter, BatchAdapter):
        return case.adapter.parse_batch(body, dictionary)
    return (case.adapter.parse(body, dictionary),)


def render_all(case: BenchCase, messages: tuple[Message, ...]) -> list[bytes]:
    return [case.adapter.render(m) for m in messages]


def renders(case: BenchCase, messages: tuple[Message, ...], seconds: float) -> Figure | None:
    """Render timing, or ``None`` for a format that renders nothing (the CIN census is a
    statutory return, not a delivery format)."""
    try:
        render_all(case, messages)
    except NotRenderable:
        return None
    return timed(partial(render_all, case, messages), seconds)


def measure(case: BenchCase, seconds: float, dictionary: DataDictionary) -> dict[str, object]:
    out: dict[str, object] = {"format": case.adapter.name, "large_note": case.large_note}
    for size, body in (("typical", case.typical), ("large", case.large)):
        messages = parse_all(case, body, dictionary)
        parse = timed(partial(parse_all, case, body, dictionary), seconds)
        render = renders(case, messages, seconds)
        out[size] = {
            "bytes": len(body),
            "messages": len(messages),
            "parse": parse.as_dict(),
            "parse_messages_per_second": round(parse.per_second * len(messages), 1),
            "render": render.as_dict() if render else None,
            "render_messages_per_second": round(render.per_second * len(messages), 1) if render else None,
        }
        rendered = (
            f"render {render.per_second * len(messages):>9.0f} msg/s p99 {render.p99_us:>9.1f} µs"
            if render
            else "render: not a delivery format"
        )
        log(
            f"  {case.name:<38} {size:<8} {len(body):>8} B  {len(messages):>3} msg  "
            f"parse {parse.per_second * len(messages):>9.0f} msg/s p99 {parse.p99_us:>9.1f} µs   {rendered}"
        )
    return out


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cases() -> list[BenchCase]:
    found: list[BenchCase] = []
    for info in sorted(pkgutil.iter_modules(adapter_cases.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"bench.adapter_cases.{info.name}")
        found.extend(getattr(module, "CASES", []))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per operation")
    parser.add_argument("--only", help="only cases whose name contains this text")
    args = parser.parse_args()
    dictionary = default_dictionary()
    selected = [c for c in cases() if not args.only or args.only in c.name]
    log(f"{len(selected)} cases, about {args.seconds * 4 * len(selected):.0f} s")
    results = {c.name: measure(c, args.seconds, dictionary) for c in selected}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"cases": results, "peak_rss_mb": round(peak_mb, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
