"""The example deployment's policy documents, to mutate in tests."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tests.support import EXAMPLE

_FILES = ("partners.yaml", "agreements.yaml", "routes.yaml")
_CACHE: dict[str, Any] = {}


def example_documents() -> dict[str, Any]:
    """A fresh deep copy of the example policy documents (file name -> content)."""
    if not _CACHE:
        _CACHE.update({f: yaml.safe_load((EXAMPLE / f).read_text()) for f in _FILES})
    return copy.deepcopy(_CACHE)


def agreement(docs: dict[str, Any], agreement_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(a for a in docs["agreements.yaml"]["agreements"] if a["id"] == agreement_id)
    return found
