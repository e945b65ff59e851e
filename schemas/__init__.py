"""Language-neutral contracts: JSON Schemas, the data dictionary, the event catalogue and
the OpenAPI document.

This package holds data files only. ``load`` reads one of them from the installed package;
reading our own static contracts is not I/O in the sense of the purity contract (no
network, no database, no clock, nothing a partner sent).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load", "names"]


@cache
def load(name: str) -> Any:
    """Return the parsed JSON document ``name`` (e.g. ``"data-dictionary.json"``).

    The result is cached and shared: callers MUST NOT mutate it.
    """
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def names(suffix: str) -> list[str]:
    """The names of the published files ending in ``suffix`` (e.g. ``".schema.json"``)."""
    return sorted(p.name for p in resources.files(__package__).iterdir() if p.name.endswith(suffix))
