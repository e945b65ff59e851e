"""The checks every inbound Bundle passes before it is mapped.

1. ``check_frame`` (both paths): a Bundle of type ``message`` whose first entry is a
   MessageHeader, and every entry a resource of a type FHIR R4 knows. These come first so
   that the commonest mistakes get their own rule ids, and because ``fhir.resources`` raises
   a bare ``KeyError`` (not a validation error) for an unknown ``resourceType``.
2. ``validate_with_library`` (full path): ``fhir.resources.R4B`` (wire-compatible with R4
   for these resources) validates the whole Bundle, including resources the adapter does
   not map. Each pydantic error becomes a ``Violation`` whose field is built from the
   error's ``loc`` (``('entry', 2, 'resource', 'birthDate')`` ->
   ``Bundle.entry[2].resource.birthDate``; pydantic reports nested resources with their
   full path). The error's ``input`` and ``msg`` are dropped: both can carry the value.

The library checks structure and datatypes, not code value sets (``Patient.gender:
"fish"`` passes it); the mapping checks the codes it maps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource

from adapters.fhir.reader import NAME, Node, reject
from canonical import InvalidInput, Violation

MAX_VIOLATIONS = 20
"""Enough to fix a message; a thousand-entry garbage Bundle must not make a huge error."""

_ABSTRACT = frozenset({"Resource", "DomainResource"})


@cache
def is_resource_type(name: str) -> bool:
    """Whether ``name`` is a concrete FHIR R4 (R4B) resource type."""
    if name in _ABSTRACT or not name.isascii() or not name.isalpha():
        return False
    try:
        return issubclass(get_fhir_model_class(name), Resource)
    except ValueError:
        return False


def check_frame(document: Any) -> tuple[Node, list[Node]]:
    """The Bundle and its entries' resources, if the document is a FHIR message Bundle."""
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise reject("Bundle.resourceType", "fhir-not-bundle", "expected a FHIR Bundle (resourceType Bundle)")
    bundle = Node(document, "Bundle")
    if bundle.value.get("type") != "message":
        raise reject("Bundle.type", "fhir-bundle-type", "expected a Bundle of type 'message'")
    resources: list[Node] = []
    for entry in bundle.objs("entry"):
        resource = entry.obj("resource")
        if resource is None:
            raise reject(entry.at("resource"), "fhir-required", "every entry of a message carries a resource")
        kind = resource.value.get("resourceType")
        if not isinstance(kind, str) or not is_resource_type(kind):
            raise reject(resource.at("resourceType"), "fhir-resource-type", "not a FHIR R4 resource type")
        resources.append(resource)
    if not resources or resources[0].value["resourceType"] != "MessageHeader":
        where = resources[0].at("resourceType") if resources else "Bundle.entry"
        raise reject(
            where, "fhir-message-header-first", "the first entry of a message must be a MessageHeader"
        )
    return bundle, resources


def validate_with_library(document: dict[str, Any]) -> None:
    """Full validation by ``fhir.resources``; ``InvalidInput`` naming each location."""
    try:
        Bundle.model_validate(document)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise InvalidInput(list(_violations(errors)), adapter=NAME) from None
    except KeyError:
        # fhir.resources raises a bare KeyError, not a validation error, for a nested
        # resource (``contained``, a Bundle inside a Bundle) of an unknown resourceType.
        # No exception text is kept: it can quote the value.
        raise reject(
            "Bundle", "fhir-resource-type", "a nested resource has an unknown resourceType"
        ) from None
    except (TypeError, ValueError, AttributeError):
        # Some fhir_core validators assume a string and fail outside pydantic on another
        # JSON type (found by fuzzing: a boolean ``MessageHeader.source.endpoint`` raises
        # AttributeError; an integer resourceType in a nested resource raises TypeError),
        # so the location is unknown here.
        raise reject(
            "Bundle", "fhir-type", "an element has a value of the wrong JSON type (location not reported)"
        ) from None


def _violations(errors: Iterable[Any]) -> Iterable[Violation]:
    for n, error in enumerate(errors):
        if n == MAX_VIOLATIONS:
            return
        kind = str(error["type"])
        rule, message = _RULES.get(kind) or _rule_by_suffix(kind)
        yield Violation(fhir_path(error["loc"]), rule, message)


def fhir_path(loc: Sequence[int | str]) -> str:
    """``('entry', 2, 'resource', 'birthDate')`` -> ``Bundle.entry[2].resource.birthDate``."""
    out = "Bundle"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_RULES: dict[str, tuple[str, str]] = {
    "missing": ("fhir-required", "a required element is missing"),
    "model_field_validation.missing": ("fhir-required", "a required element is missing"),
    "extra_forbidden": ("fhir-unknown-element", "not an element of this FHIR R4 type"),
    "string_pattern_mismatch": ("fhir-invalid", "does not match the FHIR datatype's pattern"),
    "json_invalid": ("fhir-type", "expected a JSON object"),
}


def _rule_by_suffix(kind: str) -> tuple[str, str]:
    if kind.endswith(("_type", "_parsing")):
        return "fhir-type", "wrong JSON type or format for this FHIR element"
    return "fhir-invalid", "does not satisfy the FHIR datatype or element rules"
