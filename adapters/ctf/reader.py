"""``Reader``: reads CTF elements by local name and collects violations, so that one
pass over a file reports every broken field. Each check names the element by path and the
rule; it MUST NOT put a text value in a violation."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping
from datetime import date

from adapters.ctf.codes import COUNT, DATE, NAME_LEN
from adapters.safe_xml import local as local_name
from canonical import Violation


class Reader:
    """Reads elements and collects violations; MUST NOT put a text value in a message."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def add(self, field: str, rule: str, message: str) -> None:
        self.violations.append(Violation(field, rule, message))

    def kids(self, element: ET.Element) -> dict[str, list[ET.Element]]:
        out: dict[str, list[ET.Element]] = {}
        for child in element:
            if isinstance(child.tag, str):
                out.setdefault(local_name(child.tag), []).append(child)
        return out

    def one(
        self, kids: Mapping[str, list[ET.Element]], path: str, name: str, *, required: bool = False
    ) -> ET.Element | None:
        found = kids.get(name, [])
        if len(found) > 1:
            self.add(f"{path}/{name}", "repeated-element", f"{name} may appear once here")
        if not found:
            if required:
                self.add(f"{path}/{name}", "required", f"required element missing: {name}")
            return None
        return found[0]

    def text(
        self,
        kids: Mapping[str, list[ET.Element]],
        path: str,
        name: str,
        *,
        required: bool = False,
        max_length: int = NAME_LEN,
        pattern: re.Pattern[str] | None = None,
        rule: str = "pattern",
        expected: str = "",
    ) -> str | None:
        element = self.one(kids, path, name, required=required)
        if element is None:
            return None
        value = (element.text or "").strip()
        field = f"{path}/{name}"
        if not value:
            if required:
                self.add(field, "required", f"required element is empty: {name}")
            return None
        if len(value) > max_length:
            self.add(field, "max-length", f"longer than {max_length} characters")
            return None
        if pattern is not None and not pattern.match(value):
            self.add(field, rule, f"must be {expected}")
            return None
        return value

    def date(
        self, kids: Mapping[str, list[ET.Element]], path: str, name: str, *, required: bool = False
    ) -> str | None:
        value = self.text(kids, path, name, required=required, max_length=10)
        if value is None:
            return None
        try:
            if not DATE.match(value):
                raise ValueError
            date.fromisoformat(value)
        except ValueError:
            self.add(f"{path}/{name}", "date", "must be a date, YYYY-MM-DD")
            return None
        return value

    def code(
        self,
        kids: Mapping[str, list[ET.Element]],
        path: str,
        name: str,
        allowed: Collection[str],
        rule: str,
        *,
        required: bool = False,
    ) -> str | None:
        value = self.text(kids, path, name, required=required, max_length=10)
        if value is not None and value not in allowed:
            self.add(f"{path}/{name}", rule, f"must be one of {', '.join(sorted(allowed))}")
            return None
        return value

    def count(self, kids: Mapping[str, list[ET.Element]], path: str, name: str) -> int | None:
        value = self.text(
            kids, path, name, pattern=COUNT, rule="count", expected="a whole number of sessions"
        )
        return int(value) if value is not None else None
