"""HL7 v2 ADT -> canonical message (the field mapping is in the package docstring and
``docs/formats/hl7v2.md``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import hl7

from adapters.hl7v2.codes import (
    ADDRESS_USE_IN,
    ATTENDANCE_TYPES,
    BIRTH_DATE,
    CHILD_REF,
    CLASS_IN,
    CP_IS_FLAG,
    CP_IS_STATUS_IN,
    DATE_TIME,
    EVENTS,
    LA_CODE,
    MAX_NK1,
    NAME,
    ROLE_IN,
    SEX_IN,
    VERSION,
)
from adapters.hl7v2.er7 import (
    checked_value,
    field_value,
    invalid,
    library_message,
    repetition_count,
    segment_name,
    unsupported_message,
    value_at,
)
from adapters.identifiers import NHS_NUMBER, identifier_violation, normalise
from adapters.inputs import to_message
from canonical import DataDictionary, InvalidInput, Message
from canonical.model import CONFIDENTIAL_ADDRESS, Address, Contact, Identifier, Item, Name, Person

# ---------------------------------------------------------------------------------------------
# Parse


class _Parser:
    """One message's segments, and the conversions that need MSH-7's time zone."""

    def __init__(self, message: Any) -> None:
        self.segments: dict[str, list[Any]] = {}
        for seg in message:
            self.segments.setdefault(str(seg[0]), []).append(seg)
        self.msh = self.segments["MSH"][0]
        self.default_tz: timezone | None = None

    def one(self, sid: str, *, required: bool) -> Any | None:
        found = self.segments.get(sid, [])
        if len(found) > 1:
            raise invalid(f"{sid}[2]", "hl7-segment-repeated", f"this message type carries one {sid} segment")
        if not found and required:
            raise invalid(sid, "hl7-required-segment", f"this message type requires a {sid} segment")
        return found[0] if found else None

    def value(self, seg: Any, where: str, field_num: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        return checked_value(where, value_at(seg, field_num, rep, comp, sub))

    def date_time(self, raw: str, where: str) -> datetime:
        m = DATE_TIME.fullmatch(raw)
        if m is None:
            raise invalid(
                where,
                "hl7-datatype",
                "an HL7 date-time to the minute at least: YYYYMMDDHHMM[SS[.SSSS]][+ZZZZ]",
            )
        try:
            naive: datetime = hl7.parse_datetime(m.group(1) + (m.group(2) or ""))
        except ValueError:
            raise invalid(where, "hl7-datatype", "not a calendar date-time") from None
        if m.group(3):
            hours, minutes = int(m.group(4)), int(m.group(5))
            if hours > 14 or minutes > 59:
                raise invalid(where, "hl7-datatype", "a UTC offset is between -1400 and +1400")
            # The library's own offset arithmetic gets "-0030" wrong; ours is explicit.
            sign = -1 if m.group(3) == "-" else 1
            tz: timezone | None = timezone(sign * timedelta(hours=hours, minutes=minutes))
        else:
            tz = self.default_tz
            if tz is None:
                raise invalid(
                    where,
                    "hl7-timezone",
                    "a date-time without a UTC offset needs MSH-7 to carry the sender's offset (e.g. +0000)",
                )
        return naive.replace(tzinfo=tz)

    def birth_date(self, raw: str, where: str) -> str:
        m = BIRTH_DATE.fullmatch(raw)
        if m is None:
            raise invalid(where, "hl7-datatype", "an HL7 date: YYYYMMDD (a time part is ignored)")
        try:
            parsed: datetime = hl7.parse_datetime(m.group(1))
        except ValueError:
            raise invalid(where, "hl7-datatype", "not a calendar date") from None
        return parsed.date().isoformat()


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")


def parse_message(body: bytes, dictionary: DataDictionary) -> Message:
    """ER7 bytes -> a validated canonical message (module docstring: the subset)."""
    p = _Parser(library_message(body))
    trigger, control_id = _check_header(p)
    msh7 = field_value(p.msh, 7)
    if trigger == "A40" and (len(p.segments.get("PID", [])) > 1 or len(p.segments.get("MRG", [])) > 1):
        raise unsupported_message("MRG[2]", "one PID/MRG pair per A40 (send one merge per message)")
    pid = p.one("PID", required=True)
    pv1 = p.one("PV1", required=trigger != "A40")
    mrg = p.one("MRG", required=trigger == "A40")
    evn = p.one("EVN", required=False)
    assert pid is not None
    patient_class = _patient_class(pv1, trigger)
    evn2 = value_at(evn, 2) if evn is not None else ""
    occurred = p.date_time(evn2, "EVN-2") if evn2 else p.date_time(msh7, "MSH-7")
    event_type = EVENTS[trigger]
    items = _items(p, trigger, pv1, patient_class, mrg)
    envelope: dict[str, Any] = {
        "event_type": event_type,
        "occurred_at": _iso(occurred),
        "purpose": "safeguarding" if event_type == "health.ed-attendance" else "direct-care",
        "sender_reference": control_id,
    }
    flag = _cp_is_flag(p)
    if flag is not None:
        items.append(Item("social-care.status", CP_IS_FLAG, flag, (CHILD_REF,)))
        envelope["recipients"] = [f"la-code.{flag['responsible_la_code']}"]
    document = {
        "envelope": envelope,
        "people": [person.as_dict() for person in _people(p, pid)],
        "items": [item.as_dict() for item in items],
    }
    return to_message(document, dictionary, NAME)


def _cp_is_flag(p: _Parser) -> dict[str, Any] | None:
    """The local ZCP segment (module docstring), or ``None``."""
    zcp = p.one("ZCP", required=False)
    if zcp is None:
        return None
    code = p.value(zcp, "ZCP-1", 1)
    if code not in CP_IS_STATUS_IN:
        raise invalid("ZCP-1", "hl7-code", "CPP (child protection plan) or LAC (looked after)")
    la_code = p.value(zcp, "ZCP-2", 2)
    if not LA_CODE.fullmatch(la_code):
        raise invalid("ZCP-2", "hl7-datatype", "the responsible local authority's three-digit code")
    flag: dict[str, Any] = {"status": CP_IS_STATUS_IN[code], "responsible_la_code": la_code}
    start = p.value(zcp, "ZCP-3", 3)
    if start:
        flag["start_date"] = p.birth_date(start, "ZCP-3")
    return flag


def _check_header(p: _Parser) -> tuple[str, str]:
    """MSH-9/11/12 (unsupported -> ``AR``), MSH-10 and MSH-7; sets MSH-7's offset as default.

    Returns the trigger event and the control id.
    """
    msh = p.msh
    kind, trigger = field_value(msh, 9, 1), field_value(msh, 9, 2)
    if not (kind and trigger):
        raise invalid("MSH-9", "hl7-required-field", "MSH-9 message type and trigger event are required")
    if kind != "ADT" or trigger not in EVENTS:
        raise unsupported_message(
            "MSH-9", "supported: ADT^A01, ADT^A03, ADT^A04 (emergency), ADT^A08, ADT^A40"
        )
    processing = field_value(msh, 11)
    if not processing:
        raise invalid("MSH-11", "hl7-required-field", "MSH-11 processing id is required (P)")
    if processing != "P":
        raise unsupported_message("MSH-11", "only production messages (MSH-11 = P) are accepted")
    version = field_value(msh, 12)
    if not version:
        raise invalid("MSH-12", "hl7-required-field", "MSH-12 version id is required")
    if not VERSION.fullmatch(version):
        raise unsupported_message("MSH-12", "supported versions: 2.3 to 2.9")
    control_id = p.value(msh, "MSH-10", 10)
    if not control_id:
        raise invalid("MSH-10", "hl7-required-field", "MSH-10 message control id is required")
    msh7 = field_value(msh, 7)
    if not msh7:
        raise invalid("MSH-7", "hl7-required-field", "MSH-7 date/time of message is required")
    m7 = DATE_TIME.fullmatch(msh7)
    if m7 is None or m7.group(3):
        p.default_tz = p.date_time(msh7, "MSH-7").tzinfo  # type: ignore[assignment]
    return trigger, control_id


def _patient_class(pv1: Any | None, trigger: str) -> str:
    if pv1 is None:
        return ""
    code = value_at(pv1, 2)
    if not code:
        raise invalid("PV1-2", "hl7-required-field", "PV1-2 patient class is required")
    if code not in CLASS_IN:
        raise invalid("PV1-2", "hl7-code", "a patient class of HL7 table 0004 (E, I, O, P, R, B, C, N, U)")
    if trigger == "A04" and code != "E":
        raise unsupported_message("PV1-2", "an A04 is accepted for emergency registrations only (PV1-2 = E)")
    return CLASS_IN[code]


def _people(p: _Parser, pid: Any) -> list[Person]:
    people = [_child(p, pid, p.one("PD1", required=False))]
    nk1s = p.segments.get("NK1", [])
    if len(nk1s) > MAX_NK1:
        raise invalid(f"NK1[{MAX_NK1 + 1}]", "hl7-too-many-segments", f"at most {MAX_NK1} NK1 segments")
    counts: dict[str, int] = {}
    for n, nk1 in enumerate(nk1s, start=1):
        people.append(_related(p, nk1, segment_name("NK1", n), counts))
    return people


def _items(p: _Parser, trigger: str, pv1: Any | None, patient_class: str, mrg: Any | None) -> list[Item]:
    items: list[Item] = []
    about = (CHILD_REF,)
    restricted = frozenset({"R"})
    if pv1 is not None:
        attendance = _attendance(p, pv1, patient_class)
        if attendance is not None:
            items.append(Item("health.attendance", ATTENDANCE_TYPES[trigger], attendance, about))
    pv2 = p.one("PV2", required=False)
    if pv2 is not None:
        reason = _coded(p, pv2, "PV2-3", 3)
        if reason:
            items.append(Item("health.clinical", "admit-reason", reason, about, restricted))
    for n, dg1 in enumerate(p.segments.get("DG1", []), start=1):
        diagnosis = _diagnosis(p, dg1, segment_name("DG1", n))
        if diagnosis:
            items.append(Item("health.clinical", "diagnosis", diagnosis, about, restricted))
    if mrg is not None:
        prior = _nhs_numbers(p, mrg, "MRG", 1)
        if not prior:
            raise invalid(
                "MRG-1",
                "hl7-required-field",
                "MRG-1 must carry the prior NHS number (authority NHS, type NH)",
            )
        items.append(Item("identity.core", "patient-merge", {"prior_nhs_numbers": prior}, about))
    return items


def _nhs_numbers(p: _Parser, seg: Any, sid: str, field_num: int) -> list[str]:
    """The NHS-number repetitions of a CX list (authority ``NHS``, type ``NH``), checked."""
    out: list[str] = []
    for r in range(1, repetition_count(seg, field_num) + 1):
        authority = value_at(seg, field_num, r, 4, 1).upper()
        id_type = value_at(seg, field_num, r, 5).upper()
        if authority != "NHS" or id_type != "NH":
            continue  # a hospital number: dropped (module docstring)
        where = f"{sid}-{field_num}[{r}].1"
        raw = p.value(seg, where, field_num, r, 1)
        if not raw:
            raise invalid(where, "hl7-required-field", "an NHS-number repetition needs CX.1")
        violation = identifier_violation(NHS_NUMBER, raw, where)
        if violation is not None:
            raise InvalidInput([violation], adapter=NAME)
        value = normalise(NHS_NUMBER, raw)
        if value not in out:
            out.append(value)
    return out


def _name(p: _Parser, seg: Any, where: str, field_num: int) -> Name | None:
    reps = repetition_count(seg, field_num)
    chosen = next((r for r in range(1, reps + 1) if value_at(seg, field_num, r, 7) == "L"), 1)
    family = p.value(seg, where, field_num, chosen, 1, 1)
    given = " ".join(x for x in (p.value(seg, where, field_num, chosen, c) for c in (2, 3)) if x)
    if not family and not given:
        return None
    return Name(given or None, family or None)


def _addresses(p: _Parser, seg: Any, where: str, field_num: int) -> tuple[Address, ...]:
    out: list[Address] = []
    for r in range(1, repetition_count(seg, field_num) + 1):
        street = " ".join(x for x in (p.value(seg, where, field_num, r, 1, s) for s in range(1, 4)) if x)
        lines = [street] + [p.value(seg, where, field_num, r, c) for c in (2, 3, 4)]
        postcode = p.value(seg, where, field_num, r, 5)
        use = ADDRESS_USE_IN.get(value_at(seg, field_num, r, 7))
        kept = tuple(x for x in lines if x)
        if kept or postcode:
            out.append(Address(kept, postcode or None, use))
    return tuple(out)


def _contacts(p: _Parser, seg: Any, where: str, field_num: int) -> tuple[Contact, ...]:
    out: list[Contact] = []
    for r in range(1, repetition_count(seg, field_num) + 1):
        email = p.value(seg, where, field_num, r, 4)
        if email or value_at(seg, field_num, r, 3).lower() == "internet":
            if email:
                out.append(Contact("email", email))
            continue
        number = p.value(seg, where, field_num, r, 1) or " ".join(
            x for x in (p.value(seg, where, field_num, r, c) for c in (5, 6, 7)) if x
        )
        if number:
            out.append(Contact("phone", number))
    return tuple(out)


def _child(p: _Parser, pid: Any, pd1: Any | None) -> Person:
    identifiers = tuple((NHS_NUMBER, v) for v in _nhs_numbers(p, pid, "PID", 3))
    birth = value_at(pid, 7)
    sex_code = value_at(pid, 8)
    if sex_code and sex_code.upper() not in SEX_IN:
        raise invalid("PID-8", "hl7-code", "an administrative sex of HL7 table 0001 (F, M, O, U, A, N)")
    markers: frozenset[str] = frozenset()
    if pd1 is not None and value_at(pd1, 12).upper() == "Y":
        markers = frozenset({CONFIDENTIAL_ADDRESS})
    return Person(
        ref=CHILD_REF,
        role="child",
        identifiers=tuple(Identifier(s, v) for s, v in identifiers),
        name=_name(p, pid, "PID-5", 5),
        birth_date=p.birth_date(birth, "PID-7") if birth else None,
        sex=SEX_IN[sex_code.upper()] if sex_code else None,
        addresses=_addresses(p, pid, "PID-11", 11),
        contacts=_contacts(p, pid, "PID-13", 13),
        markers=markers,
    )


def _related(p: _Parser, nk1: Any, sid: str, counts: dict[str, int]) -> Person:
    role = ROLE_IN.get(value_at(nk1, 3).upper(), "carer")
    counts[role] = counts.get(role, 0) + 1
    return Person(
        ref=f"{role}-{counts[role]}",
        role=role,
        name=_name(p, nk1, f"{sid}-2", 2),
        addresses=_addresses(p, nk1, f"{sid}-4", 4),
        contacts=_contacts(p, nk1, f"{sid}-5", 5),
    )


def _attendance(p: _Parser, pv1: Any, patient_class: str) -> dict[str, Any] | None:
    setting = p.value(pv1, "PV1-3", 3, 1, 9) or ", ".join(
        x for x in (p.value(pv1, "PV1-3", 3, 1, 1), p.value(pv1, "PV1-3", 3, 1, 4)) if x
    )
    arrived, left = value_at(pv1, 44), value_at(pv1, 45)
    if not (setting or arrived or left):
        return None  # PV1-2 alone says nothing a recipient could use
    data: dict[str, Any] = {"patient_class": patient_class}
    if setting:
        data["setting"] = setting
    if arrived:
        data["arrived_at"] = _iso(p.date_time(arrived, "PV1-44"))
    if left:
        data["left_at"] = _iso(p.date_time(left, "PV1-45"))
    return data


def _coded(p: _Parser, seg: Any, where: str, field_num: int) -> dict[str, Any]:
    code, text, system = (p.value(seg, where, field_num, 1, c) for c in (1, 2, 3))
    out = {"code": code, "reason": text, "code_system": system}
    return {k: v for k, v in out.items() if v}


def _diagnosis(p: _Parser, dg1: Any, sid: str) -> dict[str, Any]:
    code, text, system = (p.value(dg1, f"{sid}-3", 3, 1, c) for c in (1, 2, 3))
    description = p.value(dg1, f"{sid}-4", 4) or text
    out = {"code": code, "description": description, "code_system": system}
    return {k: v for k, v in out.items() if v}
