"""Common Transfer File (CTF) XML: a school's pupil records for the next school
(``application/vnd.gateway.ctf+xml``), one canonical message per pupil.

Supported subset (element names of the DfE CTF specification, section 4.3; every element
outside it is ignored on parse - not read, not carried - and never rendered):

* ``CTfile/Header``: ``DocumentName`` (must be ``Common Transfer File``), ``DateTime``
  (required), ``SourceSchool`` and ``DestSchool`` (``LEA``, ``Estab``, ``URN``,
  ``SchoolName``). ``CTFversion``, ``DocumentQualifier`` and ``SupplierID`` are read past.
* ``CTfile/CTFpupilData/Pupil``, per pupil: ``UPN`` (required, check letter verified),
  ``Surname``, ``Forename``, ``DOB`` (required), ``Sex`` (or ``Gender`` in files before
  CTF 24: ``M``/``F``/``U``), ``LookedAfter`` (``InCare``, ``CareAuthority``; also accepted
  inside ``BasicDetails``), ``SENhistory`` (``SEN`` records and ranked ``SENneeds``),
  ``Address`` (``BS7666Address`` or ``AddressLines``, ``PostCode``), ``Phones``, ``Email``,
  ``Contacts/Contact`` (parents and carers: ``Relationship``, names, phones, e-mail) and
  ``Attendance/YearData`` (sessions possible, authorised and unauthorised absence).

Mapping (``docs/formats/ctf.md`` has the field-by-field table):

* envelope: event ``education.pupil-transfer``, purpose ``education-transfer``,
  ``occurred_at`` = ``Header/DateTime``. A ``DateTime`` without an offset is read as UTC
  (adapters read no clock and no time-zone database; the file's creation time can be an
  hour early in British Summer Time, which no decision depends on). ``sender_reference``
  = ``ctf:<source LA><source estab>:<DateTime as YYYYMMDDTHHMMSS>:<pupil index>``.
* ``SourceSchool``/``DestSchool`` -> an ``event.summary`` item ``school-transfer``. The
  adapter knows no partner ids: routing to the destination school by its URN is the
  gateway's job, not this module's.
* ``LookedAfter`` -> ``social-care.status`` item ``looked-after-status``; ``SENhistory`` ->
  ``education.sen`` items (special category data); ``Attendance`` ->
  ``education.attendance`` items; ``Address`` -> ``identity.address``; phones and e-mail ->
  ``identity.contact``; contacts whose relationship is a parent or carer code -> people with
  role ``parent``/``carer``. Other contacts (relatives, childminders, doctors...) have no
  canonical role and are not carried.

Errors name the element by path with 1-based indexes
(``/CTfile/CTFpupilData/Pupil[3]/UPN``) and the rule, never the value.

``render`` writes a one-pupil CTF holding exactly what the (redacted) message carries: an
absent category is an absent element. It needs exactly one child with a UPN (a CTF
identifies a pupil by UPN) and re-reads its own output with the parser's checks, so a
recipient never gets a document this adapter would refuse (``NotRenderable`` instead).
The XML is built with ``xml.etree.ElementTree``; only parsing needs ``defusedxml``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from adapters.base import NotRenderable
from adapters.identifiers import UPN, identifier_violation, normalise
from adapters.inputs import to_message
from adapters.safe_xml import local as local_name
from adapters.safe_xml import parse_xml
from canonical import DataDictionary, InvalidInput, Message, Person, Violation

NAME = "ctf-xml"
MEDIA_TYPE = "application/vnd.gateway.ctf+xml"
EVENT_TYPE = "education.pupil-transfer"
PURPOSE = "education-transfer"
DOCUMENT_NAME = "Common Transfer File"
CTF_VERSION = "24.0"
"""Written into rendered files; parse accepts any version with the subset's elements."""
SUPPLIER_ID = "mash-gateway"
DOCUMENT_QUALIFIER = "partial"
"""Rendered files carry only what the recipient may see: a partial transfer, never ``full``."""
MAX_PUPILS = 2000
"""A year group is a few hundred pupils; more in one file is refused (``max-pupils``)."""
MAX_VIOLATIONS = 100
"""An error lists at most this many problems, so a broken 2,000-pupil file stays readable."""
CHILD_REF = "child-1"

PUPILS_PATH = "/CTfile/CTFpupilData"

SEX_CODES = {"M": "male", "F": "female", "U": "unknown"}
SEX_OUT = {v: k for k, v in SEX_CODES.items()}
RELATIONSHIP_ROLES = {
    # CBDS "relationship to pupil": parents and carers are the contacts the canonical
    # model has roles for. PAR is what render writes for "parent": the canonical role
    # does not say mother or father, and writing either would invent it.
    "PAR": "parent",
    "PAM": "parent",
    "PAF": "parent",
    "STP": "parent",
    "STM": "parent",
    "STF": "parent",
    "CAR": "carer",
    "FOS": "carer",
    "FOM": "carer",
    "FOF": "carer",
}
ROLE_RELATIONSHIP = {"parent": "PAR", "carer": "CAR"}
SEN_PROVISION = frozenset({"N", "K", "E", "S", "A", "P"})
"""N no SEN, K SEN support, E EHC plan; S statement, A/P School Action (Plus) in old files."""
SEN_TYPES = frozenset(
    {"SPLD", "MLD", "SLD", "PMLD", "SEMH", "BESD", "SLCN", "HI", "VI", "MSI", "PD", "ASD", "OTH", "NSA"}
)
BOOLEAN = {"true": True, "1": True, "false": False, "0": False}

_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_LEA = re.compile(r"^(?:[0-9]{3}|MMM|XXX)$")
_ESTAB = re.compile(r"^(?:[0-9]{4}|MMMM|XXXX)$")
_URN = re.compile(r"^[0-9]{6}$")
_CODE3 = re.compile(r"^[0-9A-Z]{3}$")
_COUNT = re.compile(r"^[0-9]{1,5}$")
_YEAR = re.compile(r"^[0-9]{4}$")
_RANK = re.compile(r"^[0-9]{1,2}$")

_NAME_LEN = 200  # the canonical model's short_text
_LINE_LEN = 200
_POSTCODE_LEN = 10
_MAX_LINES = 5  # AddressLine1..AddressLine5
_MAX_CONTACT_DETAILS = 10  # canonical: contacts per person
_MAX_CONTACTS = 20
_BS7666 = ("SAON", "PAON", "Street", "Locality", "Town", "AdministrativeArea", "PostTown")
_SCHOOL_FIELDS = (("LEA", "lea", _LEA), ("Estab", "estab", _ESTAB), ("URN", "urn", _URN))
_YEAR_FIELDS = (
    ("SessionsPossible", "sessions_possible"),
    ("SessionsAuthorised", "sessions_authorised_absence"),
    ("SessionsUnauthorised", "sessions_unauthorised_absence"),
)


class _Reader:
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
        max_length: int = _NAME_LEN,
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
            if not _DATE.match(value):
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
            kids, path, name, pattern=_COUNT, rule="count", expected="a whole number of sessions"
        )
        return int(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class _Header:
    occurred_at: str
    reference_base: str
    transfer: dict[str, Any]
    """``school-transfer`` item data; empty when the file names neither school."""


class CtfAdapter:
    """CTF XML: ``parse`` takes a file of one pupil, ``parse_batch`` a file of many."""

    name: str = NAME
    content_types: tuple[str, ...] = (MEDIA_TYPE,)
    media_type: str = MEDIA_TYPE

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        """A file with exactly one ``Pupil``; more (or none) is ``single-message``."""
        header, pupils = _read_file(body)
        if len(pupils) != 1:
            raise InvalidInput(
                [
                    Violation(
                        f"{PUPILS_PATH}/Pupil",
                        "single-message",
                        "a single message is a file of exactly one Pupil; send a file of several as a batch",
                    )
                ],
                adapter=NAME,
            )
        return _messages(header, pupils, dictionary)[0]

    def parse_batch(self, body: bytes, dictionary: DataDictionary) -> tuple[Message, ...]:
        """Every pupil's message in file order; all valid, or one ``InvalidInput`` naming
        each broken record (``/CTfile/CTFpupilData/Pupil[3]/UPN``)."""
        header, pupils = _read_file(body)
        return _messages(header, pupils, dictionary)

    def render(self, message: Message) -> bytes:
        """A one-pupil CTF of what ``message`` carries. Raises ``NotRenderable`` without
        exactly one child with a UPN, or when a value cannot be written as valid CTF."""
        out = _render(message)
        try:
            header, pupils = _read_file(out)
            reader = _Reader()
            _pupil_document(reader, header, pupils[0], 1)
            if reader.violations:
                raise InvalidInput(reader.violations, adapter=NAME)
        except InvalidInput as exc:
            # The rule and native path only: the value stays out of the dead-letter reason.
            first = exc.violations[0]
            kind = f"{message.envelope.event_type} as {NAME}"
            raise NotRenderable(f"{kind}: a value does not fit CTF ({first.field}: {first.rule})") from None
        return out


# -- parse -------------------------------------------------------------------------------


def _read_file(body: bytes) -> tuple[_Header, list[ET.Element]]:
    root = parse_xml(body, NAME)
    if local_name(root.tag) != "CTfile":
        raise InvalidInput([Violation("/", "ctf-root", "the root element must be CTfile")], adapter=NAME)
    r = _Reader()
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


def _header(r: _Reader, element: ET.Element) -> _Header | None:
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
        for tag, key, pattern in _SCHOOL_FIELDS:
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
    return _Header(moment.isoformat(), f"ctf:{source_id}:{moment:%Y%m%dT%H%M%S}", transfer)


def _messages(header: _Header, pupils: list[ET.Element], dictionary: DataDictionary) -> tuple[Message, ...]:
    r = _Reader()
    documents = [_pupil_document(r, header, pupil, i) for i, pupil in enumerate(pupils, start=1)]
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


def _pupil_document(r: _Reader, header: _Header, pupil: ET.Element, index: int) -> dict[str, Any]:
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


def _name(r: _Reader, kids: Mapping[str, list[ET.Element]], path: str, *, required: bool) -> dict[str, str]:
    name: dict[str, str] = {}
    forename = r.text(kids, path, "Forename", required=required)
    surname = r.text(kids, path, "Surname", required=required)
    if forename is not None:
        name["given"] = forename
    if surname is not None:
        name["family"] = surname
    return name


def _address(r: _Reader, kids: Mapping[str, list[ET.Element]], path: str) -> dict[str, Any] | None:
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
        parts = {tag: r.text(bkids, bpath, tag, max_length=_LINE_LEN) for tag in _BS7666}
        # "10" + "Example Street" is one line on an envelope; the town is not repeated
        # when the post town is the same.
        number_street = " ".join(p for p in (parts["PAON"], parts["Street"]) if p)
        if parts["PostTown"] == parts["Town"]:
            parts["PostTown"] = None
        ordered = [parts["SAON"], number_street, parts["Locality"], parts["Town"]]
        ordered += [parts["AdministrativeArea"], parts["PostTown"]]
        lines = [p for p in ordered if p]
        if len(lines) > _MAX_LINES:
            # Joined, not dropped: the fifth line keeps the rest.
            lines = [*lines[: _MAX_LINES - 1], ", ".join(lines[_MAX_LINES - 1 :])]
        if any(len(line) > _LINE_LEN for line in lines):
            r.add(bpath, "max-length", f"an address line would be longer than {_LINE_LEN} characters")
            lines = []
    elif free is not None:
        fpath, fkids = f"{apath}/AddressLines", r.kids(free)
        for n in range(1, _MAX_LINES + 1):
            line = r.text(fkids, fpath, f"AddressLine{n}", max_length=_LINE_LEN)
            if line is not None:
                lines.append(line)
    postcode = r.text(akids, apath, "PostCode", max_length=_POSTCODE_LEN)
    address: dict[str, Any] = {}
    if lines or postcode:
        address["use"] = "home"
    if lines:
        address["lines"] = lines
    if postcode is not None:
        address["postcode"] = postcode
    return address or None


def _contact_details(r: _Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, str]]:
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
    email = r.text(kids, path, "Email", max_length=_LINE_LEN)
    if email is not None:
        details.append({"kind": "email", "value": email})
    if len(details) > _MAX_CONTACT_DETAILS:
        r.add(path, "max-contact-details", f"more than {_MAX_CONTACT_DETAILS} phone numbers and e-mails")
        return []
    return details


def _contacts(r: _Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
    container = r.one(kids, path, "Contacts")
    if container is None:
        return []
    contacts = r.kids(container).get("Contact", [])
    if len(contacts) > _MAX_CONTACTS:
        r.add(f"{path}/Contacts", "max-contacts", f"more than {_MAX_CONTACTS} contacts for one pupil")
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


def _looked_after(r: _Reader, kids: Mapping[str, list[ET.Element]], path: str) -> dict[str, Any] | None:
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


def _sen(r: _Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
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
            rank = r.text(nkids, npath, "SENtypeRank", pattern=_RANK, expected="a rank, 1 to 99")
            kind = r.code(nkids, npath, "SENtype", SEN_TYPES, "sen-type-code", required=True)
            if kind is not None:
                ranked.append((int(rank) if rank is not None else 99, kind))
        if ranked:
            # Most significant need first, as SENtypeRank orders them.
            items.append(_item("education.sen", "sen-needs", {"needs": [k for _, k in sorted(ranked)]}))
    return items


def _attendance(r: _Reader, kids: Mapping[str, list[ET.Element]], path: str) -> list[dict[str, Any]]:
    attendance = r.one(kids, path, "Attendance")
    if attendance is None:
        return []
    items: list[dict[str, Any]] = []
    for n, year in enumerate(r.kids(attendance).get("YearData", []), start=1):
        ypath, ykids = f"{path}/Attendance/YearData[{n}]", r.kids(year)
        data: dict[str, Any] = {}
        value = r.text(
            ykids, ypath, "Year", required=True, pattern=_YEAR, rule="year", expected="a year, YYYY"
        )
        if value is not None:
            data["year"] = value
        for element, key, pattern in _SCHOOL_FIELDS[:2]:
            code = r.text(ykids, ypath, element, pattern=pattern, expected=f"a valid {element} code")
            if code is not None:
                data[key] = code
        for element, key in _YEAR_FIELDS:
            sessions = r.count(ykids, ypath, element)
            if sessions is not None:
                data[key] = sessions
        items.append(_item("education.attendance", "attendance-year", data))
    return items


# -- render ------------------------------------------------------------------------------


def _render(message: Message) -> bytes:
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
        fields = [(tag, transfer.get(f"{prefix}_{key}")) for tag, key, _ in _SCHOOL_FIELDS]
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
        for tag, key in _YEAR_FIELDS:
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
        if len(lines) > _MAX_LINES:
            lines = [*lines[: _MAX_LINES - 1], ", ".join(lines[_MAX_LINES - 1 :])]
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
