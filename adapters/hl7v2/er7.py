"""ER7 bytes -> python-hl7 message: decoding, segment and escape guards, field access, the
header the MLLP listener reads first, and the parser state. Errors name the HL7 location
(``PID-3[2].1``) and a rule, never a value."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import hl7

from adapters.hl7v2.codes import (
    ALLOWED_ESCAPES,
    CHARSETS,
    CONTROL,
    MAX_BODY_BYTES,
    MAX_FIELD_CHARS,
    MAX_REPETITIONS,
    MAX_SEGMENTS,
    NAME,
    SEGMENT_ID,
)
from canonical import InvalidInput, Violation


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


def invalid(where: str, rule: str, message: str) -> InvalidInput:
    return InvalidInput([Violation(where, rule, message)], adapter=NAME)


def unsupported_message(where: str, message: str) -> UnsupportedHl7Message:
    return UnsupportedHl7Message([Violation(where, "hl7-unsupported-message", message)], adapter=NAME)


# ---------------------------------------------------------------------------------------------
# Bytes -> library message (decoding, framing checks, escape guard)


def _decode(body: bytes) -> str:
    """Bytes -> text in MSH-18's character set, every line a segment (``\\r`` separated)."""
    if len(body) > MAX_BODY_BYTES:
        raise invalid("message", "hl7-too-large", f"an HL7 v2 message must be at most {MAX_BODY_BYTES} bytes")
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in body:
        raise invalid("message", "hl7-encoding", "UTF-16 and NUL bytes are not accepted; send UTF-8 (MSH-18)")
    body = body.removeprefix(b"\xef\xbb\xbf")
    first = re.split(rb"[\r\n]", body.lstrip(), maxsplit=1)[0]
    # MSH must be readable in any supported charset: Latin-1 decodes every byte, and the
    # separators and MSH-18 are ASCII.
    msh = _parse_msh_line(first.decode("latin-1"))
    declared = field_value(msh, 18).upper()
    codec = CHARSETS.get(declared)
    if codec is None:
        raise invalid("MSH-18", "hl7-character-set", "supported: empty, UNICODE UTF-8, ASCII, 8859/1")
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        raise invalid(
            "MSH-18", "hl7-encoding", "the bytes are not in the declared character set (default UTF-8)"
        ) from None
    if CONTROL.search(text):
        raise invalid(
            "message", "hl7-encoding", "control characters other than CR, LF and TAB are not allowed"
        )
    return text


def _parse_msh_line(line: str) -> Any:
    """The MSH segment alone, with its separators checked before the library reads them."""
    line = line.strip()
    if not line.startswith("MSH") or len(line) < 9:
        raise invalid("MSH", "hl7-required-segment", "an HL7 v2 message starts with an MSH segment")
    fs = line[3]
    end = line.find(fs, 4)
    enc = line[4:end] if end != -1 else ""
    seps = fs + enc
    if (
        len(enc) not in (4, 5)
        or len(set(seps)) != len(seps)
        or any(c.isalnum() or c.isspace() or not c.isprintable() for c in seps)
    ):
        raise invalid(
            "MSH-2", "hl7-syntax", "MSH-1/MSH-2 must be five distinct separator characters, e.g. |^~\\&"
        )
    try:
        return hl7.parse(line)
    except (hl7.HL7Exception, ValueError, IndexError, AssertionError):  # pragma: no cover - checked above
        raise invalid("MSH", "hl7-syntax", "the MSH segment cannot be read") from None


def _segments(text: str) -> list[str]:
    lines = [ln.strip(" \t") for ln in text.replace("\r\n", "\r").replace("\n", "\r").split("\r")]
    lines = [ln for ln in lines if ln]
    if len(lines) > MAX_SEGMENTS:
        raise invalid("message", "hl7-too-many-segments", f"at most {MAX_SEGMENTS} segments")
    fs = lines[0][3]
    for n, line in enumerate(lines, start=1):
        if not SEGMENT_ID.fullmatch(line[:3]) or (len(line) > 3 and line[3] != fs):
            raise invalid(
                f"segment {n}", "hl7-syntax", "a segment starts with a 3-character id and the field separator"
            )
        if n > 1 and line[:3] == "MSH":
            raise invalid(f"MSH[{n}]", "hl7-syntax", "one message per body (batches are not accepted)")
    return lines


def library_message(body: bytes) -> Any:
    lines = _segments(_decode(body))
    try:
        message = hl7.parse("\r".join(lines))
    except (hl7.HL7Exception, ValueError, IndexError, AssertionError):  # pragma: no cover - checked above
        raise invalid("message", "hl7-syntax", "the message cannot be read as ER7") from None
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
            where = f"{segment_name(sid, counts[sid])}-{i}"
            raw = str(seg[i])
            if len(raw) > MAX_FIELD_CHARS:
                raise invalid(
                    where, "hl7-field-too-long", f"a field must be at most {MAX_FIELD_CHARS} characters"
                )
            if isinstance(seg[i], hl7.Field) and len(seg[i]) > MAX_REPETITIONS:
                raise invalid(where, "hl7-too-many-repetitions", f"at most {MAX_REPETITIONS} repetitions")
            if not _valid_escapes(raw, esc):
                raise invalid(
                    where,
                    "hl7-escape",
                    "supported escapes: \\F\\ \\S\\ \\R\\ \\T\\ \\E\\ \\Xhh\\ and \\.br\\ formatting",
                )


def _valid_escapes(raw: str, esc: str) -> bool:
    """Every escape sequence in ``raw`` is terminated and one the library unescapes silently."""
    if esc not in raw:
        return True
    pieces = raw.split(esc)
    return len(pieces) % 2 == 1 and all(ALLOWED_ESCAPES.fullmatch(p) for p in pieces[1::2])


def segment_name(sid: str, occurrence: int) -> str:
    return sid if occurrence == 1 else f"{sid}[{occurrence}]"


def value_at(seg: Any, field_num: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """One unescaped leaf value, stripped; absent or HL7 null (``""``) -> ``""``."""
    if field_num >= len(seg):
        return ""
    try:
        value = str(seg.extract_field(1, field_num, rep, comp, sub))
    except IndexError:  # the path goes below a leaf: an optional part not sent
        return ""
    value = value.strip()
    return "" if value == '""' else value


def field_value(seg_or_msg: Any, field_num: int, comp: int = 1) -> str:
    seg = seg_or_msg[0] if isinstance(seg_or_msg, hl7.Message) else seg_or_msg
    return value_at(seg, field_num, 1, comp)


def repetition_count(seg: Any, field_num: int) -> int:
    if field_num >= len(seg):
        return 0
    f = seg[field_num]
    return len(f) if isinstance(f, hl7.Field) else 1


def checked_value(where: str, value: str) -> str:
    """Refuse control characters that an escape (``\\X00\\``) smuggled into a value."""
    if CONTROL.search(value):
        raise invalid(where, "hl7-escape", "an escape must not produce control characters")
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
            raise invalid(f"MSH-{n}", "hl7-escape", "unsupported escape sequence")
    values = {n: checked_value(f"MSH-{n}", field_value(seg, n)) for n in (3, 4, 5, 6, 10, 11, 12)}
    if not values[10]:
        raise invalid("MSH-10", "hl7-required-field", "MSH-10 message control id is required")
    return Hl7Header(
        sending_application=values[3],
        sending_facility=values[4],
        receiving_application=values[5],
        receiving_facility=values[6],
        control_id=values[10],
        message_type=checked_value("MSH-9", field_value(seg, 9, 1)),
        trigger=checked_value("MSH-9", field_value(seg, 9, 2)),
        processing_id=values[11],
        version=values[12],
    )
