"""CTF pupil records -> canonical items about the child: ``LookedAfter`` (a
``social-care.status`` item), ``SENhistory`` (``education.sen`` items, special category
data) and ``Attendance/YearData`` (``education.attendance`` items). Violations name the
element path and the rule, never the value."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from adapters.ctf.codes import (
    _CODE3,
    BOOLEAN,
    CHILD_REF,
    RANK,
    SCHOOL_FIELDS,
    SEN_PROVISION,
    SEN_TYPES,
    YEAR,
    YEAR_FIELDS,
)
from adapters.ctf.reader import Reader


def child_item(category: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"category": category, "type": kind, "about": [CHILD_REF], "data": data}


def read_looked_after(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> dict[str, Any] | None:
    element, lpath = r.one(kids, path, "LookedAfter"), f"{path}/LookedAfter"
    basic = r.one(kids, path, "BasicDetails") if element is None else None
    if basic is not None:
        # Some suppliers nest it in BasicDetails; the same subset is read there.
        element = r.one(r.kids(basic), f"{path}/BasicDetails", "LookedAfter")
        lpath = f"{path}/BasicDetails/LookedAfter"
    if element is None:
        return None
    lkids = r.kids(element)
    in_care = r.code(lkids, lpath, "InCare", BOOLEAN, "boolean", required=True)
    if in_care is None:
        return None
    data: dict[str, Any] = {"looked_after": BOOLEAN[in_care]}
    authority = r.text(
        lkids, lpath, "CareAuthority", pattern=_CODE3, rule="la-code", expected="a three-character LA code"
    )
    if authority is not None:
        data["care_authority"] = authority
    return data


def read_sen(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
    history = r.one(kids, path, "SENhistory")
    if history is None:
        return []
    hpath, hkids = f"{path}/SENhistory", r.kids(history)
    items: list[dict[str, Any]] = []
    for n, record in enumerate(hkids.get("SEN", []), start=1):
        spath, skids = f"{hpath}/SEN[{n}]", r.kids(record)
        data: dict[str, Any] = {}
        provision = r.code(skids, spath, "SENprovision", SEN_PROVISION, "sen-provision-code", required=True)
        if provision is not None:
            data["provision"] = provision
        for element, key in (("StartDate", "start_date"), ("EndDate", "end_date")):
            value = r.date(skids, spath, element)
            if value is not None:
                data[key] = value
        items.append(child_item("education.sen", "sen-provision", data))
    needs_el = r.one(hkids, hpath, "SENneeds")
    if needs_el is not None:
        ranked: list[tuple[int, str]] = []
        for n, need in enumerate(r.kids(needs_el).get("SENneed", []), start=1):
            npath, nkids = f"{hpath}/SENneeds/SENneed[{n}]", r.kids(need)
            rank = r.text(nkids, npath, "SENtypeRank", pattern=RANK, expected="a rank, 1 to 99")
            kind = r.code(nkids, npath, "SENtype", SEN_TYPES, "sen-type-code", required=True)
            if kind is not None:
                ranked.append((int(rank) if rank is not None else 99, kind))
        if ranked:
            # Most significant need first, as SENtypeRank orders them.
            items.append(child_item("education.sen", "sen-needs", {"needs": [k for _, k in sorted(ranked)]}))
    return items


def read_attendance(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
    attendance = r.one(kids, path, "Attendance")
    if attendance is None:
        return []
    items: list[dict[str, Any]] = []
    for n, year in enumerate(r.kids(attendance).get("YearData", []), start=1):
        ypath, ykids = f"{path}/Attendance/YearData[{n}]", r.kids(year)
        data: dict[str, Any] = {}
        value = r.text(
            ykids, ypath, "Year", required=True, pattern=YEAR, rule="year", expected="a year, YYYY"
        )
        if value is not None:
            data["year"] = value
        for element, key, pattern in SCHOOL_FIELDS[:2]:
            code = r.text(ykids, ypath, element, pattern=pattern, expected=f"a valid {element} code")
            if code is not None:
                data[key] = code
        for element, key in YEAR_FIELDS:
            sessions = r.count(ykids, ypath, element)
            if sessions is not None:
                data[key] = sessions
        items.append(child_item("education.attendance", "attendance-year", data))
    return items
