"""Inputs for ``bench/adapters.py``: one module per format family, each exposing ``CASES``.

A case is one adapter and two native bodies (a typical message and a large one); the
benchmark times ``parse`` on each body and ``render`` on each parsed message.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import Adapter


@dataclass(frozen=True)
class BenchCase:
    name: str
    """Shown in the results table, e.g. ``fhir-r4 (full validation)``."""
    adapter: Adapter
    typical: bytes
    large: bytes
    large_note: str
    """What "large" means for this format, e.g. ``Bundle of 50 entries``."""
