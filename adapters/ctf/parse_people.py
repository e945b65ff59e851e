"""CTF pupil and contact details -> canonical person fields: names, the home address
(``BS7666Address`` or ``AddressLines``), phones and e-mail, and the pupil's parents and
carers (``Contacts/Contact``). Other contacts have no canonical role and are not carried.
Violations name the element path and the rule, never the value."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from adapters.ctf.codes import (
    _BS7666,
    _CODE3,
    LINE_LEN,
    MAX_CONTACT_DETAILS,
    MAX_CONTACTS,
    MAX_LINES,
    POSTCODE_LEN,
    RELATIONSHIP_ROLES,
)
from adapters.ctf.reader import Reader


def read_name(
    r: Reader, kids: Mapping[str, list[ET.Element]], path: str, *, required: bool
) -> dict[str, str]:
    name: dict[str, str] = {}
    forename = r.text(kids, path, "Forename", required=required)
    surname = r.text(kids, path, "Surname", required=required)
    if forename is not None:
        name["given"] = forename
    if surname is not None:
        name["family"] = surname
    return name


def read_address(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> dict[str, Any] | None:
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


def read_contact_details(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, str]]:
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


def read_contacts(r: Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
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
        name = read_name(r, ckids, cpath, required=False)
        details = read_contact_details(r, ckids, cpath)
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
