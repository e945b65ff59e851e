"""Shared input handling for every adapter: bounded JSON decoding, schema checks against
our own schemas, and the last step that turns a built canonical document into a
``Message`` only if it is valid.

Errors name where and which rule, never the value (``canonical.errors``).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from typing import Any

import orjson

from canonical import DataDictionary, InvalidInput, Message, Violation
from canonical.validate import canonical_violations, fast_check, schema_validator, schema_violations

MAX_JSON_DEPTH = 32
"""Deeper than any of our formats needs; a deeper document is refused before validation."""


def load_json(body: bytes, adapter: str) -> Any:
    """UTF-8 JSON -> Python values; ``InvalidInput`` on bad encoding (``utf-8``), syntax
    (``json-syntax``), nesting (``max-depth``), NaN, Infinity or a number too large for a
    double (``finite-number``) and half a surrogate pair (``unicode``)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            [Violation("/", "utf-8", "the body must be UTF-8 encoded JSON")], adapter=adapter
        ) from None
    if _nesting(body) > MAX_JSON_DEPTH:
        raise InvalidInput(
            [Violation("/", "max-depth", f"nested deeper than {MAX_JSON_DEPTH} levels")], adapter=adapter
        )
    if body.translate(_DIGITS_AS_NINES).find(_LONG_RUN) < 0:
        # The fast path: what orjson reads, json reads to the same values. orjson refuses
        # more (NaN, lone surrogates, numbers that overflow), so on any refusal json below
        # decides and names the rule. A run of 19+ digits goes to json: orjson turns
        # integers beyond 64 bits into floats, json keeps them exact.
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(body)
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NonFinite:
        raise InvalidInput(
            [Violation("/", "finite-number", "NaN and Infinity are not JSON numbers")], adapter=adapter
        ) from None
    except json.JSONDecodeError as exc:
        # Position only: the exception's own text can quote the sender's bytes.
        raise InvalidInput(
            [Violation("/", "json-syntax", f"not valid JSON (line {exc.lineno}, column {exc.colno})")],
            adapter=adapter,
        ) from None
    except RecursionError:  # pragma: no cover - _nesting refuses such input first
        raise InvalidInput(
            [Violation("/", "max-depth", f"nested deeper than {MAX_JSON_DEPTH} levels")], adapter=adapter
        ) from None
    if _has_lone_surrogate(value):
        raise InvalidInput(
            [Violation("/", "unicode", "a \\u escape names half of a surrogate pair: not a character")],
            adapter=adapter,
        )
    return value


# A run of 19 digits, found in C: every digit becomes "9", everything else a space, then a
# substring search (a regex for the same took longer than decoding the whole body).
_DIGITS_AS_NINES = bytes(0x39 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"9" * 19
_OPENING = frozenset(b"[{")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN, Infinity and -Infinity, which pass every schema bound.
    raise _NonFinite(name)


def _finite_float(literal: str) -> float:
    # 1e400 reads as infinity: refused like the Infinity literal.
    value = float(literal)
    if math.isinf(value):
        raise _NonFinite(literal)
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """A string holding half a surrogate pair (json reads ``"\\ud800"`` into one); such a
    string cannot be written as UTF-8, so no copy of it could ever be rendered."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _nesting(body: bytes) -> int:
    """Upper bound of bracket nesting (brackets inside strings count too: a bound, cheap —
    everything but the brackets is dropped in C first, so only they are visited)."""
    brackets = body.translate(None, _NOT_BRACKETS)
    opening = brackets.count(b"[") + brackets.count(b"{")
    if opening <= MAX_JSON_DEPTH:
        return opening  # no deeper than the number of brackets opened: within the limit
    depth = deepest = 0
    for byte in brackets:
        if byte in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_schema(schema: str, document: Any, adapter: str) -> None:
    """Validate against one of ``schemas/`` (compiled fast path, ``jsonschema`` to explain)."""
    if fast_check(schema)(document):
        return
    problems = schema_violations(schema_validator(schema), document)
    if problems:
        raise InvalidInput(problems, adapter=adapter)


def to_message(document: dict[str, Any], dictionary: DataDictionary, adapter: str) -> Message:
    """A canonical document built by an adapter -> a ``Message``, if it is valid.

    A violation here means the native message mapped to something the canonical model does
    not allow (an unknown event type, a duplicated person ref): the fields are canonical
    JSON pointers, prefixed ``canonical:`` so the sender can tell them from native fields.
    """
    problems = canonical_violations(document, dictionary)
    if problems:
        raise InvalidInput(
            [Violation(f"canonical:{v.field}", v.rule, v.message) for v in problems], adapter=adapter
        )
    return Message.from_dict(document)


def dumps(document: Any) -> bytes:
    """Compact UTF-8 JSON, the way every JSON renderer writes (``orjson``: about ten times
    faster than ``json`` on the accept path, where every recipient's copy is rendered).

    Raises ``TypeError`` for what is not JSON (e.g. a string with a lone surrogate); the
    caller turns that into a render failure, never a partial payload."""
    return orjson.dumps(document)
