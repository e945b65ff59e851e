"""CTF XML -> canonical messages, one per pupil (the mapping is in the package docstring
and ``docs/formats/ctf.md``). Errors name the element path and the rule, never the value."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from adapters.ctf.codes import (
    _BS7666,
    _CODE3,
    BOOLEAN,
    CHILD_REF,
    COUNT,
    DATE,
    DOCUMENT_NAME,
    EVENT_TYPE,
    LINE_LEN,
    MAX_CONTACT_DETAILS,
    MAX_CONTACTS,
    MAX_LINES,
    MAX_PUPILS,
    MAX_VIOLATIONS,
    NAME,
    NAME_LEN,
    POSTCODE_LEN,
    PUPILS_PATH,
    PURPOSE,
    RANK,
    RELATIONSHIP_ROLES,
    SCHOOL_FIELDS,
    SEN_PROVISION,
    SEN_TYPES,
    SEX_CODES,
    YEAR,
    YEAR_FIELDS,
)
from adapters.identifiers import UPN, identifier_violation, normalise
from adapters.inputs import to_message
from adapters.safe_xml import local as local_name
from adapters.safe_xml import parse_xml
from canonical import DataDictionary, InvalidInput, Message, Violation


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
    name = _name(r, kids, path, required=True)
    if name:
        child["name"] = name
    birth = r.date(kids, path, "DOB", required=True)
    if birth is not None:
        child["birth_date"] = birth
    sex_element = "Sex" if "Sex" in kids or "Gender" not in kids else "Gender"
    sex = r.code(kids, path, sex_element, SEX_CODES, "sex-code")
    if sex is not None:
        child["sex"] = SEX_CODES[sex]
    address = _address(r, kids, path)
    if address:
        child["addresses"] = [address]
    details = _contact_details(r, kids, path)
    if details:
        child["contacts"] = details

    items: list[dict[str, Any]] = []
    if header.transfer:
        items.append(_item("event.summary", "school-transfer", dict(header.transfer)))
    looked_after = _looked_after(r, kids, path)
    if looked_after is not None:
        items.append(_item("social-care.status", "looked-after-status", looked_after))
    items.extend(_sen(r, kids, path))
    items.extend(_attendance(r, kids, path))
    people = [child, *_contacts(r, kids, path)]
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


def _item(category: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"category": category, "type": kind, "about": [CHILD_REF], "data": data}


def _name(r: Reader, kids: Mapping[str, list[ET.Element]], path: str, *, required: bool) -> dict[str, str]:
    name: dict[str, str] = {}
    forename = r.text(kids, path, "Forename", required=required)
    surname = r.text(kids, path, "Surname", required=required)
    if forename is not None:
        name["given"] = forename
    if surname is not None:
        name["family"] = surname
    return name


def _address(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> dict[str, Any] | None:
    element = r.one(kids, path, "Address")
    if element is None:
        return None
    apath, akids = f"{path}/Address", r.kids(element)
    lines: list[str] = []
    bs7666 = r.one(akids, apath, "BS7666Address")
    free = r.one(akids, apath, "AddressLines")
    if bs7666 is not None and free is not None:
        r.add(apath, "one-address-form", "use BS7666Address or AddressLines, not both")
    elif bs7666 is not None:
        bpath, bkids = f"{apath}/BS7666Address", r.kids(bs7666)
        parts = {tag: r.text(bkids, bpath, tag, max_length=LINE_LEN) for tag in _BS7666}
        # "10" + "Example Street" is one line on an envelope; the town is not repeated
        # when the post town is the same.
        number_street = " ".join(p for p in (parts["PAON"], parts["Street"]) if p)
        if parts["PostTown"] == parts["Town"]:
            parts["PostTown"] = None
        ordered = [parts["SAON"], number_street, parts["Locality"], parts["Town"]]
        ordered += [parts["AdministrativeArea"], parts["PostTown"]]
        lines = [p for p in ordered if p]
        if len(lines) > MAX_LINES:
            # Joined, not dropped: the fifth line keeps the rest.
            lines = [*lines[: MAX_LINES - 1], ", ".join(lines[MAX_LINES - 1 :])]
        if any(len(line) > LINE_LEN for line in lines):
            r.add(bpath, "max-length", f"an address line would be longer than {LINE_LEN} characters")
            lines = []
    elif free is not None:
        fpath, fkids = f"{apath}/AddressLines", r.kids(free)
        for n in range(1, MAX_LINES + 1):
            line = r.text(fkids, fpath, f"AddressLine{n}", max_length=LINE_LEN)
            if line is not None:
                lines.append(line)
    postcode = r.text(akids, apath, "PostCode", max_length=POSTCODE_LEN)
    address: dict[str, Any] = {}
    if lines or postcode:
        address["use"] = "home"
    if lines:
        address["lines"] = lines
    if postcode is not None:
        address["postcode"] = postcode
    return address or None


def _contact_details(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, str]]:
    details: list[dict[str, str]] = []
    phones = r.one(kids, path, "Phones")
    if phones is not None:
        ppath = f"{path}/Phones"
        for n, phone in enumerate(r.kids(phones).get("Phone", []), start=1):
            # Length only: school records hold "ext 12" and the like, and one odd phone
            # number must not hold up a whole year group's transfer.
            number = r.text(r.kids(phone), f"{ppath}/Phone[{n}]", "PhoneNo", required=True, max_length=35)
            if number is not None:
                details.append({"kind": "phone", "value": number})
    email = r.text(kids, path, "Email", max_length=LINE_LEN)
    if email is not None:
        details.append({"kind": "email", "value": email})
    if len(details) > MAX_CONTACT_DETAILS:
        r.add(path, "max-contact-details", f"more than {MAX_CONTACT_DETAILS} phone numbers and e-mails")
        return []
    return details


def _contacts(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
    container = r.one(kids, path, "Contacts")
    if container is None:
        return []
    contacts = r.kids(container).get("Contact", [])
    if len(contacts) > MAX_CONTACTS:
        r.add(f"{path}/Contacts", "max-contacts", f"more than {MAX_CONTACTS} contacts for one pupil")
        return []
    people: list[dict[str, Any]] = []
    for n, contact in enumerate(contacts, start=1):
        cpath, ckids = f"{path}/Contacts/Contact[{n}]", r.kids(contact)
        relationship = r.text(
            ckids, cpath, "Relationship", required=True, pattern=_CODE3, rule="relationship-code",
            expected="a three-letter relationship code",
        )  # fmt: skip
        name = _name(r, ckids, cpath, required=False)
        details = _contact_details(r, ckids, cpath)
        role = RELATIONSHIP_ROLES.get(relationship or "")
        if role is None:
            continue  # not a parent or carer: no canonical role, not carried (see module doc)
        person: dict[str, Any] = {"ref": f"contact-{len(people) + 1}", "role": role}
        if name:
            person["name"] = name
        if details:
            person["contacts"] = details
        people.append(person)
    return people


def _looked_after(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> dict[str, Any] | None:
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


def _sen(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
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
        items.append(_item("education.sen", "sen-provision", data))
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
            items.append(_item("education.sen", "sen-needs", {"needs": [k for _, k in sorted(ranked)]}))
    return items


def _attendance(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
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
        items.append(_item("education.attendance", "attendance-year", data))
    return items
