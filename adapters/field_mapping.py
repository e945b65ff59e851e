"""Field mapping: a partner's JSON document reshaped into one of our JSON formats, by
configuration instead of code (a police force whose PPN fields are named differently).

A mapping document (``schemas/field-mapping.schema.json``, usually a YAML file named by a
partner's ``inbound.adapter_options.<format>.field_mapping_file``) is compiled once, at
start-up, into an immutable ``FieldMapping``. Applied to each inbound document *before*
schema validation, in this order:

1. ``renames``: ``{from, to}`` JSON pointers, applied one after the other, each to the
   document as the previous ones left it (so ``/Subjects -> /people`` then
   ``/people/*/Surname -> /people/*/family_name``). ``*`` is one array element; ``from`` and
   ``to`` hold the same number of ``*``, matched in order. An object left empty by the moves
   is removed, and so is an array whose elements were all emptied.
2. ``values``: ``{at, map}`` replaces a *string* value found in ``map`` (``"H" -> "high"``,
   ``"Y" -> true``); a value not in the map is left as sent for the schema to judge.
3. ``dates``: ``{at, format}`` converts a date written with a ``strptime`` format
   (``%d/%m/%Y``) to ISO 8601 (``2017-03-14``). Only dates: a date-time needs a time zone,
   and turning a local time into an offset needs a zone database, which is not simple;
   forces send date-times in ISO 8601 with an offset.
4. ``defaults``: ``{at, value}`` sets a constant where the key is absent, in an object that
   exists (``/people/*/role`` sets each person's role when it is missing).

``at`` pointers name *our* fields (after renames). Errors in a mapped document are reported
with the partner's own pointer: ``native_pointer`` runs the renames backwards, and the
adapter rewrites each violation's field with it (the message keeps our field name).

MUST NOT: a mapping never evaluates code, never reads files, and no error (mapping or
document) quotes a value from the partner's document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from adapters.base import AdapterOptionsError
from canonical import InvalidInput, Violation
from canonical.validate import schema_validator, schema_violations

SCHEMA = "field-mapping.schema.json"
WILDCARD = "*"

Path = tuple[str, ...]
"""A pointer's segments, unescaped; ``*`` is a wildcard in a mapping's patterns."""

_DATE_DIRECTIVES = frozenset({"%Y", "%m", "%b", "%B", "%d", "%%"})
_INDEX = re.compile(r"^(0|[1-9][0-9]{0,5})$")


def parse_pointer(text: str) -> Path:
    """``/a/b~1c`` -> ``("a", "b/c")``; ``""`` -> ``()``."""
    if not text:
        return ()
    return tuple(s.replace("~1", "/").replace("~0", "~") for s in text[1:].split("/"))


def format_pointer(path: Sequence[str | int]) -> str:
    """The inverse of ``parse_pointer``; the root is ``/`` (the convention of our violations)."""
    if not path:
        return "/"
    return "/" + "/".join(str(s).replace("~", "~0").replace("/", "~1") for s in path)


@dataclass(frozen=True, slots=True)
class Rename:
    source: Path
    target: Path

    @property
    def in_place(self) -> bool:
        """Only the last segment changes (``/people/*/Surname -> /people/*/family_name``):
        the common case, done as a key rename in each matching object."""
        return self.source[:-1] == self.target[:-1]


@dataclass(frozen=True, slots=True)
class ValueMap:
    at: Path
    table: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DateFormat:
    at: Path
    format: str


@dataclass(frozen=True, slots=True)
class Default:
    at: Path
    value: Any


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """A compiled mapping: pure and immutable, shared by every request of one partner."""

    format: str | None
    renames: tuple[Rename, ...] = ()
    values: tuple[ValueMap, ...] = ()
    dates: tuple[DateFormat, ...] = ()
    defaults: tuple[Default, ...] = ()

    @classmethod
    def compile(cls, document: Any) -> FieldMapping:
        """A mapping document -> ``FieldMapping``; ``AdapterOptionsError`` naming the pointer
        inside the mapping and the rule broken."""
        problems = schema_violations(schema_validator(SCHEMA), document)
        if problems:
            raise _options_error(problems)
        problems = list(_semantic_problems(document))
        if problems:
            raise _options_error(problems)
        return cls(
            format=document.get("format"),
            renames=tuple(
                Rename(parse_pointer(r["from"]), parse_pointer(r["to"])) for r in document.get("renames", ())
            ),
            values=tuple(
                ValueMap(parse_pointer(v["at"]), MappingProxyType(dict(v["map"])))
                for v in document.get("values", ())
            ),
            dates=tuple(DateFormat(parse_pointer(d["at"]), d["format"]) for d in document.get("dates", ())),
            defaults=tuple(Default(parse_pointer(d["at"]), d["value"]) for d in document.get("defaults", ())),
        )

    def apply(self, document: Any, adapter: str) -> Any:
        """The partner's document -> a new document in our field names (the input is not
        changed). ``InvalidInput`` (partner's pointers) when the document cannot be reshaped:
        a target already present, a path through a value that is not an object, a date not in
        the declared format."""
        doc = _copy(document)
        problems: list[Violation] = []
        for index, rename in enumerate(self.renames):
            doc = self._rename(doc, index, rename, problems)
        for value_map in self.values:
            for path, _, value in _matches(doc, value_map.at):
                if isinstance(value, str) and value in value_map.table:
                    _replace(doc, path, value_map.table[value])
        for date_format in self.dates:
            for path, _, value in _matches(doc, date_format.at):
                converted = _iso_date(value, date_format.format)
                if converted is None:
                    problems.append(
                        Violation(
                            self.native_pointer(format_pointer(path)),
                            "field-mapping-date-format",
                            f"expected a date written as {date_format.format} (the partner's field mapping)",
                        )
                    )
                else:
                    _replace(doc, path, converted)
        for default in self.defaults:
            for _, _, parent in _matches(doc, default.at[:-1]):
                if isinstance(parent, dict) and default.at[-1] not in parent:
                    parent[default.at[-1]] = _copy(default.value)
        if problems:
            raise InvalidInput(problems, adapter=adapter)
        return doc

    def native_pointer(self, pointer: str) -> str:
        """A pointer into the mapped document -> the same place in the partner's document
        (unchanged where no rename applies, e.g. a field the partner already names our way)."""
        if not pointer.startswith("/") or pointer == "/":
            return pointer
        path = parse_pointer(pointer)
        for rename in reversed(self.renames):
            captured = _prefix_captures(rename.target, path)
            if captured is not None:
                path = _fill(rename.source, captured) + path[len(rename.target) :]
        return format_pointer(path)

    def native_violations(self, violations: Sequence[Violation]) -> list[Violation]:
        """Violations found in the mapped document, re-pointed into the partner's document."""
        out = []
        for v in violations:
            native = self.native_pointer(v.field)
            if native == v.field:
                out.append(v)
            else:
                out.append(Violation(native, v.rule, f"{v.message} (our field {v.field})"))
        return out

    def _rename(self, doc: Any, index: int, rename: Rename, problems: list[Violation]) -> Any:
        def refuse(path: Path) -> None:
            problems.append(
                Violation(
                    format_pointer(path),
                    "field-mapping-target",
                    f"cannot move this field to {format_pointer(rename.target)} "
                    f"(field mapping renames/{index}): the target is present or not an object",
                )
            )

        old, new = rename.source[-1], rename.target[-1]
        if rename.in_place:
            for path, _, parent in _matches(doc, rename.source[:-1]):
                if isinstance(parent, dict) and old in parent:
                    if new in parent:
                        refuse((*path, old))
                    else:
                        parent[new] = parent.pop(old)
            return doc
        found = _matches(doc, rename.source)
        touched_lists: set[Path] = set()
        # Sources go first, then targets in document order (so appends to a new array happen
        # in index order). A source always ends in a field name, so removing one never
        # renumbers an array.
        for path, _, _ in found:
            _delete(doc, path, touched_lists)
        for path, captures, value in found:
            if not _set(doc, _fill(rename.target, captures), value):
                refuse(path)
        for list_path in sorted(touched_lists, key=len, reverse=True):
            node = _get(doc, list_path)
            if isinstance(node, list) and all(e == {} for e in node):
                _delete(doc, list_path, set())
        return doc


# --- compiling ----------------------------------------------------------------------------


def _options_error(problems: Sequence[Violation]) -> AdapterOptionsError:
    shown = "; ".join(f"{v.field} ({v.rule}): {v.message}" for v in problems[:5])
    more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
    return AdapterOptionsError(f"field_mapping {shown}{more}")


def _semantic_problems(document: Mapping[str, Any]) -> Iterator[Violation]:
    """Rules the schema cannot say."""
    for i, rename in enumerate(document.get("renames", ())):
        source, target = parse_pointer(rename["from"]), parse_pointer(rename["to"])
        if source.count(WILDCARD) != target.count(WILDCARD):
            yield Violation(
                f"/renames/{i}", "same-wildcards", "'from' and 'to' must hold the same number of '*'"
            )
        if source[-1] == WILDCARD or _INDEX.match(source[-1]):
            yield Violation(
                f"/renames/{i}/from",
                "names-a-field",
                "must end in a field name: moving single array elements would renumber the others",
            )
        if target[-1] == WILDCARD:
            yield Violation(f"/renames/{i}/to", "names-a-field", "must not end in '*'")
        if source == target[: len(source)] or target == source[: len(target)]:
            yield Violation(f"/renames/{i}", "disjoint-paths", "'from' and 'to' must not contain each other")
    for i, date_format in enumerate(document.get("dates", ())):
        directives = set(re.findall(r"%.", date_format["format"]))
        if not {"%Y", "%d"} <= directives or not directives & {"%m", "%b", "%B"}:
            yield Violation(
                f"/dates/{i}/format", "whole-date", "must contain %Y, %d and a month (%m, %b or %B)"
            )
        elif directives - _DATE_DIRECTIVES:
            yield Violation(
                f"/dates/{i}/format",
                "date-directives",
                "may use only %Y, %m, %b, %B, %d and %% (a date, not a date-time)",
            )
        elif _iso_date(_probe(date_format["format"]), date_format["format"]) != "2001-02-03":
            yield Violation(f"/dates/{i}/format", "round-trips", "does not read back the dates it writes")
    for i, value_map in enumerate(document.get("values", ())):
        if not all(isinstance(k, str) for k in value_map["map"]):
            # YAML reads an unquoted yes/no/on/off or 1 as a boolean or a number.
            yield Violation(
                f"/values/{i}/map", "string-keys", "every key must be a string (quote it in YAML)"
            )
    for i, default in enumerate(document.get("defaults", ())):
        if parse_pointer(default["at"])[-1] == WILDCARD:
            yield Violation(f"/defaults/{i}/at", "names-a-field", "must end in a field name")


def _probe(fmt: str) -> str:
    """A fixed date written in ``fmt`` (no clock is read)."""
    try:
        return datetime(2001, 2, 3).strftime(fmt)
    except ValueError:
        return ""


def _iso_date(value: Any, fmt: str) -> str | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        # strptime with a fixed format, no time zone: a calendar conversion, not a clock read.
        return datetime.strptime(value, fmt).date().isoformat()
    except (ValueError, re.error):
        # re.error: a format repeating a directive (strptime compiles it to a regex).
        return None


# --- walking documents --------------------------------------------------------------------


def _copy(value: Any) -> Any:
    """A deep copy of JSON values (faster than ``copy.deepcopy`` and bounded by load_json)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _matches(doc: Any, pattern: Path) -> list[tuple[Path, tuple[str, ...], Any]]:
    """Every existing concrete path matching ``pattern``, with the indexes ``*`` took and
    the value found there."""
    out: list[tuple[Path, tuple[str, ...], Any]] = []

    def walk(node: Any, depth: int, path: Path, captures: tuple[str, ...]) -> None:
        if depth == len(pattern):
            out.append((path, captures, node))
            return
        segment = pattern[depth]
        if segment == WILDCARD:
            if isinstance(node, list):
                for i, child in enumerate(node):
                    walk(child, depth + 1, (*path, str(i)), (*captures, str(i)))
        elif isinstance(node, dict):
            if segment in node:
                walk(node[segment], depth + 1, (*path, segment), captures)
        elif isinstance(node, list) and _INDEX.match(segment) and int(segment) < len(node):
            walk(node[int(segment)], depth + 1, (*path, segment), captures)

    walk(doc, 0, (), ())
    return out


def _get(doc: Any, path: Path) -> Any:
    node = doc
    for segment in path:
        node = node[int(segment)] if isinstance(node, list) else node[segment]
    return node


def _replace(doc: Any, path: Path, value: Any) -> None:
    parent = _get(doc, path[:-1])
    if isinstance(parent, list):
        parent[int(path[-1])] = value
    else:
        parent[path[-1]] = value


def _delete(doc: Any, path: Path, touched_lists: set[Path]) -> None:
    """Remove ``path``; then each object ancestor it left empty. An emptied array element
    stays ``{}`` (removing it would renumber its siblings); its array is noted for later."""
    while path:
        parent = _get(doc, path[:-1])
        if isinstance(parent, list):
            touched_lists.add(path[:-1])
            return
        del parent[path[-1]]
        if parent or not path[:-1]:
            return
        path = path[:-1]


def _set(doc: Any, path: Path, value: Any) -> bool:
    """Put ``value`` at ``path``, creating objects (name next) or arrays (index next) on the
    way; ``False`` if the place is taken or the path runs through a scalar."""
    node = doc
    for depth, segment in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, dict):
            if last:
                if segment in node:
                    return False
                node[segment] = value
                return True
            if segment not in node:
                node[segment] = [] if _INDEX.match(path[depth + 1]) else {}
            node = node[segment]
        elif isinstance(node, list) and _INDEX.match(segment) and int(segment) <= len(node):
            index = int(segment)
            if index == len(node):
                node.append(value if last else ([] if _INDEX.match(path[depth + 1]) else {}))
                if last:
                    return True
            elif last:
                return False
            node = node[index]
        else:
            return False
    return False  # pragma: no cover - a pattern always has at least one segment


def _fill(pattern: Path, captures: Sequence[str]) -> Path:
    """Substitute captured indexes for the pattern's wildcards, in order."""
    it = iter(captures)
    return tuple(next(it) if s == WILDCARD else s for s in pattern)


def _prefix_captures(pattern: Path, path: Path) -> tuple[str, ...] | None:
    """The indexes ``pattern``'s wildcards match if ``pattern`` is a prefix of ``path``."""
    if len(pattern) > len(path):
        return None
    captured: list[str] = []
    for want, got in zip(pattern, path, strict=False):
        if want == WILDCARD:
            if not _INDEX.match(got):
                return None
            captured.append(got)
        elif want != got:
            return None
    return tuple(captured)
