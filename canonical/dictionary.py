"""The data dictionary: categories, sensitivity labels, purposes, roles and identifier
systems, read from ``schemas/data-dictionary.json`` and the event catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import schemas


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    description: str
    sensitive: bool
    special_category: bool


@dataclass(frozen=True, slots=True)
class DataDictionary:
    categories: Mapping[str, Category]
    purposes: frozenset[str]
    person_roles: frozenset[str]
    identifier_systems: frozenset[str]
    markers: frozenset[str]
    sensitivity_labels: frozenset[str]
    event_types: Mapping[str, str]
    """event type -> the sector that sends it"""
    sensitive_categories: frozenset[str] = frozenset()
    """Categories shared only where an agreement names them (sexual health, HIV, ...)."""

    @classmethod
    def from_documents(cls, dictionary: Mapping[str, Any], catalogue: Mapping[str, Any]) -> DataDictionary:
        cats = {
            cid: Category(cid, c["description"], bool(c["sensitive"]), bool(c["special_category"]))
            for cid, c in dictionary["categories"].items()
        }
        return cls(
            categories=cats,
            purposes=frozenset(dictionary["purposes"]),
            person_roles=frozenset(dictionary["person_roles"]),
            identifier_systems=frozenset(dictionary["identifier_systems"]),
            markers=frozenset(dictionary["markers"]),
            sensitivity_labels=frozenset(dictionary["sensitivity_labels"]),
            event_types={e: v["sector"] for e, v in catalogue["events"].items()},
            sensitive_categories=frozenset(c.id for c in cats.values() if c.sensitive),
        )


@cache
def default_dictionary() -> DataDictionary:
    """The dictionary shipped in ``schemas/``."""
    return DataDictionary.from_documents(
        schemas.load("data-dictionary.json"), schemas.load("event-catalogue.json")
    )
