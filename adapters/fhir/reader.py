"""Shape-checked reading of a decoded FHIR JSON document, with the FHIRPath-like location
of every value (``Bundle.entry[2].resource.birthDate``).

This is the whole of the *light* path's checking, and it also guards the mapping after full
validation: every element the adapter maps is read through a ``Node``, which refuses a value
of the wrong JSON type, or a string longer than the canonical model can hold, with an
``InvalidInput`` naming the location and the rule. It MUST NOT put the value in an error.
"""

from __future__ import annotations

from typing import Any

from canonical import InvalidInput, Violation

NAME = "fhir-r4"
MAX_TEXT = 20_000
"""The canonical model's longest string (``$defs/text``); a longer FHIR string cannot be
carried, so it is refused here with its native location instead of later with a canonical
pointer."""


def reject(path: str, rule: str, message: str) -> InvalidInput:
    return InvalidInput([Violation(path, rule, message)], adapter=NAME)


class Node:
    """A JSON object and where it is. Accessors return ``None`` / ``[]`` for an absent
    element and raise ``InvalidInput`` (rule ``fhir-type``) for a present one of the wrong
    JSON type."""

    __slots__ = ("path", "value")

    def __init__(self, value: dict[str, Any], path: str) -> None:
        self.value = value
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def obj(self, key: str) -> Node | None:
        value = self.value.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise reject(self.at(key), "fhir-type", "expected a JSON object")
        return Node(value, self.at(key))

    def objs(self, key: str) -> list[Node]:
        value = self.value.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise reject(self.at(key), "fhir-type", "expected a JSON array")
        out: list[Node] = []
        for i, element in enumerate(value):
            if not isinstance(element, dict):
                raise reject(f"{self.at(key)}[{i}]", "fhir-type", "expected a JSON object")
            out.append(Node(element, f"{self.at(key)}[{i}]"))
        return out

    def text(self, key: str, limit: int = MAX_TEXT) -> str | None:
        value = self.value.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise reject(self.at(key), "fhir-type", "expected a JSON string")
        if len(value) > limit:
            raise reject(self.at(key), "max-length", f"longer than {limit} characters")
        return value

    def texts(self, key: str, limit: int = MAX_TEXT) -> list[str]:
        value = self.value.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise reject(self.at(key), "fhir-type", "expected a JSON array of strings")
        for i, element in enumerate(value):
            if not isinstance(element, str):
                raise reject(f"{self.at(key)}[{i}]", "fhir-type", "expected a JSON string")
            if len(element) > limit:
                raise reject(f"{self.at(key)}[{i}]", "max-length", f"longer than {limit} characters")
        return list(value)

    def boolean(self, key: str) -> bool | None:
        value = self.value.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise reject(self.at(key), "fhir-type", "expected true or false")
        return value
