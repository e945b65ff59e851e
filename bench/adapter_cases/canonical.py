"""The canonical JSON format: the baseline every other format is compared with."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from adapters.canonical_json import CanonicalJsonAdapter
from bench.adapter_cases import BenchCase

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "example" / "messages"


def _large(doc: dict[str, Any], items: int) -> dict[str, Any]:
    big = copy.deepcopy(doc)
    template = big["items"][0]
    big["items"] = [{**copy.deepcopy(template), "type": f"{template['type']}-{i}"} for i in range(items)]
    return big


_doc = json.loads((EXAMPLE / "domestic-abuse-incident.json").read_text(encoding="utf-8"))
CASES = [
    BenchCase(
        "canonical-json",
        CanonicalJsonAdapter(),
        json.dumps(_doc).encode(),
        json.dumps(_large(_doc, 50)).encode(),
        "the example incident with 50 items",
    )
]
