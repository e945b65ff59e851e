"""Canonical message -> a one-pupil CTF: writes only what the redacted message carries;
built with ``xml.etree.ElementTree`` (only parsing needs ``defusedxml``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from adapters.base import NotRenderable
from adapters.ctf.codes import (
    CTF_VERSION,
    DOCUMENT_NAME,
    DOCUMENT_QUALIFIER,
    MAX_LINES,
    NAME,
    ROLE_RELATIONSHIP,
    SCHOOL_FIELDS,
    SEX_OUT,
    SUPPLIER_ID,
    YEAR_FIELDS,
)
from adapters.identifiers import UPN
from canonical import Message, Person

# -- render ------------------------------------------------------------------------------


def render_pupil(message: Message) -> bytes:
    children = message.children()
    kind = f"{message.envelope.event_type} as {NAME}"
    if len(children) != 1:
        raise NotRenderable(f"{kind}: a CTF carries exactly one pupil per message")
    child = children[0]
    upn = next((i.value for i in child.identifiers if i.system == UPN), None)
    if upn is None:
        raise NotRenderable(f"{kind}: the pupil has no UPN the recipient may see")
    items = [i for i in message.items if not i.about or child.ref in i.about]

    root = ET.Element("CTfile")
    _render_header(ET.SubElement(root, "Header"), message, items)
    pupil = ET.SubElement(ET.SubElement(root, "CTFpupilData"), "Pupil")
    _sub(pupil, "UPN", upn)
    if child.name is not None:
        _sub(pupil, "Surname", child.name.family)
        _sub(pupil, "Forename", child.name.given)
    _sub(pupil, "DOB", child.birth_date)
    # "other" has no CTF code: left out rather than written as something it is not.
    _sub(pupil, "Sex", SEX_OUT.get(child.sex or ""))
    status = next(
        (
            i.data
            for i in items
            if i.category == "social-care.status" and isinstance(i.data.get("looked_after"), bool)
        ),
        None,
    )
    if status is not None:
        looked_after = ET.SubElement(pupil, "LookedAfter")
        _sub(looked_after, "InCare", "true" if status["looked_after"] else "false")
        _sub(looked_after, "CareAuthority", status.get("care_authority"))
    _render_sen(pupil, items)
    _render_address(pupil, child)
    _render_details(pupil, child)
    _render_contacts(pupil, [p for p in message.people if p.role in ROLE_RELATIONSHIP])
    _render_attendance(pupil, items)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _render_header(header: ET.Element, message: Message, items: list[Any]) -> None:
    _sub(header, "DocumentName", DOCUMENT_NAME)
    _sub(header, "CTFversion", CTF_VERSION)
    _sub(header, "DateTime", message.envelope.occurred_at)
    _sub(header, "DocumentQualifier", DOCUMENT_QUALIFIER)
    _sub(header, "SupplierID", SUPPLIER_ID)
    transfer = _first(items, "event.summary", "school-transfer")
    if transfer is None:
        return
    for container, prefix in (("SourceSchool", "source"), ("DestSchool", "dest")):
        fields = [(tag, transfer.get(f"{prefix}_{key}")) for tag, key, _ in SCHOOL_FIELDS]
        fields.append(("SchoolName", transfer.get(f"{prefix}_school_name")))
        if any(value is not None for _, value in fields):
            school = ET.SubElement(header, container)
            for tag, value in fields:
                _sub(school, tag, value)


def _render_contacts(pupil: ET.Element, contacts: list[Person]) -> None:
    if not contacts:
        return
    container = ET.SubElement(pupil, "Contacts")
    for n, person in enumerate(contacts, start=1):
        contact = ET.SubElement(container, "Contact")
        _sub(contact, "Order", str(n))
        if person.name is not None:
            _sub(contact, "Surname", person.name.family)
            _sub(contact, "Forename", person.name.given)
        _sub(contact, "Relationship", ROLE_RELATIONSHIP[person.role])
        _render_details(contact, person)


def _render_attendance(pupil: ET.Element, items: list[Any]) -> None:
    years = [i.data for i in items if i.category == "education.attendance" and i.type == "attendance-year"]
    if not years:
        return
    attendance = ET.SubElement(pupil, "Attendance")
    for data in years:
        year = ET.SubElement(attendance, "YearData")
        _sub(year, "Year", data.get("year"))
        _sub(year, "LEA", data.get("lea"))
        _sub(year, "Estab", data.get("estab"))
        for tag, key in YEAR_FIELDS:
            _sub(year, tag, data.get(key))


def _sub(parent: ET.Element, tag: str, value: Any) -> None:
    """A child element for a present value; an absent value is an absent element."""
    if value is None:
        return
    ET.SubElement(parent, tag).text = value if isinstance(value, str) else str(value)


def _first(items: Iterable[Any], category: str, kind: str) -> Mapping[str, Any] | None:
    return next((i.data for i in items if i.category == category and i.type == kind), None)


def _render_sen(pupil: ET.Element, items: list[Any]) -> None:
    records = [i.data for i in items if i.category == "education.sen" and i.type == "sen-provision"]
    needs = _first(items, "education.sen", "sen-needs")
    if not records and needs is None:
        return
    history = ET.SubElement(pupil, "SENhistory")
    for data in records:
        record = ET.SubElement(history, "SEN")
        _sub(record, "StartDate", data.get("start_date"))
        _sub(record, "EndDate", data.get("end_date"))
        _sub(record, "SENprovision", data.get("provision"))
    listed = needs.get("needs") if needs is not None else None
    if isinstance(listed, list) and listed:
        container = ET.SubElement(history, "SENneeds")
        for rank, kind in enumerate(listed, start=1):
            need = ET.SubElement(container, "SENneed")
            _sub(need, "SENtypeRank", str(rank))
            _sub(need, "SENtype", kind)


def _render_address(pupil: ET.Element, person: Person) -> None:
    if not person.addresses:
        return
    # A CTF has one address per pupil: the home address if there is one, else the first.
    address = next((a for a in person.addresses if a.use == "home"), person.addresses[0])
    element = ET.SubElement(pupil, "Address")
    if address.lines:
        lines = list(address.lines)
        if len(lines) > MAX_LINES:
            lines = [*lines[: MAX_LINES - 1], ", ".join(lines[MAX_LINES - 1 :])]
        free = ET.SubElement(element, "AddressLines")
        for n, line in enumerate(lines, start=1):
            _sub(free, f"AddressLine{n}", line)
    _sub(element, "PostCode", address.postcode)


def _render_details(parent: ET.Element, person: Person) -> None:
    phones = [c.value for c in person.contacts if c.kind == "phone"]
    emails = [c.value for c in person.contacts if c.kind == "email"]
    if phones:
        container = ET.SubElement(parent, "Phones")
        for number in phones:
            _sub(ET.SubElement(container, "Phone"), "PhoneNo", number)
    # CTF has one e-mail element per person; the first is written.
    _sub(parent, "Email", emails[0] if emails else None)
