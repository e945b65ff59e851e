"""CIN census XML (DfE Children in Need census): a batch import that turns a local
authority's return into child protection plan status events, for CP-IS-style flags to
health.

Supported subset (tables in ``docs/formats/cin-census.md``). Only these elements are read;
every other element is ignored, though still bounded by the XML limits (size, depth,
element count, text length):

``Message/Header/CollectionDetails/Collection`` (must be ``CIN``),
``Message/Header/Source/LEA`` (the responsible authority's three-digit code), and per
``Message/Children/Child``: ``ChildIdentifiers/LAchildID``, ``UPN``, ``PersonBirthDate``,
``GenderCurrent``, and ``CINdetails/ChildProtectionPlans/ChildProtectionPlan`` with
``CPPstartDate``, ``CPPendDate``, ``InitialCategoryOfAbuse``, ``LatestCategoryOfAbuse``.
(Returns that repeat ``ChildProtectionPlans`` itself as the plan element, with
``CPPstartDate`` directly inside it, are read the same way.)

What one return becomes (``parse_batch``, file order):

* each child protection plan -> one ``social-care.cp-plan-started`` message, and one
  ``social-care.cp-plan-ended`` message too when the plan has a ``CPPendDate``;
* a child without a plan -> no message (and its record is not checked further);
* each message: the child (LAchildID -> ``local-child-id``, UPN -> ``upn`` with its check
  letter verified, birth date, sex), one ``social-care.status`` item of type ``cp-plan``
  (the same shape ``adapters.social_care`` produces), purpose ``safeguarding``,
  ``occurred_at`` = the plan's start or end date at 00:00 UTC (the census has dates only),
  ``sender_reference`` = ``cin-<LEA>-<digest>-started|ended`` where the digest is the first
  16 hex digits of SHA-256 over ``LEA|LAchildID|CPPstartDate``: stable across re-imports of
  the same return, and no child identifier in the envelope, which every permitted
  recipient receives.

Data minimisation, on purpose: ethnicity and disabilities (special category data),
assessment factors, referral source and primary need, section 47 enquiries, former UPNs,
death dates and review dates are NOT mapped. Health staff need the flag, the dates, the
category and whom to call, nothing more.

Every problem in the file is reported in one ``InvalidInput`` (up to ``MAX_VIOLATIONS``)
naming the record, e.g. ``/Message/Children/Child[4]/ChildIdentifiers/UPN``; no value is
ever quoted. ``render`` raises ``NotRenderable`` for every message: the census is a
statutory return from a local authority to the DfE, not a delivery format, and a one-child
"census" would look like a return without being one.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from adapters.base import NotRenderable
from adapters.identifiers import LOCAL_CHILD_ID, UPN, identifier_violation, normalise
from adapters.inputs import to_message
from adapters.safe_xml import XmlLimits, local, parse_xml
from canonical import DataDictionary, InvalidInput, Message, Violation

NAME = "cin-census-xml"
MEDIA_TYPE = "application/vnd.gateway.cin-census+xml"

CIN_LIMITS = XmlLimits(max_bytes=32 * 1024 * 1024, max_depth=12, max_elements=1_000_000, max_text=256)
"""A large authority's return (some thousands of children, tens of elements each) fits; no
census field is longer than a few dozen characters, and none nests deeper than eight."""

MAX_VIOLATIONS = 100

CATEGORIES_OF_ABUSE = {
    "NEG": "neglect",
    "PHY": "physical",
    "SAB": "sexual",
    "EMO": "emotional",
    "MUL": "multiple",
}
SEX_CODES = {"0": "unknown", "1": "male", "2": "female", "9": "unknown"}
"""GenderCurrent: 0 not known, 1 male, 2 female, 9 not specified (both -> ``unknown``)."""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LA_CODE = re.compile(r"[0-9]{3}")
_MAX_LOCAL_ID = 64  # the canonical identifier's bound; the census itself allows 10


class CinCensusAdapter:
    """``BatchAdapter`` for CIN census returns. Pure: no I/O, no clock."""

    name: str = NAME
    content_types: tuple[str, ...] = (MEDIA_TYPE,)
    media_type: str = MEDIA_TYPE

    def __init__(self, limits: XmlLimits = CIN_LIMITS) -> None:
        self.limits = limits

    def parse_batch(self, body: bytes, dictionary: DataDictionary) -> tuple[Message, ...]:
        root = parse_xml(body, NAME, self.limits)
        if local(root.tag) != "Message":
            raise InvalidInput([Violation("/", "cin-root", "the root element must be Message")], adapter=NAME)
        problems = _Problems()
        la_code = _header(root, problems)
        documents: list[tuple[str, dict[str, Any]]] = []
        children = _one(root, "Children", "/Message", problems, required=True)
        for i, element in enumerate(_all(children, "Child") if children is not None else (), start=1):
            path = f"/Message/Children/Child[{i}]"
            plans = list(_plans(element, path))
            if not plans:
                continue
            child = _child(element, path, problems)
            for plan_element, plan_path in plans:
                plan = _plan(plan_element, plan_path, problems)
                if plan is None or child is None or la_code is None:
                    continue
                documents.extend((path, doc) for doc in _messages(child, plan, la_code))
        if problems:
            raise InvalidInput(problems.listed(), adapter=NAME)
        return tuple(_to_message(doc, path, dictionary) for path, doc in documents)

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        """A return yielding exactly one message (one plan, not ended); else ``single-message``."""
        messages = self.parse_batch(body, dictionary)
        if len(messages) != 1:
            raise InvalidInput(
                [
                    Violation(
                        "/Message/Children",
                        "single-message",
                        f"this return yields {len(messages)} messages; send it as a batch (folder drop)",
                    )
                ],
                adapter=NAME,
            )
        return messages[0]

    def render(self, message: Message) -> bytes:
        raise NotRenderable(
            f"{message.envelope.event_type}: {NAME} is a statutory return to the DfE, not a delivery "
            "format; deliver plan status as social-care-cp-plan or canonical-json"
        )


class _Problems(list[Violation]):
    def listed(self) -> list[Violation]:
        if len(self) <= MAX_VIOLATIONS:
            return list(self)
        more = Violation("/", "more-violations", f"{len(self) - MAX_VIOLATIONS} further problems not listed")
        return [*self[:MAX_VIOLATIONS], more]


@dataclass(frozen=True, slots=True)
class _Child:
    la_child_id: str
    person: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Plan:
    start: str
    end: str | None
    initial_category: str
    latest_category: str | None


# --- element access -----------------------------------------------------------------------


def _all(parent: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in parent if local(e.tag) == name]


def _one(
    parent: ET.Element, name: str, path: str, problems: list[Violation], *, required: bool = False
) -> ET.Element | None:
    found = _all(parent, name)
    if len(found) > 1:
        problems.append(Violation(f"{path}/{name}", "single-element", f"{name} must appear once here"))
    if not found:
        if required:
            problems.append(Violation(f"{path}/{name}", "required", f"{name} is required"))
        return None
    return found[0]


def _text(
    parent: ET.Element, name: str, path: str, problems: list[Violation], *, required: bool = False
) -> str | None:
    element = _one(parent, name, path, problems)
    text = (element.text or "").strip() if element is not None else ""
    if not text:
        if required:
            problems.append(
                Violation(f"{path}/{name}", "required", f"{name} is required and must not be empty")
            )
        return None
    return text


def _date(
    parent: ET.Element, name: str, path: str, problems: list[Violation], *, required: bool = False
) -> str | None:
    text = _text(parent, name, path, problems, required=required)
    if text is None:
        return None
    if _DATE.fullmatch(text):
        try:
            date.fromisoformat(text)
        except ValueError:
            pass
        else:
            return text
    problems.append(Violation(f"{path}/{name}", "date", "must be a date YYYY-MM-DD"))
    return None


# --- the return -----------------------------------------------------------------------------


def _header(root: ET.Element, problems: list[Violation]) -> str | None:
    """Check the collection; the responsible authority's LA code, or ``None`` (problem noted)."""
    header = _one(root, "Header", "/Message", problems, required=True)
    if header is None:
        return None
    path = "/Message/Header"
    details = _one(header, "CollectionDetails", path, problems, required=True)
    if details is not None:
        collection = _text(details, "Collection", f"{path}/CollectionDetails", problems, required=True)
        if collection is not None and collection != "CIN":
            problems.append(
                Violation(f"{path}/CollectionDetails/Collection", "cin-collection", "must be CIN")
            )
    source = _one(header, "Source", path, problems, required=True)
    if source is None:
        return None
    la_code = _text(source, "LEA", f"{path}/Source", problems, required=True)
    if la_code is not None and not _LA_CODE.fullmatch(la_code):
        problems.append(Violation(f"{path}/Source/LEA", "cin-la-code", "must be a three-digit LA code"))
        return None
    return la_code


def _plans(child: ET.Element, path: str) -> Iterator[tuple[ET.Element, str]]:
    """Every plan element of a child with its path, in file order."""
    for k, details in enumerate(_all(child, "CINdetails"), start=1):
        details_path = f"{path}/CINdetails[{k}]"
        containers = _all(details, "ChildProtectionPlans")
        for m, container in enumerate(containers, start=1):
            plans = _all(container, "ChildProtectionPlan")
            container_path = f"{details_path}/ChildProtectionPlans" + (
                f"[{m}]" if len(containers) > 1 else ""
            )
            if plans:
                for n, plan in enumerate(plans, start=1):
                    yield plan, f"{container_path}/ChildProtectionPlan[{n}]"
            elif _all(container, "CPPstartDate"):
                # The specification's own layout: each ChildProtectionPlans is one plan.
                yield container, f"{details_path}/ChildProtectionPlans[{m}]"


def _child(element: ET.Element, path: str, problems: list[Violation]) -> _Child | None:
    before = len(problems)
    identifiers = _one(element, "ChildIdentifiers", path, problems, required=True)
    if identifiers is None:
        return None
    ipath = f"{path}/ChildIdentifiers"
    la_child_id = _text(identifiers, "LAchildID", ipath, problems, required=True)
    if la_child_id is not None and len(la_child_id) > _MAX_LOCAL_ID:
        problems.append(
            Violation(f"{ipath}/LAchildID", "max-length", f"must be at most {_MAX_LOCAL_ID} characters")
        )
    person: dict[str, Any] = {"ref": "child-1", "role": "child"}
    ids: list[dict[str, str]] = []
    upn = _text(identifiers, "UPN", ipath, problems)
    if upn is not None:
        violation = identifier_violation(UPN, upn, f"{ipath}/UPN")
        if violation is not None:
            problems.append(violation)
        else:
            ids.append({"system": UPN, "value": normalise(UPN, upn)})
    if la_child_id is not None:
        ids.append({"system": LOCAL_CHILD_ID, "value": la_child_id})
    person["identifiers"] = ids
    birth_date = _date(identifiers, "PersonBirthDate", ipath, problems)
    if birth_date is not None:
        person["birth_date"] = birth_date
    gender = _text(identifiers, "GenderCurrent", ipath, problems)
    if gender is not None:
        if gender in SEX_CODES:
            person["sex"] = SEX_CODES[gender]
        else:
            problems.append(Violation(f"{ipath}/GenderCurrent", "cin-gender-code", "must be 0, 1, 2 or 9"))
    if len(problems) > before or la_child_id is None:
        return None
    return _Child(la_child_id, person)


def _plan(element: ET.Element, path: str, problems: list[Violation]) -> _Plan | None:
    before = len(problems)
    start = _date(element, "CPPstartDate", path, problems, required=True)
    end = _date(element, "CPPendDate", path, problems)
    initial = _category(element, "InitialCategoryOfAbuse", path, problems, required=True)
    latest = _category(element, "LatestCategoryOfAbuse", path, problems)
    if start is not None and end is not None and end < start:
        problems.append(
            Violation(
                f"{path}/CPPendDate", "end-not-before-start", "CPPendDate must not be before CPPstartDate"
            )
        )
    if len(problems) > before or start is None or initial is None:
        return None
    return _Plan(start, end, initial, latest)


def _category(
    element: ET.Element, name: str, path: str, problems: list[Violation], *, required: bool = False
) -> str | None:
    code = _text(element, name, path, problems, required=required)
    if code is None:
        return None
    if code not in CATEGORIES_OF_ABUSE:
        problems.append(
            Violation(f"{path}/{name}", "cin-category-of-abuse", "must be NEG, PHY, SAB, EMO or MUL")
        )
        return None
    return CATEGORIES_OF_ABUSE[code]


# --- canonical ------------------------------------------------------------------------------


def sender_reference(la_code: str, la_child_id: str, plan_start: str, status: str) -> str:
    """Stable per (authority, child, plan) and status; carries no child identifier."""
    digest = hashlib.sha256(f"{la_code}|{la_child_id}|{plan_start}".encode()).hexdigest()[:16]
    return f"cin-{la_code}-{digest}-{status}"


def _messages(child: _Child, plan: _Plan, la_code: str) -> Iterator[dict[str, Any]]:
    """The started message, then the ended one if the plan has ended. At start the category
    is the initial one; at the end the latest (or the initial, if it never changed)."""
    started = {"status": "started", "category_of_abuse": plan.initial_category, "plan_start": plan.start}
    yield _document(child, plan.start, "started", started, la_code)
    if plan.end is not None:
        ended = {
            "status": "ended",
            "category_of_abuse": plan.latest_category or plan.initial_category,
            "plan_start": plan.start,
            "plan_end": plan.end,
        }
        yield _document(child, plan.end, "ended", ended, la_code)


def _document(child: _Child, on: str, status: str, data: dict[str, Any], la_code: str) -> dict[str, Any]:
    return {
        "envelope": {
            "event_type": f"social-care.cp-plan-{status}",
            "occurred_at": f"{on}T00:00:00+00:00",
            "purpose": "safeguarding",
            "sender_reference": sender_reference(la_code, child.la_child_id, data["plan_start"], status),
        },
        "people": [child.person],
        "items": [
            {
                "category": "social-care.status",
                "type": "cp-plan",
                "about": ["child-1"],
                "data": {**data, "responsible_authority_la_code": la_code},
            }
        ],
    }


def _to_message(document: dict[str, Any], path: str, dictionary: DataDictionary) -> Message:
    """``to_message``, with a canonical problem tied to the record it came from."""
    try:
        return to_message(document, dictionary, NAME)
    except InvalidInput as exc:
        raise InvalidInput(
            [Violation(f"{path} {v.field}", v.rule, v.message) for v in exc.violations], adapter=NAME
        ) from None
