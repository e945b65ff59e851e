"""Education notifications in JSON, with schemas written by us (no national schema exists):

* ``education-exclusion`` (``application/vnd.gateway.education-exclusion+json``,
  ``schemas/education-exclusion.schema.json``): a suspension or permanent exclusion, for the
  local authority, the child's social worker and the virtual school head (DOMAIN.md
  scenario 4). Purpose ``exclusion-notification``; event ``education.suspension`` or
  ``education.permanent-exclusion``.
* ``education-attendance-concern``
  (``application/vnd.gateway.education-attendance-concern+json``,
  ``schemas/education-attendance-concern.schema.json``): a pupil's attendance figures for a
  period and the school's concern. Event ``education.attendance-concern``; purpose
  ``safeguarding`` unless the sender says ``child-in-need``.

Subset and mapping (``docs/formats/education.md`` has the field-by-field table): the pupil ->
the one ``child`` (UPN and NHS number checked, names, birth date, sex; the attendance
concern also a home address); ``exclusion`` -> an ``education.exclusion`` item;
``social_care`` -> a ``social-care.status`` item; ``attendance`` -> an
``education.attendance`` item; ``concern`` -> an ``event.narrative`` item. The exclusion
schema has no place for SEN information, diagnoses or child protection file content: a
sender cannot put them in (``additionalProperties: false`` everywhere), so they never
travel with a notification.

One schema serves both directions. It allows parts to be absent because a delivered copy
holds only what the recipient may see; what a *sender* must give (an identifier, names,
birth date, the exclusion or attendance figures) is checked after the schema, by rules
named in the errors. ``parse`` ignores the ``gateway`` block (the gateway sets it on
delivered copies: message id, source, received time); ``render`` writes it and never
writes ``recipients``. ``render`` checks its output against the schema and raises
``NotRenderable`` for a message the format cannot carry.

Errors are JSON pointers and rules, never values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from adapters.base import NotRenderable
from adapters.identifiers import NHS_NUMBER, UPN, identifier_violation
from adapters.inputs import check_schema, dumps, load_json, to_message
from canonical import DataDictionary, InvalidInput, Message, Person, Violation

EXCLUSION = "education-exclusion"
EXCLUSION_MEDIA_TYPE = "application/vnd.gateway.education-exclusion+json"
EXCLUSION_SCHEMA = "education-exclusion.schema.json"
ATTENDANCE = "education-attendance-concern"
ATTENDANCE_MEDIA_TYPE = "application/vnd.gateway.education-attendance-concern+json"
ATTENDANCE_SCHEMA = "education-attendance-concern.schema.json"

EXCLUSION_EVENTS = {
    "suspension": "education.suspension",
    "permanent-exclusion": "education.permanent-exclusion",
}
EXCLUSION_KINDS = {v: k for k, v in EXCLUSION_EVENTS.items()}
ATTENDANCE_EVENT = "education.attendance-concern"
EXCLUSION_PURPOSE = "exclusion-notification"
DEFAULT_ATTENDANCE_PURPOSE = "safeguarding"
CHILD_REF = "child-1"

Fields = tuple[tuple[str, str], ...]
"""(native key, canonical ``data`` key) pairs."""

# The canonical keys are the ones the example messages in deploy/example/messages use
# (start, days, reason_code), so an exclusion another format carried renders here too.
EXCLUSION_FIELDS: Fields = (
    ("start_date", "start"),
    ("days", "days"),
    ("reason", "reason_code"),
    ("school_urn", "school_urn"),
    ("school_name", "school_name"),
)
SOCIAL_CARE_FIELDS: Fields = (("has_social_worker", "has_social_worker"), ("looked_after", "looked_after"))
ATTENDANCE_FIELDS: Fields = tuple(
    (key, key)
    for key in (
        "period_start",
        "period_end",
        "sessions_possible",
        "sessions_missed",
        "attendance_percent",
        "persistent_absence",
        "severe_absence",
    )
)
_IDENTIFIERS = (("upn", UPN), ("nhs_number", NHS_NUMBER))

JSON = dict[str, Any]


class ExclusionAdapter:
    """Suspension and permanent exclusion notifications."""

    name: str = EXCLUSION
    content_types: tuple[str, ...] = (EXCLUSION_MEDIA_TYPE,)
    media_type: str = EXCLUSION_MEDIA_TYPE

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        doc = _load(body, EXCLUSION_SCHEMA, EXCLUSION, _exclusion_rules)
        kind: str = doc["kind"]
        items: list[JSON] = [_item("education.exclusion", kind, _pick(doc["exclusion"], EXCLUSION_FIELDS))]
        social = _pick(doc.get("social_care", {}), SOCIAL_CARE_FIELDS)
        if social:
            items.append(_item("social-care.status", "social-care-status", social))
        envelope = _envelope(doc, EXCLUSION_EVENTS[kind], doc["decided_at"], EXCLUSION_PURPOSE)
        canonical = {"envelope": envelope, "people": [_child(doc["pupil"], None)], "items": items}
        return to_message(canonical, dictionary, EXCLUSION)

    def render(self, message: Message) -> bytes:
        kind = EXCLUSION_KINDS.get(message.envelope.event_type)
        if kind is None:
            raise NotRenderable(
                f"{message.envelope.event_type} as {EXCLUSION}: not a suspension or exclusion"
            )
        child, items = _the_child(message, EXCLUSION)
        doc: JSON = _reference(message)
        doc.update(kind=kind, decided_at=message.envelope.occurred_at, pupil=_pupil(child))
        exclusion = _data(items, "education.exclusion", EXCLUSION_FIELDS)
        if exclusion:
            doc["exclusion"] = exclusion
        social = _data(items, "social-care.status", SOCIAL_CARE_FIELDS, only=bool)
        if social:
            doc["social_care"] = social
        return _checked(doc, message, EXCLUSION_SCHEMA, EXCLUSION)


class AttendanceConcernAdapter:
    """A school's concern about a pupil's attendance."""

    name: str = ATTENDANCE
    content_types: tuple[str, ...] = (ATTENDANCE_MEDIA_TYPE,)
    media_type: str = ATTENDANCE_MEDIA_TYPE

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        doc = _load(body, ATTENDANCE_SCHEMA, ATTENDANCE, _attendance_rules)
        purpose = doc.get("purpose", DEFAULT_ATTENDANCE_PURPOSE)
        envelope = _envelope(doc, ATTENDANCE_EVENT, doc["raised_at"], purpose)
        if doc.get("risk_of_significant_harm"):
            envelope["flags"] = {"risk_of_significant_harm": True}
        items = [
            _item("education.attendance", "attendance-summary", _pick(doc["attendance"], ATTENDANCE_FIELDS))
        ]
        if "concern" in doc:
            items.append(_item("event.narrative", "attendance-concern", {"text": doc["concern"]}))
        child = _child(doc["pupil"], doc.get("home_address"))
        return to_message({"envelope": envelope, "people": [child], "items": items}, dictionary, ATTENDANCE)

    def render(self, message: Message) -> bytes:
        if message.envelope.event_type != ATTENDANCE_EVENT:
            raise NotRenderable(f"{message.envelope.event_type} as {ATTENDANCE}: not an attendance concern")
        child, items = _the_child(message, ATTENDANCE)
        doc: JSON = _reference(message)
        doc.update(raised_at=message.envelope.occurred_at, purpose=message.envelope.purpose)
        if message.envelope.flags.risk_of_significant_harm:
            doc["risk_of_significant_harm"] = True
        doc["pupil"] = _pupil(child)
        if child.addresses:
            # One home address in this format: the home one if marked, else the first.
            address = next((a for a in child.addresses if a.use == "home"), child.addresses[0])
            doc["home_address"] = {
                k: v for k, v in (("lines", list(address.lines)), ("postcode", address.postcode)) if v
            }
        attendance = _data(items, "education.attendance", ATTENDANCE_FIELDS)
        if attendance:
            doc["attendance"] = attendance
        narrative = next((i.data.get("text") for i in items if i.category == "event.narrative"), None)
        if isinstance(narrative, str):
            doc["concern"] = narrative
        return _checked(doc, message, ATTENDANCE_SCHEMA, ATTENDANCE)


# -- parse -------------------------------------------------------------------------------

Rules = Callable[[JSON], Iterator[Violation]]


def _load(body: bytes, schema: str, adapter: str, rules: Rules) -> JSON:
    """Decode, check the schema, then the sender's rules; ``InvalidInput`` on any failure."""
    doc = load_json(body, adapter)
    check_schema(schema, doc, adapter)
    assert isinstance(doc, dict)  # the schema's root is an object
    problems = list(_pupil_rules(doc["pupil"]))
    problems.extend(rules(doc))
    if problems:
        raise InvalidInput(problems, adapter=adapter)
    return doc


def _pupil_rules(pupil: JSON) -> Iterator[Violation]:
    if not any(key in pupil for key, _ in _IDENTIFIERS):
        yield Violation("/pupil", "pupil-identifier", "give the pupil's upn or nhs_number (or both)")
    for key, system in _IDENTIFIERS:
        if key in pupil:
            problem = identifier_violation(system, pupil[key], f"/pupil/{key}")
            if problem is not None:
                yield problem
    yield from _required(pupil, "/pupil", ("given_name", "family_name", "birth_date"))


def _required(doc: Mapping[str, Any], path: str, keys: tuple[str, ...]) -> Iterator[Violation]:
    for key in keys:
        if key not in doc:
            yield Violation(f"{path}/{key}", "required", f"required property missing: {key}")


def _exclusion_rules(doc: JSON) -> Iterator[Violation]:
    exclusion = doc.get("exclusion")
    if exclusion is None:
        yield Violation("/exclusion", "required", "required property missing: exclusion")
        return
    yield from _required(exclusion, "/exclusion", ("start_date", "reason"))
    days = exclusion.get("days")
    if doc["kind"] == "suspension" and days is None:
        yield Violation("/exclusion/days", "days-for-suspension", "a suspension must give its length in days")
    if doc["kind"] == "permanent-exclusion" and days is not None:
        yield Violation(
            "/exclusion/days", "no-days-for-permanent-exclusion", "a permanent exclusion has no length"
        )
    # A suspension is counted in sessions (half days): 0.5, 1, 1.5 ... (a schema cannot say
    # "multiple of 0.5" within the keywords the fast path shares with draft 7).
    # (NaN and Infinity never get here: adapters.inputs.load_json refuses them.)
    if days is not None and days * 2 != int(days * 2):
        yield Violation("/exclusion/days", "half-days", "must be a whole number of half days, e.g. 1.5")


def _attendance_rules(doc: JSON) -> Iterator[Violation]:
    attendance = doc.get("attendance")
    if attendance is None:
        yield Violation("/attendance", "required", "required property missing: attendance")
        return
    yield from _required(attendance, "/attendance", ("period_start", "period_end"))
    # ISO dates compare correctly as strings.
    if attendance.get("period_end", "9999") < attendance.get("period_start", ""):
        yield Violation("/attendance/period_end", "period-order", "must not be before period_start")
    if "attendance_percent" not in attendance and "sessions_possible" not in attendance:
        yield Violation(
            "/attendance",
            "attendance-figures",
            "give attendance_percent or sessions_possible and sessions_missed",
        )
    if "sessions_possible" in attendance and "sessions_missed" not in attendance:
        yield Violation("/attendance/sessions_missed", "required", "required with sessions_possible")
    if attendance.get("sessions_missed", 0) > attendance.get("sessions_possible", 1000):
        yield Violation(
            "/attendance/sessions_missed", "sessions-missed-le-possible", "more than sessions_possible"
        )


def _envelope(doc: JSON, event_type: str, occurred_at: str, purpose: str) -> JSON:
    envelope: JSON = {"event_type": event_type, "occurred_at": occurred_at, "purpose": purpose}
    if "notification_id" in doc:
        envelope["sender_reference"] = doc["notification_id"]
    if doc.get("recipients"):
        envelope["recipients"] = doc["recipients"]
    return envelope


def _child(pupil: JSON, address: JSON | None) -> JSON:
    child: JSON = {"ref": CHILD_REF, "role": "child"}
    identifiers = [{"system": system, "value": pupil[key]} for key, system in _IDENTIFIERS if key in pupil]
    if identifiers:
        child["identifiers"] = identifiers
    name = {k: pupil[f] for k, f in (("given", "given_name"), ("family", "family_name")) if f in pupil}
    if name:
        child["name"] = name
    for key in ("birth_date", "sex"):
        if key in pupil:
            child[key] = pupil[key]
    if address:
        child["addresses"] = [{"use": "home", **address}]
    return child


def _item(category: str, kind: str, data: JSON) -> JSON:
    return {"category": category, "type": kind, "about": [CHILD_REF], "data": data}


def _pick(source: Mapping[str, Any], fields: Fields) -> JSON:
    """Native fields -> canonical item data."""
    return {key: source[native] for native, key in fields if native in source}


# -- render ------------------------------------------------------------------------------


def _the_child(message: Message, adapter: str) -> tuple[Person, list[Any]]:
    children = message.children()
    if len(children) != 1:
        raise NotRenderable(
            f"{message.envelope.event_type} as {adapter}: the format carries exactly one pupil"
        )
    child = children[0]
    return child, [i for i in message.items if not i.about or child.ref in i.about]


def _reference(message: Message) -> JSON:
    reference = message.envelope.sender_reference
    return {"notification_id": reference} if reference is not None else {}


def _stamp(doc: JSON, message: Message) -> None:
    """The gateway's own metadata, where this format keeps it (set by the gateway on delivery)."""
    env = message.envelope
    fields = (("message_id", env.message_id), ("source", env.source), ("received_at", env.received_at))
    gateway = {k: v for k, v in fields if v}
    if gateway:
        doc["gateway"] = gateway


def _pupil(child: Person) -> JSON:
    pupil: JSON = {}
    for key, system in _IDENTIFIERS:
        value = next((i.value for i in child.identifiers if i.system == system), None)
        if value is not None:
            pupil[key] = value
    if child.name is not None:
        if child.name.given is not None:
            pupil["given_name"] = child.name.given
        if child.name.family is not None:
            pupil["family_name"] = child.name.family
    if child.birth_date is not None:
        pupil["birth_date"] = child.birth_date
    if child.sex is not None:
        pupil["sex"] = child.sex
    return pupil


def _data(items: list[Any], category: str, fields: Fields, *, only: type | None = None) -> JSON:
    """The known fields of the first item of ``category`` that has any, as native fields;
    other fields (from other formats) have no place here and are left out, never guessed
    into one."""
    for item in items:
        if item.category != category:
            continue
        data = item.data
        found = {
            native: data[key]
            for native, key in fields
            if key in data and (only is None or type(data[key]) is only)
        }
        if found:
            return found
    return {}


def _checked(doc: JSON, message: Message, schema: str, adapter: str) -> bytes:
    _stamp(doc, message)
    try:
        check_schema(schema, doc, adapter)
    except InvalidInput as exc:
        first = exc.violations[0]
        kind = f"{message.envelope.event_type} as {adapter}"
        raise NotRenderable(
            f"{kind}: a value does not fit the format ({first.field}: {first.rule})"
        ) from None
    return dumps(doc)
