"""Health HL7 v2 ADT in ER7 (pipe) encoding <-> canonical, with ``python-hl7`` doing the parsing
and the escaping.

Subset supported (everything else is refused or ignored, as listed):

* **Messages**: ``ADT^A01`` admit -> ``health.admission``, ``ADT^A03`` discharge ->
  ``health.discharge``, ``ADT^A04`` registration with PV1-2 patient class ``E`` ->
  ``health.ed-attendance``, ``ADT^A08`` update -> ``health.patient-update``, ``ADT^A40`` merge
  -> ``health.patient-merge``. Any other message type or trigger (``ORU^R01``, ``ADT^A05``...),
  an A04 whose patient class is not ``E`` (outpatient registrations are not safeguarding
  information), a processing id other than ``P`` (MSH-11: a training or debug message must never
  create real shares), a version outside 2.3-2.9 (MSH-12), or an A40 with more than one
  PID/MRG group raises ``UnsupportedHl7Message`` (the MLLP listener answers ``AR``). Content
  errors raise ``InvalidInput`` (``AE``).
* **Segments read**: MSH, EVN, PID, PD1, NK1, PV1, PV2, DG1, MRG (A40), and the local ``ZCP``
  (below). PID is required, PV1 too except for A40, MRG for A40. EVN is optional (EVN-2 falls
  back to MSH-7). Other segments (other Z-segments, AL1, OBX...) are ignored and never
  stored. Segment order is not checked beyond MSH first; one message per body (no batches).
* **Character sets**: MSH-18 empty or ``UNICODE UTF-8`` (UTF-8), ``ASCII``, ``8859/1``
  (Latin-1). UTF-16, NUL and other control bytes are refused. ``\\n`` and ``\\r\\n`` are accepted
  as segment terminators (files edited by hand), empty lines are skipped.
* **Escapes**: ``\\F\\ \\S\\ \\R\\ \\T\\ \\E\\ \\Xhh..\\`` and the formatting sequences (``\\.br\\``...)
  are unescaped by the library; any other escape (character-set switches, highlighting,
  application ``\\Z..\\``, a count) is refused *before* the library sees it, because the
  library's unescape logs the whole field (personal data) when it meets one.
* **Times**: HL7 TS to the minute at least. A time without a UTC offset takes MSH-7's offset
  (the HL7 rule: the sender's time zone); if MSH-7 has none either, the message is refused
  (``hl7-timezone``): assuming UTC would be an hour wrong in British Summer Time.

Field mapping (``docs/formats/hl7v2.md`` has the full table):

* the person of PID is the **child** (ADT feeds to this gateway are about children; a birth
  date that is not a child's is still accepted), ref ``child-1``; PID-3 repetitions whose
  assigning authority (CX.4) is ``NHS`` and type (CX.5) ``NH`` -> ``nhs-number`` (check digit
  verified); other repetitions (hospital numbers MR/PI...) are **dropped**: ``local-child-id``
  means a local authority's id, not a hospital's. PID-5 name (the legal ``L`` repetition, else
  the first; given and middle names joined), PID-7 birth date, PID-8 sex, PID-11 addresses,
  PID-13 phone/e-mail, PD1-12 protection indicator ``Y`` -> marker ``confidential-address``.
* NK1 -> a person per segment, role from NK1-3 (``MTH``/``FTH``/``PAR`` parent,
  ``BRO``/``SIS``/``SIB`` sibling, ``OAD`` household-member, anything else carer), ref
  ``{role}-{n}``; NK1-2 name, NK1-4 addresses, NK1-5 phone/e-mail.
* PV1 -> ``health.attendance`` item ``{patient_class, setting, arrived_at, left_at}`` when
  PV1-3, PV1-44 or PV1-45 carry something; PV2-3 admit reason and DG1 diagnoses ->
  ``health.clinical`` items labelled ``R``. MRG-1 NHS numbers -> an ``identity.core`` item
  ``patient-merge`` ``{prior_nhs_numbers}``.
* ``ZCP`` (a local segment agreed with emergency departments that see the CP-IS flag; HL7 v2
  has no standard field for it): ZCP-1 ``CPP`` (child protection plan) or ``LAC`` (looked
  after), ZCP-2 the responsible local authority's three-digit code, ZCP-3 the plan's start
  date -> a ``social-care.status`` item ``cp-is-flag`` ``{status, responsible_la_code,
  start_date}``, and the envelope names ``la-code.<ZCP-2>`` as a recipient: that authority's
  children's social care is told of the attendance (DOMAIN scenario 2). Without a ZCP an
  attendance names no one.
* MSH-10 -> ``sender_reference``; EVN-2 (else MSH-7) -> ``occurred_at``; purpose
  ``safeguarding`` for an ED attendance, ``direct-care`` for the others. MSH-4 (the sender's
  ODS code) is informational here: the gateway authenticates the sender.

``render`` writes A04/A01/A03/A08 for ``health.ed-attendance``/``admission``/``discharge``/
``patient-update``; every other event type raises ``NotRenderable``. It writes only what the
(redacted) message carries and never invents a value.

MUST NOT: quote a value in any error; do I/O or read a clock (the ACK, which needs the time,
is built by ``gateway.mllp``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import hl7
from hl7.util import escape as hl7_escape

from adapters.base import NotRenderable
from adapters.identifiers import NHS_NUMBER, identifier_violation, normalise
from adapters.inputs import to_message
from canonical import DataDictionary, InvalidInput, Message, Violation
from canonical.model import CONFIDENTIAL_ADDRESS, Address, Contact, Identifier, Item, Name, Person

NAME = "hl7v2"
MEDIA_TYPE = "application/hl7-v2"
CONTENT_TYPES = (MEDIA_TYPE, "x-application/hl7-v2+er7")

MAX_BODY_BYTES = 1024 * 1024
"""The MLLP listener's default frame limit; an HTTP body is capped lower by the gateway."""
MAX_SEGMENTS = 500
MAX_FIELD_CHARS = 20_000
"""The canonical model's longest text; a longer field could not be carried anyway."""
MAX_REPETITIONS = 50
MAX_NK1 = 49
"""The canonical model carries at most 50 people: the child and 49 others."""

EVENTS = {
    "A01": "health.admission",
    "A03": "health.discharge",
    "A04": "health.ed-attendance",
    "A08": "health.patient-update",
    "A40": "health.patient-merge",
}
TRIGGERS = {
    "health.ed-attendance": "A04",
    "health.admission": "A01",
    "health.discharge": "A03",
    "health.patient-update": "A08",
}
"""Event types ``render`` can write; any other raises ``NotRenderable``."""
_STRUCTURES = {"A01": "ADT_A01", "A03": "ADT_A03", "A04": "ADT_A01", "A08": "ADT_A01"}
_ATTENDANCE_TYPES = {
    "A01": "admission",
    "A03": "discharge",
    "A04": "ed-attendance",
    "A08": "visit",
    "A40": "visit",
}
_CHARSETS = {"": "utf-8", "UNICODE UTF-8": "utf-8", "ASCII": "ascii", "8859/1": "latin-1"}
_VERSION = re.compile(r"2\.[3-9](\.\d{1,2})?")
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_ALLOWED_ESCAPES = re.compile(r"[FSRTE]|X(?:[0-9A-Fa-f]{2})+|\.(?:br|sp|fi|nf|in|ti|sk|ce)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_DATE_TIME = re.compile(r"(\d{12})(\d{2}(?:\.\d{1,4})?)?(?:([+-])(\d{2})(\d{2}))?")
_BIRTH_DATE = re.compile(r"(\d{8})(?:\d{2,6}(?:\.\d{1,4})?)?(?:[+-]\d{4})?")

_SEX_IN = {"M": "male", "F": "female", "U": "unknown", "O": "other", "A": "other", "N": "unknown"}
_SEX_OUT = {"male": "M", "female": "F", "unknown": "U", "other": "O"}
_CLASS_IN = {
    "E": "emergency",
    "I": "inpatient",
    "O": "outpatient",
    "P": "preadmit",
    "R": "recurring",
    "B": "obstetrics",
    "C": "commercial",
    "N": "not-applicable",
    "U": "unknown",
}
_CLASS_OUT = {v: k for k, v in _CLASS_IN.items()}
_ROLE_IN = {"MTH": "parent", "FTH": "parent", "PAR": "parent", "BRO": "sibling", "SIS": "sibling"}
_ROLE_IN |= {"SIB": "sibling", "OAD": "household-member"}
_ROLE_OUT = {"parent": "PAR", "carer": "CGV", "sibling": "SIB", "household-member": "OAD"}
"""Roles an NK1 can carry. Other people (victim, professional...) are not written to ADT."""
_ADDRESS_USE_IN = {"H": "home", "P": "home", "L": "home", "C": "temporary", "M": "correspondence"}
_ADDRESS_USE_OUT = {"home": "H", "temporary": "C", "correspondence": "M"}
_MAX_ADDRESS_LINES = 4
"""XAD.1-XAD.4 (street, other designation, city, county); lines beyond are joined into XAD.4."""

CHILD_REF = "child-1"
CP_IS_FLAG = "cp-is-flag"
_CP_IS_STATUS_IN = {"CPP": "child-protection-plan", "LAC": "looked-after"}
_CP_IS_STATUS_OUT = {v: k for k, v in _CP_IS_STATUS_IN.items()}
_LA_CODE = re.compile(r"[0-9]{3}")
RENDER_APPLICATION = "MASH-GATEWAY"
RENDER_VERSION = "2.5"


class UnsupportedHl7Message(InvalidInput):
    """A well-formed HL7 v2 message this gateway does not take (another type or trigger, a
    training message, an outpatient A04...). The listener answers ``AR``, not ``AE``: the
    content is not wrong, the message is not for us. Rule ``hl7-unsupported-message``."""

    title = "Unsupported HL7 v2 message"
    type_slug = "unsupported-hl7-message"


@dataclass(frozen=True, slots=True)
class Hl7Header:
    """What the MLLP listener needs before the full parse: who sent it, to whom, its control
    id and type (unescaped values; empty when absent)."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    message_type: str
    trigger: str
    processing_id: str
    version: str


def _invalid(where: str, rule: str, message: str) -> InvalidInput:
    return InvalidInput([Violation(where, rule, message)], adapter=NAME)


def _unsupported(where: str, message: str) -> UnsupportedHl7Message:
    return UnsupportedHl7Message([Violation(where, "hl7-unsupported-message", message)], adapter=NAME)


# ---------------------------------------------------------------------------------------------
# Bytes -> library message (decoding, framing checks, escape guard)


def _decode(body: bytes) -> str:
    """Bytes -> text in MSH-18's character set, every line a segment (``\\r`` separated)."""
    if len(body) > MAX_BODY_BYTES:
        raise _invalid(
            "message", "hl7-too-large", f"an HL7 v2 message must be at most {MAX_BODY_BYTES} bytes"
        )
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in body:
        raise _invalid(
            "message", "hl7-encoding", "UTF-16 and NUL bytes are not accepted; send UTF-8 (MSH-18)"
        )
    body = body.removeprefix(b"\xef\xbb\xbf")
    first = re.split(rb"[\r\n]", body.lstrip(), maxsplit=1)[0]
    # MSH must be readable in any supported charset: Latin-1 decodes every byte, and the
    # separators and MSH-18 are ASCII.
    msh = _parse_msh_line(first.decode("latin-1"))
    declared = _field(msh, 18).upper()
    codec = _CHARSETS.get(declared)
    if codec is None:
        raise _invalid("MSH-18", "hl7-character-set", "supported: empty, UNICODE UTF-8, ASCII, 8859/1")
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        raise _invalid(
            "MSH-18", "hl7-encoding", "the bytes are not in the declared character set (default UTF-8)"
        ) from None
    if _CONTROL.search(text):
        raise _invalid(
            "message", "hl7-encoding", "control characters other than CR, LF and TAB are not allowed"
        )
    return text


def _parse_msh_line(line: str) -> Any:
    """The MSH segment alone, with its separators checked before the library reads them."""
    line = line.strip()
    if not line.startswith("MSH") or len(line) < 9:
        raise _invalid("MSH", "hl7-required-segment", "an HL7 v2 message starts with an MSH segment")
    fs = line[3]
    end = line.find(fs, 4)
    enc = line[4:end] if end != -1 else ""
    seps = fs + enc
    if (
        len(enc) not in (4, 5)
        or len(set(seps)) != len(seps)
        or any(c.isalnum() or c.isspace() or not c.isprintable() for c in seps)
    ):
        raise _invalid(
            "MSH-2", "hl7-syntax", "MSH-1/MSH-2 must be five distinct separator characters, e.g. |^~\\&"
        )
    try:
        return hl7.parse(line)
    except (hl7.HL7Exception, ValueError, IndexError, AssertionError):  # pragma: no cover - checked above
        raise _invalid("MSH", "hl7-syntax", "the MSH segment cannot be read") from None


def _segments(text: str) -> list[str]:
    lines = [ln.strip(" \t") for ln in text.replace("\r\n", "\r").replace("\n", "\r").split("\r")]
    lines = [ln for ln in lines if ln]
    if len(lines) > MAX_SEGMENTS:
        raise _invalid("message", "hl7-too-many-segments", f"at most {MAX_SEGMENTS} segments")
    fs = lines[0][3]
    for n, line in enumerate(lines, start=1):
        if not _SEGMENT_ID.fullmatch(line[:3]) or (len(line) > 3 and line[3] != fs):
            raise _invalid(
                f"segment {n}", "hl7-syntax", "a segment starts with a 3-character id and the field separator"
            )
        if n > 1 and line[:3] == "MSH":
            raise _invalid(f"MSH[{n}]", "hl7-syntax", "one message per body (batches are not accepted)")
    return lines


def _library_message(body: bytes) -> Any:
    lines = _segments(_decode(body))
    try:
        message = hl7.parse("\r".join(lines))
    except (hl7.HL7Exception, ValueError, IndexError, AssertionError):  # pragma: no cover - checked above
        raise _invalid("message", "hl7-syntax", "the message cannot be read as ER7") from None
    _check_fields(message)
    return message


def _check_fields(message: Any) -> None:
    """Length, repetition and escape limits on every field, naming the field, not the value."""
    esc = message.esc
    counts: dict[str, int] = {}
    for seg in message:
        sid = str(seg[0])
        counts[sid] = counts.get(sid, 0) + 1
        for i in range(1, len(seg)):
            if sid == "MSH" and i <= 2:
                continue  # the separators themselves
            where = f"{_seg_name(sid, counts[sid])}-{i}"
            raw = str(seg[i])
            if len(raw) > MAX_FIELD_CHARS:
                raise _invalid(
                    where, "hl7-field-too-long", f"a field must be at most {MAX_FIELD_CHARS} characters"
                )
            if isinstance(seg[i], hl7.Field) and len(seg[i]) > MAX_REPETITIONS:
                raise _invalid(where, "hl7-too-many-repetitions", f"at most {MAX_REPETITIONS} repetitions")
            if not _valid_escapes(raw, esc):
                raise _invalid(
                    where,
                    "hl7-escape",
                    "supported escapes: \\F\\ \\S\\ \\R\\ \\T\\ \\E\\ \\Xhh\\ and \\.br\\ formatting",
                )


def _valid_escapes(raw: str, esc: str) -> bool:
    """Every escape sequence in ``raw`` is terminated and one the library unescapes silently."""
    if esc not in raw:
        return True
    pieces = raw.split(esc)
    return len(pieces) % 2 == 1 and all(_ALLOWED_ESCAPES.fullmatch(p) for p in pieces[1::2])


def _seg_name(sid: str, occurrence: int) -> str:
    return sid if occurrence == 1 else f"{sid}[{occurrence}]"


def _value(seg: Any, field_num: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """One unescaped leaf value, stripped; absent or HL7 null (``""``) -> ``""``."""
    if field_num >= len(seg):
        return ""
    try:
        value = str(seg.extract_field(1, field_num, rep, comp, sub))
    except IndexError:  # the path goes below a leaf: an optional part not sent
        return ""
    value = value.strip()
    return "" if value == '""' else value


def _field(seg_or_msg: Any, field_num: int, comp: int = 1) -> str:
    seg = seg_or_msg[0] if isinstance(seg_or_msg, hl7.Message) else seg_or_msg
    return _value(seg, field_num, 1, comp)


def _repetitions(seg: Any, field_num: int) -> int:
    if field_num >= len(seg):
        return 0
    f = seg[field_num]
    return len(f) if isinstance(f, hl7.Field) else 1


def _checked(where: str, value: str) -> str:
    """Refuse control characters that an escape (``\\X00\\``) smuggled into a value."""
    if _CONTROL.search(value):
        raise _invalid(where, "hl7-escape", "an escape must not produce control characters")
    return value


# ---------------------------------------------------------------------------------------------
# Header (also used by the MLLP listener before the full parse)


def read_header(body: bytes) -> Hl7Header:
    """MSH of ``body``: sender, control id and type. ``InvalidInput`` if MSH cannot be read
    or MSH-10 is empty (a message without a control id cannot be acknowledged or de-duplicated)."""
    text = _decode(body)
    msh = _parse_msh_line(re.split(r"[\r\n]", text.lstrip(), maxsplit=1)[0])
    seg = msh[0]
    for n in range(3, len(seg)):
        raw = str(seg[n])
        if not _valid_escapes(raw, msh.esc):
            raise _invalid(f"MSH-{n}", "hl7-escape", "unsupported escape sequence")
    values = {n: _checked(f"MSH-{n}", _field(seg, n)) for n in (3, 4, 5, 6, 10, 11, 12)}
    if not values[10]:
        raise _invalid("MSH-10", "hl7-required-field", "MSH-10 message control id is required")
    return Hl7Header(
        sending_application=values[3],
        sending_facility=values[4],
        receiving_application=values[5],
        receiving_facility=values[6],
        control_id=values[10],
        message_type=_checked("MSH-9", _field(seg, 9, 1)),
        trigger=_checked("MSH-9", _field(seg, 9, 2)),
        processing_id=values[11],
        version=values[12],
    )


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
            raise _invalid(
                f"{sid}[2]", "hl7-segment-repeated", f"this message type carries one {sid} segment"
            )
        if not found and required:
            raise _invalid(sid, "hl7-required-segment", f"this message type requires a {sid} segment")
        return found[0] if found else None

    def value(self, seg: Any, where: str, field_num: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        return _checked(where, _value(seg, field_num, rep, comp, sub))

    def date_time(self, raw: str, where: str) -> datetime:
        m = _DATE_TIME.fullmatch(raw)
        if m is None:
            raise _invalid(
                where,
                "hl7-datatype",
                "an HL7 date-time to the minute at least: YYYYMMDDHHMM[SS[.SSSS]][+ZZZZ]",
            )
        try:
            naive: datetime = hl7.parse_datetime(m.group(1) + (m.group(2) or ""))
        except ValueError:
            raise _invalid(where, "hl7-datatype", "not a calendar date-time") from None
        if m.group(3):
            hours, minutes = int(m.group(4)), int(m.group(5))
            if hours > 14 or minutes > 59:
                raise _invalid(where, "hl7-datatype", "a UTC offset is between -1400 and +1400")
            # The library's own offset arithmetic gets "-0030" wrong; ours is explicit.
            sign = -1 if m.group(3) == "-" else 1
            tz: timezone | None = timezone(sign * timedelta(hours=hours, minutes=minutes))
        else:
            tz = self.default_tz
            if tz is None:
                raise _invalid(
                    where,
                    "hl7-timezone",
                    "a date-time without a UTC offset needs MSH-7 to carry the sender's offset (e.g. +0000)",
                )
        return naive.replace(tzinfo=tz)

    def birth_date(self, raw: str, where: str) -> str:
        m = _BIRTH_DATE.fullmatch(raw)
        if m is None:
            raise _invalid(where, "hl7-datatype", "an HL7 date: YYYYMMDD (a time part is ignored)")
        try:
            parsed: datetime = hl7.parse_datetime(m.group(1))
        except ValueError:
            raise _invalid(where, "hl7-datatype", "not a calendar date") from None
        return parsed.date().isoformat()


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")


def parse_message(body: bytes, dictionary: DataDictionary) -> Message:
    """ER7 bytes -> a validated canonical message (module docstring: the subset)."""
    p = _Parser(_library_message(body))
    trigger, control_id = _check_header(p)
    msh7 = _field(p.msh, 7)
    if trigger == "A40" and (len(p.segments.get("PID", [])) > 1 or len(p.segments.get("MRG", [])) > 1):
        raise _unsupported("MRG[2]", "one PID/MRG pair per A40 (send one merge per message)")
    pid = p.one("PID", required=True)
    pv1 = p.one("PV1", required=trigger != "A40")
    mrg = p.one("MRG", required=trigger == "A40")
    evn = p.one("EVN", required=False)
    assert pid is not None
    patient_class = _patient_class(pv1, trigger)
    evn2 = _value(evn, 2) if evn is not None else ""
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
    if code not in _CP_IS_STATUS_IN:
        raise _invalid("ZCP-1", "hl7-code", "CPP (child protection plan) or LAC (looked after)")
    la_code = p.value(zcp, "ZCP-2", 2)
    if not _LA_CODE.fullmatch(la_code):
        raise _invalid("ZCP-2", "hl7-datatype", "the responsible local authority's three-digit code")
    flag: dict[str, Any] = {"status": _CP_IS_STATUS_IN[code], "responsible_la_code": la_code}
    start = p.value(zcp, "ZCP-3", 3)
    if start:
        flag["start_date"] = p.birth_date(start, "ZCP-3")
    return flag


def _check_header(p: _Parser) -> tuple[str, str]:
    """MSH-9/11/12 (unsupported -> ``AR``), MSH-10 and MSH-7; sets MSH-7's offset as default.

    Returns the trigger event and the control id.
    """
    msh = p.msh
    kind, trigger = _field(msh, 9, 1), _field(msh, 9, 2)
    if not (kind and trigger):
        raise _invalid("MSH-9", "hl7-required-field", "MSH-9 message type and trigger event are required")
    if kind != "ADT" or trigger not in EVENTS:
        raise _unsupported("MSH-9", "supported: ADT^A01, ADT^A03, ADT^A04 (emergency), ADT^A08, ADT^A40")
    processing = _field(msh, 11)
    if not processing:
        raise _invalid("MSH-11", "hl7-required-field", "MSH-11 processing id is required (P)")
    if processing != "P":
        raise _unsupported("MSH-11", "only production messages (MSH-11 = P) are accepted")
    version = _field(msh, 12)
    if not version:
        raise _invalid("MSH-12", "hl7-required-field", "MSH-12 version id is required")
    if not _VERSION.fullmatch(version):
        raise _unsupported("MSH-12", "supported versions: 2.3 to 2.9")
    control_id = p.value(msh, "MSH-10", 10)
    if not control_id:
        raise _invalid("MSH-10", "hl7-required-field", "MSH-10 message control id is required")
    msh7 = _field(msh, 7)
    if not msh7:
        raise _invalid("MSH-7", "hl7-required-field", "MSH-7 date/time of message is required")
    m7 = _DATE_TIME.fullmatch(msh7)
    if m7 is None or m7.group(3):
        p.default_tz = p.date_time(msh7, "MSH-7").tzinfo  # type: ignore[assignment]
    return trigger, control_id


def _patient_class(pv1: Any | None, trigger: str) -> str:
    if pv1 is None:
        return ""
    code = _value(pv1, 2)
    if not code:
        raise _invalid("PV1-2", "hl7-required-field", "PV1-2 patient class is required")
    if code not in _CLASS_IN:
        raise _invalid("PV1-2", "hl7-code", "a patient class of HL7 table 0004 (E, I, O, P, R, B, C, N, U)")
    if trigger == "A04" and code != "E":
        raise _unsupported("PV1-2", "an A04 is accepted for emergency registrations only (PV1-2 = E)")
    return _CLASS_IN[code]


def _people(p: _Parser, pid: Any) -> list[Person]:
    people = [_child(p, pid, p.one("PD1", required=False))]
    nk1s = p.segments.get("NK1", [])
    if len(nk1s) > MAX_NK1:
        raise _invalid(f"NK1[{MAX_NK1 + 1}]", "hl7-too-many-segments", f"at most {MAX_NK1} NK1 segments")
    counts: dict[str, int] = {}
    for n, nk1 in enumerate(nk1s, start=1):
        people.append(_related(p, nk1, _seg_name("NK1", n), counts))
    return people


def _items(p: _Parser, trigger: str, pv1: Any | None, patient_class: str, mrg: Any | None) -> list[Item]:
    items: list[Item] = []
    about = (CHILD_REF,)
    restricted = frozenset({"R"})
    if pv1 is not None:
        attendance = _attendance(p, pv1, patient_class)
        if attendance is not None:
            items.append(Item("health.attendance", _ATTENDANCE_TYPES[trigger], attendance, about))
    pv2 = p.one("PV2", required=False)
    if pv2 is not None:
        reason = _coded(p, pv2, "PV2-3", 3)
        if reason:
            items.append(Item("health.clinical", "admit-reason", reason, about, restricted))
    for n, dg1 in enumerate(p.segments.get("DG1", []), start=1):
        diagnosis = _diagnosis(p, dg1, _seg_name("DG1", n))
        if diagnosis:
            items.append(Item("health.clinical", "diagnosis", diagnosis, about, restricted))
    if mrg is not None:
        prior = _nhs_numbers(p, mrg, "MRG", 1)
        if not prior:
            raise _invalid(
                "MRG-1",
                "hl7-required-field",
                "MRG-1 must carry the prior NHS number (authority NHS, type NH)",
            )
        items.append(Item("identity.core", "patient-merge", {"prior_nhs_numbers": prior}, about))
    return items


def _nhs_numbers(p: _Parser, seg: Any, sid: str, field_num: int) -> list[str]:
    """The NHS-number repetitions of a CX list (authority ``NHS``, type ``NH``), checked."""
    out: list[str] = []
    for r in range(1, _repetitions(seg, field_num) + 1):
        authority = _value(seg, field_num, r, 4, 1).upper()
        id_type = _value(seg, field_num, r, 5).upper()
        if authority != "NHS" or id_type != "NH":
            continue  # a hospital number: dropped (module docstring)
        where = f"{sid}-{field_num}[{r}].1"
        raw = p.value(seg, where, field_num, r, 1)
        if not raw:
            raise _invalid(where, "hl7-required-field", "an NHS-number repetition needs CX.1")
        violation = identifier_violation(NHS_NUMBER, raw, where)
        if violation is not None:
            raise InvalidInput([violation], adapter=NAME)
        value = normalise(NHS_NUMBER, raw)
        if value not in out:
            out.append(value)
    return out


def _name(p: _Parser, seg: Any, where: str, field_num: int) -> Name | None:
    reps = _repetitions(seg, field_num)
    chosen = next((r for r in range(1, reps + 1) if _value(seg, field_num, r, 7) == "L"), 1)
    family = p.value(seg, where, field_num, chosen, 1, 1)
    given = " ".join(x for x in (p.value(seg, where, field_num, chosen, c) for c in (2, 3)) if x)
    if not family and not given:
        return None
    return Name(given or None, family or None)


def _addresses(p: _Parser, seg: Any, where: str, field_num: int) -> tuple[Address, ...]:
    out: list[Address] = []
    for r in range(1, _repetitions(seg, field_num) + 1):
        street = " ".join(x for x in (p.value(seg, where, field_num, r, 1, s) for s in range(1, 4)) if x)
        lines = [street] + [p.value(seg, where, field_num, r, c) for c in (2, 3, 4)]
        postcode = p.value(seg, where, field_num, r, 5)
        use = _ADDRESS_USE_IN.get(_value(seg, field_num, r, 7))
        kept = tuple(x for x in lines if x)
        if kept or postcode:
            out.append(Address(kept, postcode or None, use))
    return tuple(out)


def _contacts(p: _Parser, seg: Any, where: str, field_num: int) -> tuple[Contact, ...]:
    out: list[Contact] = []
    for r in range(1, _repetitions(seg, field_num) + 1):
        email = p.value(seg, where, field_num, r, 4)
        if email or _value(seg, field_num, r, 3).lower() == "internet":
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
    birth = _value(pid, 7)
    sex_code = _value(pid, 8)
    if sex_code and sex_code.upper() not in _SEX_IN:
        raise _invalid("PID-8", "hl7-code", "an administrative sex of HL7 table 0001 (F, M, O, U, A, N)")
    markers: frozenset[str] = frozenset()
    if pd1 is not None and _value(pd1, 12).upper() == "Y":
        markers = frozenset({CONFIDENTIAL_ADDRESS})
    return Person(
        ref=CHILD_REF,
        role="child",
        identifiers=tuple(Identifier(s, v) for s, v in identifiers),
        name=_name(p, pid, "PID-5", 5),
        birth_date=p.birth_date(birth, "PID-7") if birth else None,
        sex=_SEX_IN[sex_code.upper()] if sex_code else None,
        addresses=_addresses(p, pid, "PID-11", 11),
        contacts=_contacts(p, pid, "PID-13", 13),
        markers=markers,
    )


def _related(p: _Parser, nk1: Any, sid: str, counts: dict[str, int]) -> Person:
    role = _ROLE_IN.get(_value(nk1, 3).upper(), "carer")
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
    arrived, left = _value(pv1, 44), _value(pv1, 45)
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
    for comp, value in enumerate(("ADT", trigger, _STRUCTURES[trigger]), start=1):
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
    status = _CP_IS_STATUS_OUT.get(str(flag.data.get("status"))) if flag is not None else None
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
        if person is child or person.role not in _ROLE_OUT:
            continue
        n += 1
        nk1 = w.segment("NK1")
        w.put(nk1, str(n), 1)
        _write_name(w, nk1, 2, person.name)
        w.put(nk1, _ROLE_OUT[person.role], 3, 1, 1)
        _write_addresses(w, nk1, 4, person.addresses)
        _write_contacts(w, nk1, 5, person.contacts)


def _write_visit(w: _Writer, items: Sequence[Item], trigger: str) -> None:
    attendance = next((i for i in items if i.category == "health.attendance"), None)
    pv1 = w.segment("PV1")
    w.put(pv1, "1", 1)
    data = attendance.data if attendance is not None else {}
    code = _CLASS_OUT.get(str(data.get("patient_class", "")))
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
    w.put(pid, _SEX_OUT.get(child.sex or ""), 8)
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
        lines = list(address.lines[: _MAX_ADDRESS_LINES - 1])
        rest = address.lines[_MAX_ADDRESS_LINES - 1 :]
        if rest:
            lines.append(", ".join(rest))
        for comp, line in enumerate(lines, start=1):
            w.put(seg, line, field_num, r, comp)
        w.put(seg, address.postcode, field_num, r, 5)
        w.put(seg, _ADDRESS_USE_OUT.get(address.use or ""), field_num, r, 7)


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


class Hl7v2Adapter:
    """HL7 v2 ADT (ER7). Pure: no I/O, no clock."""

    name: str = NAME
    content_types: tuple[str, ...] = CONTENT_TYPES
    media_type: str = MEDIA_TYPE

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        return parse_message(body, dictionary)

    def render(self, message: Message) -> bytes:
        return render_message(message)
