"""Validate a canonical document: the JSON Schema, then rules a schema cannot say.

Every problem becomes a ``Violation(field, rule, message)``. Messages are written from the
schema side (what was expected), never from the value (what was sent): a value may be a
child's address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

import schemas
from canonical.dictionary import DataDictionary
from canonical.errors import Violation
from canonical.identifiers import identifier_violation

_format_checker = FormatChecker(formats=())


@_format_checker.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if isinstance(value, str):
        date.fromisoformat(value)
    return True


@_format_checker.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("date-time needs a time zone offset")
    return True


@cache
def schema_validator(name: str) -> Draft202012Validator:
    """A validator for one schema in ``schemas/``, built once."""
    schema = schemas.load(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(inline_local_refs(schema), format_checker=_format_checker)


def _conforms(checker: Callable[[object], bool]) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        try:
            return checker(value)
        except ValueError:
            return False

    return check


@cache
def fast_check(name: str) -> Callable[[Any], bool]:
    """A compiled yes/no check of one schema, for the accept path.

    ``jsonschema`` stays the authority: it validates the policy and explains every rejection.
    It interprets the schema afresh on each call (about 0.6 ms for a canonical message on
    the reference machine), so the accept path first asks a ``jsonschema_rs`` validator
    (Rust, the same draft 2020-12) built once from the same schema file with the same
    format functions (about 7 µs; ``fastjsonschema``, used before, took about 60 µs). Only a
    document it rejects goes to ``jsonschema`` for the precise violations, and if
    ``jsonschema`` finds none the document is accepted: so the fast check MUST NOT accept
    what ``jsonschema`` refuses, and a differential property test keeps the two in
    agreement. A value it cannot take in (an integer beyond 64 bits) counts as a "no".
    """
    validator = jsonschema_rs.Draft202012Validator(
        schemas.load(name),
        validate_formats=True,
        formats={"date": _conforms(_is_date), "date-time": _conforms(_is_date_time)},
    )

    def conforms(document: Any) -> bool:
        try:
            return bool(validator.is_valid(document))
        except (ValueError, TypeError, OverflowError):
            return False

    return conforms


def compile_schemas() -> int:
    """Build every published schema's validator and its fast check — once, at start-up: a
    lazy first build would read files on the event loop. Returns how many schemas were
    compiled."""
    names = schemas.names(".schema.json")
    for name in names:
        schema_validator(name)
        fast_check(name)
    return len(names)


def inline_local_refs(schema: Any, root: Any = None) -> Any:
    """Replace ``{"$ref": "#/$defs/x"}`` with the definition itself.

    Our schemas are not recursive, and resolving references costs about a third of each
    validation (measured with cProfile on a canonical message); inlining them once at start
    keeps the hot path cheaper. Keywords next to a ``$ref`` are kept.
    """
    root = schema if root is None else root
    if isinstance(schema, list):
        return [inline_local_refs(s, root) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: inline_local_refs(v, root) for k, v in schema.items() if k != "$ref"}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        return {**inline_local_refs(target, root), **out}
    if ref is not None:
        out["$ref"] = ref
    return out


def pointer(path: Any) -> str:
    """A JSON pointer for a jsonschema path (deque of keys and indexes)."""
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else "/"


def _describe(error: ValidationError) -> str:
    """Say what was expected, from the schema side only."""
    rule = str(error.validator)
    expected: Any = error.validator_value
    schema: Any = error.schema
    if rule == "required":
        present = error.instance if isinstance(error.instance, Mapping) else {}
        missing = [k for k in expected if k not in present]
        return f"required property missing: {', '.join(missing)}"
    if rule == "additionalProperties":
        present = error.instance if isinstance(error.instance, Mapping) else {}
        known = set(schema.get("properties", {}))
        extra = sorted(k for k in present if k not in known)
        # Property *names* come from the sender but are structure, not personal data; cap them.
        return f"unknown properties: {', '.join(x[:40] for x in extra[:5])}"
    if rule in {
        "type",
        "enum",
        "const",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "maxProperties",
        "minimum",
        "maximum",
        "uniqueItems",
    }:
        return f"must satisfy {rule}={expected!r}" if rule != "uniqueItems" else "items must be unique"
    if rule == "oneOf":
        return "must be a string, number, boolean, null, a list of those, or a flat object"
    return f"breaks the schema rule '{rule}'"


def schema_violations(validator: Draft202012Validator, document: Any) -> list[Violation]:
    """All schema violations, ordered by position, each without the offending value."""
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    out: list[Violation] = []
    for err in errors:
        # For oneOf/anyOf report the branch-level failure, not each sub-branch's noise.
        out.append(Violation(pointer(err.absolute_path), str(err.validator), _describe(err)))
    return out


def canonical_violations(document: Any, dictionary: DataDictionary) -> list[Violation]:
    """Schema violations first; if the shape is right, the semantic rules."""
    name = "canonical-message.schema.json"
    if not fast_check(name)(document):
        found = schema_violations(schema_validator(name), document)
        if found:
            return found
    return list(_semantic_violations(document, dictionary))


def _semantic_violations(doc: Mapping[str, Any], dictionary: DataDictionary) -> Iterator[Violation]:
    env = doc["envelope"]
    if env["event_type"] not in dictionary.event_types:
        yield Violation(
            "/envelope/event_type",
            "known-event-type",
            "not in the event catalogue (schemas/event-catalogue.json)",
        )
    if env["purpose"] not in dictionary.purposes:
        yield Violation("/envelope/purpose", "known-purpose", "not a purpose in the data dictionary")
    for key in ("message_id", "received_at"):
        if key in env:
            yield Violation(f"/envelope/{key}", "set-by-gateway", "the gateway assigns this field; omit it")

    refs: set[str] = set()
    for i, person in enumerate(doc["people"]):
        base = f"/people/{i}"
        if person["ref"] in refs:
            yield Violation(f"{base}/ref", "unique-ref", "another person already uses this ref")
        refs.add(person["ref"])
        if person["role"] not in dictionary.person_roles:
            yield Violation(f"{base}/role", "known-role", "not a person role in the data dictionary")
        for m, marker in enumerate(person.get("markers", ())):
            if marker not in dictionary.markers:
                yield Violation(f"{base}/markers/{m}", "known-marker", "not a marker in the data dictionary")
        for j, ident in enumerate(person.get("identifiers", ())):
            yield from _identifier_violations(f"{base}/identifiers/{j}", ident, dictionary)

    for i, item in enumerate(doc["items"]):
        base = f"/items/{i}"
        if item["category"] not in dictionary.categories:
            yield Violation(f"{base}/category", "known-category", "not a category in the data dictionary")
        for j, ref in enumerate(item.get("about", ())):
            if ref not in refs:
                yield Violation(f"{base}/about/{j}", "known-person-ref", "no person in 'people' has this ref")
        for j, label in enumerate(item.get("labels", ())):
            if label not in dictionary.sensitivity_labels:
                yield Violation(
                    f"{base}/labels/{j}", "known-label", "not a sensitivity label in the data dictionary"
                )


def _identifier_violations(
    path: str, ident: Mapping[str, str], dictionary: DataDictionary
) -> Iterator[Violation]:
    system, value = ident["system"], ident["value"]
    if system not in dictionary.identifier_systems:
        yield Violation(
            f"{path}/system", "known-identifier-system", "not an identifier system in the data dictionary"
        )
        return
    found = identifier_violation(system, value, f"{path}/value")
    if found is not None:
        yield found
