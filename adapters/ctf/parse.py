"""CTF XML -> canonical messages, one per pupil (the mapping is in the package docstring
and ``docs/formats/ctf.md``): the file and its header, and each pupil's document. The
element checks are ``adapters.ctf.reader.Reader``'s; the pupil's details and records are
read by ``parse_people`` and ``parse_records``. Errors name the element path and the rule,
never the value."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.ctf.codes import (
    CHILD_REF,
    DOCUMENT_NAME,
    EVENT_TYPE,
    MAX_PUPILS,
    MAX_VIOLATIONS,
    NAME,
    PUPILS_PATH,
    PURPOSE,
    SCHOOL_FIELDS,
    SEX_CODES,
)
from adapters.ctf.parse_people import read_address, read_contact_details, read_contacts, read_name
from adapters.ctf.parse_records import child_item, read_attendance, read_looked_after, read_sen
from adapters.ctf.reader import Reader
from adapters.identifiers import UPN, identifier_violation, normalise
from adapters.inputs import to_message
from adapters.safe_xml import local as local_name
from adapters.safe_xml import parse_xml
from canonical import DataDictionary, InvalidInput, Message, Violation

__all__ = ["Header", "Reader", "pupil_document", "read_file", "read_messages"]


@dataclass(frozen=True, slots=True)
class Header:
    occurred_at: str
    reference_base: str
    transfer: dict[str, Any]
    """``school-transfer`` item data; empty when the file names neither school."""


# -- parse -------------------------------------------------------------------------------


def read_file(body: bytes) -> tuple[Header, list[ET.Element]]:
    root = parse_xml(body, NAME)
    if local_name(root.tag) != "CTfile":
        raise InvalidInput([Violation("/", "ctf-root", "the root element must be CTfile")], adapter=NAME)
    r = Reader()
    top = r.kids(root)
    header_el = r.one(top, "/CTfile", "Header", required=True)
    header = _header(r, header_el) if header_el is not None else None
    data = r.one(top, "/CTfile", "CTFpupilData", required=True)
    pupils = r.kids(data).get("Pupil", []) if data is not None else []
    if data is not None and not pupils:
        r.add(f"{PUPILS_PATH}/Pupil", "ctf-no-pupils", "the file must carry at least one Pupil")
    if len(pupils) > MAX_PUPILS:
        r.add(f"{PUPILS_PATH}/Pupil", "max-pupils", f"more than {MAX_PUPILS} pupils in one file")
    if r.violations or header is None:
        raise InvalidInput(r.violations[:MAX_VIOLATIONS], adapter=NAME)
    return header, pupils


def _header(r: Reader, element: ET.Element) -> Header | None:
    path = "/CTfile/Header"
    kids = r.kids(element)
    name = r.text(kids, path, "DocumentName", required=True)
    if name is not None and name != DOCUMENT_NAME:
        r.add(f"{path}/DocumentName", "ctf-document-name", f"must be '{DOCUMENT_NAME}'")
    raw = r.text(kids, path, "DateTime", required=True, max_length=40)
    moment: datetime | None = None
    if raw is not None:
        try:
            if "T" not in raw:
                raise ValueError
            moment = datetime.fromisoformat(raw)
        except ValueError:
            r.add(f"{path}/DateTime", "date-time", "must be a date and time, YYYY-MM-DDThh:mm:ss[+hh:mm]")
    transfer: dict[str, Any] = {}
    source_id = "unknown"
    for container, prefix in (("SourceSchool", "source"), ("DestSchool", "dest")):
        school = r.one(kids, path, container)
        if school is None:
            continue
        spath, skids = f"{path}/{container}", r.kids(school)
        for tag, key, pattern in SCHOOL_FIELDS:
            value = r.text(skids, spath, tag, pattern=pattern, expected=f"a valid {tag} code")
            if value is not None:
                transfer[f"{prefix}_{key}"] = value
        school_name = r.text(skids, spath, "SchoolName", max_length=100)
        if school_name is not None:
            transfer[f"{prefix}_school_name"] = school_name
    if "source_lea" in transfer and "source_estab" in transfer:
        source_id = transfer["source_lea"] + transfer["source_estab"]
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Header(moment.isoformat(), f"ctf:{source_id}:{moment:%Y%m%dT%H%M%S}", transfer)


def read_messages(
    header: Header, pupils: list[ET.Element], dictionary: DataDictionary
) -> tuple[Message, ...]:
    r = Reader()
    documents = [pupil_document(r, header, pupil, i) for i, pupil in enumerate(pupils, start=1)]
    if r.violations:
        raise InvalidInput(r.violations[:MAX_VIOLATIONS], adapter=NAME)
    messages: list[Message] = []
    problems: list[Violation] = []
    for i, document in enumerate(documents, start=1):
        try:
            messages.append(to_message(document, dictionary, NAME))
        except InvalidInput as exc:
            # The native checks should leave nothing for the canonical ones; if they do,
            # say which pupil it was.
            problems.extend(
                Violation(f"{PUPILS_PATH}/Pupil[{i}] {v.field}", v.rule, v.message) for v in exc.violations
            )
    if problems:
        raise InvalidInput(problems[:MAX_VIOLATIONS], adapter=NAME)
    return tuple(messages)


def pupil_document(r: Reader, header: Header, pupil: ET.Element, index: int) -> dict[str, Any]:
    path = f"{PUPILS_PATH}/Pupil[{index}]"
    kids = r.kids(pupil)
    child: dict[str, Any] = {"ref": CHILD_REF, "role": "child"}
    upn = r.text(kids, path, "UPN", required=True, max_length=64)
    if upn is not None:
        problem = identifier_violation(UPN, upn, f"{path}/UPN")
        if problem is not None:
            r.violations.append(problem)
        else:
            child["identifiers"] = [{"system": UPN, "value": normalise(UPN, upn)}]
    name = read_name(r, kids, path, required=True)
    if name:
        child["name"] = name
    birth = r.date(kids, path, "DOB", required=True)
    if birth is not None:
        child["birth_date"] = birth
    sex_element = "Sex" if "Sex" in kids or "Gender" not in kids else "Gender"
    sex = r.code(kids, path, sex_element, SEX_CODES, "sex-code")
    if sex is not None:
        child["sex"] = SEX_CODES[sex]
    address = read_address(r, kids, path)
    if address:
        child["addresses"] = [address]
    details = read_contact_details(r, kids, path)
    if details:
        child["contacts"] = details

    items: list[dict[str, Any]] = []
    if header.transfer:
        items.append(child_item("event.summary", "school-transfer", dict(header.transfer)))
    looked_after = read_looked_after(r, kids, path)
    if looked_after is not None:
        items.append(child_item("social-care.status", "looked-after-status", looked_after))
    items.extend(read_sen(r, kids, path))
    items.extend(read_attendance(r, kids, path))
    people = [child, *read_contacts(r, kids, path)]
    envelope: dict[str, Any] = {
        "event_type": EVENT_TYPE,
        "occurred_at": header.occurred_at,
        "purpose": PURPOSE,
        "sender_reference": f"{header.reference_base}:{index}",
    }
    if "dest_urn" in header.transfer:
        # The destination school, by URN: the gateway resolves it to the partner known by
        # that URN (consent.routing), and refuses the file if there is none.
        envelope["recipients"] = [f"school-urn.{header.transfer['dest_urn']}"]
    return {
        "envelope": envelope,
        "people": people,
        "items": items,
    }
