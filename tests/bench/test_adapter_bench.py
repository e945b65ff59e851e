"""The adapter benchmark covers every format and prints its figures as one JSON line.
(It measures nothing here: speed is measured by running the benchmark, not by tests.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from adapters import default_registry
from bench.adapters import cases

ROOT = Path(__file__).resolve().parents[2]


def test_every_registered_format_has_a_case_with_a_large_body() -> None:
    found = cases()
    assert {c.adapter.name for c in found} == set(default_registry().by_name)
    for case in found:
        assert len(case.large) > len(case.typical), case.name
        assert case.large_note, case.name


def test_the_last_line_is_one_json_object_with_the_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "adapters.py"), "--seconds", "0.01", "--only", "canonical"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    case = figures["cases"]["canonical-json"]
    for size in ("typical", "large"):
        assert case[size]["parse"]["calls"] >= 50
        assert case[size]["parse_messages_per_second"] > 0
        assert case[size]["render"]["p99_us"] >= case[size]["render"]["p50_us"]
    assert figures["peak_rss_mb"] > 0
