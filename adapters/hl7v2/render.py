"""Canonical message -> HL7 v2 ADT: writes only what the redacted message carries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import hl7
from hl7.util import escape as hl7_escape

from adapters.base import NotRenderable
from adapters.hl7v2.codes import (
    ADDRESS_USE_OUT,
    CLASS_OUT,
    CP_IS_FLAG,
    CP_IS_STATUS_OUT,
    MAX_ADDRESS_LINES,
    RENDER_APPLICATION,
    RENDER_VERSION,
    ROLE_OUT,
    SEX_OUT,
    STRUCTURES,
    TRIGGERS,
)
from adapters.identifiers import NHS_NUMBER
from canonical import Message
from canonical.model import Address, Contact, Item, Name, Person

# ---------------------------------------------------------------------------------------------
# Render


class _Writer:
    """Builds segments with the library's containers; every value escaped on the way in."""

    def __init__(self) -> None:
        self.message: Any = hl7.parse("MSH|^~\\&|" + RENDER_APPLICATION)

    def escape(self, text: str) -> str:
        # The library escapes separators and hex-escapes non-ASCII with "%2x", which breaks
        # characters above U+00FF and below U+0010. We write UTF-8 (MSH-18), so non-ASCII goes
        # as it is and control characters as two-digit \Xhh\.
        out: list[str] = []
        run: list[str] = []
        esc = self.message.esc
        for ch in text:
            if ch == "\r" or 0x20 <= ord(ch) <= 0x7E:
                run.append(ch)
                continue
            out.append(hl7_escape(self.message, "".join(run)) if run else "")
            run = []
            out.append(ch if ord(ch) > 0x9F else f"{esc}X{ord(ch):02X}{esc}")
        out.append(hl7_escape(self.message, "".join(run)) if run else "")
        return "".join(out)

    def segment(self, sid: str) -> Any:
        seg = self.message.create_segment([self.message.create_field([sid])])
        self.message.append(seg)
        return seg

    def put(
        self, seg: Any, value: str | None, field_num: int, rep: int | None = None, comp: int | None = None
    ) -> None:
        if value:
            seg.assign_field(self.escape(value), field_num, rep, comp)

    def text(self) -> bytes:
        return str(self.message).encode("utf-8")


def _ts(value: str | None) -> str | None:
    """ISO date-time -> HL7 TS with offset; ``None`` for what is not one (never invented)."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    out = dt.strftime("%Y%m%d%H%M%S")
    if dt.microsecond:
        out += f".{dt.microsecond // 100:04d}"
    offset = dt.utcoffset()
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        out += f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return out


def render_message(message: Message) -> bytes:
    """A (redacted) canonical message -> ADT; ``NotRenderable`` for other event types."""
    env = message.envelope
    trigger = TRIGGERS.get(env.event_type)
    if trigger is None:
        raise NotRenderable(
            f"event type {env.event_type} has no HL7 v2 ADT form "
            f"(hl7v2 renders {', '.join(sorted(TRIGGERS))})"
        )
    w = _Writer()
    msh = w.message[0]
    w.put(msh, _ts(env.received_at) or _ts(env.occurred_at), 7)
    for comp, value in enumerate(("ADT", trigger, STRUCTURES[trigger]), start=1):
        w.put(msh, value, 9, 1, comp)
    w.put(msh, env.message_id or env.sender_reference, 10)
    w.put(msh, "P", 11)
    w.put(msh, RENDER_VERSION, 12)
    w.put(msh, "UNICODE UTF-8", 18)
    evn = w.segment("EVN")
    w.put(evn, trigger, 1)
    w.put(evn, _ts(env.occurred_at), 2)
    w.put(evn, env.source, 7)  # event facility: the partner the event came from
    _write_people(w, message.people)
    _write_visit(w, message.items, trigger)
    _write_cp_is_flag(w, message.items)
    return w.text()


def _write_cp_is_flag(w: _Writer, items: Sequence[Item]) -> None:
    flag = next((i for i in items if i.category == "social-care.status" and i.type == CP_IS_FLAG), None)
    status = CP_IS_STATUS_OUT.get(str(flag.data.get("status"))) if flag is not None else None
    if flag is None or status is None:
        return
    zcp = w.segment("ZCP")
    w.put(zcp, status, 1)
    w.put(zcp, _str(flag.data.get("responsible_la_code")), 2)
    start = _str(flag.data.get("start_date"))
    w.put(zcp, start.replace("-", "") if start else None, 3)


def _write_people(w: _Writer, people: Sequence[Person]) -> None:
    child = next((x for x in people if x.role == "child"), None)
    pid = w.segment("PID")
    w.put(pid, "1", 1)
    if child is not None:
        _write_child(w, pid, child)
        if child.has_confidential_address:
            w.put(w.segment("PD1"), "Y", 12)
    n = 0
    for person in people:
        if person is child or person.role not in ROLE_OUT:
            continue
        n += 1
        nk1 = w.segment("NK1")
        w.put(nk1, str(n), 1)
        _write_name(w, nk1, 2, person.name)
        w.put(nk1, ROLE_OUT[person.role], 3, 1, 1)
        _write_addresses(w, nk1, 4, person.addresses)
        _write_contacts(w, nk1, 5, person.contacts)


def _write_visit(w: _Writer, items: Sequence[Item], trigger: str) -> None:
    attendance = next((i for i in items if i.category == "health.attendance"), None)
    pv1 = w.segment("PV1")
    w.put(pv1, "1", 1)
    data = attendance.data if attendance is not None else {}
    code = CLASS_OUT.get(str(data.get("patient_class", "")))
    if code is None:
        code = "E" if trigger == "A04" else "U"  # ED is in the event type itself; else unknown
    w.put(pv1, code, 2)
    w.put(pv1, _str(data.get("setting")), 3, 1, 9)
    w.put(pv1, _ts(_str(data.get("arrived_at"))), 44)
    w.put(pv1, _ts(_str(data.get("left_at"))), 45)
    clinical = [i for i in items if i.category == "health.clinical"]
    reason = next((i for i in clinical if i.type == "admit-reason"), None)
    if reason is not None:
        pv2 = w.segment("PV2")
        for comp, key in ((1, "code"), (2, "reason"), (3, "code_system")):
            w.put(pv2, _str(reason.data.get(key)), 3, 1, comp)
    for k, item in enumerate((i for i in clinical if i.type == "diagnosis"), start=1):
        dg1 = w.segment("DG1")
        w.put(dg1, str(k), 1)
        w.put(dg1, _str(item.data.get("code")), 3, 1, 1)
        w.put(dg1, _str(item.data.get("code_system")), 3, 1, 3)
        w.put(dg1, _str(item.data.get("description")), 4)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _write_child(w: _Writer, pid: Any, child: Person) -> None:
    nhs = [i.value for i in child.identifiers if i.system == NHS_NUMBER]
    for r, value in enumerate(nhs, start=1):
        w.put(pid, value, 3, r, 1)
        w.put(pid, "NHS", 3, r, 4)
        w.put(pid, "NH", 3, r, 5)
    _write_name(w, pid, 5, child.name)
    if child.birth_date:
        w.put(pid, date.fromisoformat(child.birth_date).strftime("%Y%m%d"), 7)
    w.put(pid, SEX_OUT.get(child.sex or ""), 8)
    _write_addresses(w, pid, 11, child.addresses)
    _write_contacts(w, pid, 13, child.contacts)


def _write_name(w: _Writer, seg: Any, field_num: int, name: Name | None) -> None:
    if name is None or not (name.family or name.given):
        return
    w.put(seg, name.family, field_num, 1, 1)
    w.put(seg, name.given, field_num, 1, 2)
    w.put(seg, "L", field_num, 1, 7)


def _write_addresses(w: _Writer, seg: Any, field_num: int, addresses: Sequence[Address]) -> None:
    for r, address in enumerate(addresses, start=1):
        lines = list(address.lines[: MAX_ADDRESS_LINES - 1])
        rest = address.lines[MAX_ADDRESS_LINES - 1 :]
        if rest:
            lines.append(", ".join(rest))
        for comp, line in enumerate(lines, start=1):
            w.put(seg, line, field_num, r, comp)
        w.put(seg, address.postcode, field_num, r, 5)
        w.put(seg, ADDRESS_USE_OUT.get(address.use or ""), field_num, r, 7)


def _write_contacts(w: _Writer, seg: Any, field_num: int, contacts: Sequence[Contact]) -> None:
    for r, contact in enumerate(contacts, start=1):
        if contact.kind == "email":
            w.put(seg, "NET", field_num, r, 2)
            w.put(seg, "Internet", field_num, r, 3)
            w.put(seg, contact.value, field_num, r, 4)
        else:
            w.put(seg, contact.value, field_num, r, 1)
            w.put(seg, "PRN", field_num, r, 2)
            w.put(seg, "PH", field_num, r, 3)
