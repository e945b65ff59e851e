"""Children's social care JSON formats: four adapters, one per notification a local
authority's case-management system sends or receives through the gateway.

Supported subset (field-by-field tables in ``docs/formats/social-care.md``; each format has
its own JSON Schema in ``schemas/``, draft 2020-12, closed objects, bounded lengths):

=================================  ======================================  ==================
format name                        event types                             purpose
=================================  ======================================  ==================
``social-care-referral``           ``social-care.referral``                ``safeguarding`` or
                                                                           ``child-in-need``
                                                                           (the document says)
``social-care-referral-outcome``   ``social-care.referral-outcome``        ``referral-feedback``
``social-care-cp-plan``            ``social-care.cp-plan-started|ended``   ``safeguarding``
``social-care-looked-after``       ``social-care.looked-after-started|``   ``safeguarding``
                                   ``ended``
=================================  ======================================  ==================

Each content type is ``application/vnd.gateway.<format name>+json``.

Contracts:

* ``parse``: bounded UTF-8 JSON (``adapters.inputs.load_json``) -> the format's schema ->
  the rules a schema cannot say (check characters of NHS numbers and UPNs, plan and period
  dates) -> a canonical document -> ``to_message``. Every violation names the JSON pointer
  of the *native* field and a rule; it MUST NOT quote the value.
* The ``gateway`` block (message id, source, received time) is written by ``render`` and
  ignored by ``parse``: the gateway assigns those fields itself.
* ``render`` writes only what the (redacted) message carries: an absent category is an
  absent field, never a placeholder. Items of other categories or types, identifiers of
  other systems and people in roles the format has no place for are not carried (the
  format's documentation lists what each format carries). A message the format cannot
  express — another event type, no child left after redaction, or the one item that makes
  the notification (the plan, the period, the outcome) redacted away — raises
  ``NotRenderable``; the rendered document is checked against the format's own schema and
  rules before it is returned, so a recipient never gets a document that we would refuse.
* ``parse(render(m)) == m`` for every message ``parse`` produced (the gateway's envelope
  fields aside, which ``parse`` drops).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, ClassVar

from adapters.base import NotRenderable
from adapters.identifiers import LOCAL_CHILD_ID, NHS_NUMBER, UPN, identifier_violation, normalise
from adapters.inputs import check_schema, dumps, load_json, to_message
from canonical import DataDictionary, InvalidInput, Item, Message, Person, Violation
from canonical.model import CONFIDENTIAL_ADDRESS
from canonical.validate import fast_check

JSON = dict[str, Any]

CHILD_REF = "child-1"
DO_NOT_CONTACT_FAMILY = "do-not-contact-family"
STATUS_CATEGORY = "social-care.status"

REFERRAL_SOURCES: Mapping[str, str] = {
    "1A": "Individual: family member, relative or carer",
    "1B": "Individual: acquaintance (including neighbours and child minders)",
    "1C": "Individual: self",
    "1D": "Individual: other",
    "2A": "Schools",
    "2B": "Education services",
    "3A": "Health services: GP",
    "3B": "Health services: health visitor",
    "3C": "Health services: school nurse",
    "3D": "Health services: other primary health services",
    "3E": "Health services: A&E (emergency department)",
    "3F": "Health services: other",
    "4": "Housing (local authority or housing association)",
    "5A": "Local authority services: social care (e.g. adult social care)",
    "5B": "Local authority services: other internal department",
    "5C": "Local authority services: external (e.g. another local authority)",
    "5D": "Early help",
    "6": "Police",
    "7": "Other legal agency (courts, probation, immigration, CAFCASS, prison)",
    "8": "Other",
    "9": "Anonymous",
    "10": "Unknown",
}
"""CIN census referral source codes (DfE, public), as the referral's ``referral_source``."""

CATEGORIES_OF_ABUSE = ("neglect", "physical", "sexual", "emotional", "multiple")

LEGAL_STATUSES: Mapping[str, str] = {
    "C1": "Interim care order",
    "C2": "Full care order",
    "D1": "Freeing order granted",
    "E1": "Placement order granted",
    "J1": "Remanded to local authority accommodation or to youth detention accommodation",
    "J2": "Placed in local authority accommodation under the Police and Criminal Evidence Act 1984",
    "J3": "Sentenced to a youth rehabilitation order with residence or intensive fostering requirement",
    "L1": "Under police protection and in local authority accommodation",
    "L2": "Emergency protection order",
    "L3": "Under a child assessment order and in local authority accommodation",
    "V2": "Single period of accommodation under section 20 (Children Act 1989)",
    "V3": "Accommodated under an agreed series of short-term breaks (individual episodes recorded)",
    "V4": "Accommodated under an agreed series of short-term breaks (agreements recorded)",
}
"""SSDA903 looked-after legal status codes (DfE, public)."""

OUTCOMES = ("accepted", "no-further-action", "early-help")

HOUSEHOLD_ROLES = ("parent", "carer", "sibling", "household-member", "alleged-perpetrator", "victim")

# Native identifier key -> canonical system, in the order identifiers are written.
_IDENTIFIER_KEYS = (("nhs_number", NHS_NUMBER), ("upn", UPN), ("la_child_id", LOCAL_CHILD_ID))
_MARKER_KEYS = (
    ("confidential_address", CONFIDENTIAL_ADDRESS),
    ("do_not_contact_family", DO_NOT_CONTACT_FAMILY),
)


def content_type_for(name: str) -> str:
    """The content type (and media type) of a format: ``application/vnd.gateway.<name>+json``."""
    return f"application/vnd.gateway.{name}+json"


class _SocialCareJson(ABC):
    """What the four formats share: the parse pipeline, people, the gateway block, and a
    render that refuses to emit a document its own parser would refuse."""

    name: str
    content_types: tuple[str, ...]
    media_type: str
    schema: ClassVar[str]
    event_types: ClassVar[tuple[str, ...]]

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        document = load_json(body, self.name)
        check_schema(self.schema, document, self.name)
        problems = self._rules(document)
        canonical = self._canonical(document, problems)
        if problems:
            raise InvalidInput(problems, adapter=self.name)
        return to_message(canonical, dictionary, self.name)

    def render(self, message: Message) -> bytes:
        event_type = message.envelope.event_type
        if event_type not in self.event_types:
            raise NotRenderable(f"{event_type} messages cannot be rendered as {self.name}")
        document = self._native(message)
        if document is None or not fast_check(self.schema)(document) or self._rules(document):
            raise NotRenderable(
                f"this {event_type} message lacks what {self.name} requires "
                "(e.g. its child or its defining item, perhaps redacted)"
            )
        gateway = _gateway_block(message)
        if gateway:
            document["gateway"] = gateway
        return dumps(document)

    def _rules(self, document: JSON) -> list[Violation]:
        """Rules the schema cannot say, on a schema-valid document (identifiers aside)."""
        return []

    @abstractmethod
    def _canonical(self, document: JSON, problems: list[Violation]) -> JSON:
        """A schema-valid native document -> a canonical document; identifier problems are
        appended to ``problems``."""

    @abstractmethod
    def _native(self, message: Message) -> JSON | None:
        """A canonical message -> the native document, or ``None`` if it has no child or no
        defining item (``render`` then raises ``NotRenderable``)."""


# --- people -------------------------------------------------------------------------------


def _person(native: JSON, pointer: str, ref: str, role: str, problems: list[Violation]) -> JSON:
    """A native person (child or household member) -> a canonical person; identifier check
    failures are appended to ``problems`` naming the native field."""
    person: JSON = {"ref": ref, "role": role}
    identifiers = []
    for key, system in _IDENTIFIER_KEYS:
        value = native.get(key)
        if value is None:
            continue
        violation = identifier_violation(system, value, f"{pointer}/{key}")
        if violation is not None:
            problems.append(violation)
        else:
            identifiers.append({"system": system, "value": normalise(system, value)})
    if identifiers:
        person["identifiers"] = identifiers
    name = {k: native[f"{k}_name"] for k in ("given", "family") if f"{k}_name" in native}
    if name:
        person["name"] = name
    for key in ("birth_date", "sex", "addresses", "contacts"):
        if native.get(key):
            person[key] = native[key]
    markers = [marker for key, marker in _MARKER_KEYS if native.get(key) is True]
    if markers:
        person["markers"] = markers
    return person


def _native_person(person: Person, *, minimal: bool = False) -> JSON:
    """A canonical person -> the native shape. The first identifier of each system the
    format knows is written; ``minimal`` keeps identifiers, name and birth date only."""
    out: JSON = {}
    for key, system in _IDENTIFIER_KEYS:
        value = next((i.value for i in person.identifiers if i.system == system), None)
        if value is not None:
            out[key] = value
    if person.name is not None:
        if person.name.given is not None:
            out["given_name"] = person.name.given
        if person.name.family is not None:
            out["family_name"] = person.name.family
    if person.birth_date is not None:
        out["birth_date"] = person.birth_date
    if minimal:
        return out
    if person.sex is not None:
        out["sex"] = person.sex
    if person.addresses:
        out["addresses"] = [a.as_dict() for a in person.addresses]
    if person.contacts:
        out["contacts"] = [c.as_dict() for c in person.contacts]
    for key, marker in _MARKER_KEYS:
        if marker in person.markers:
            out[key] = True
    return out


def _child(message: Message) -> Person | None:
    return next((p for p in message.people if p.role == "child"), None)


def _item(message: Message, category: str, item_type: str) -> Item | None:
    return next((i for i in message.items if i.category == category and i.type == item_type), None)


def _gateway_block(message: Message) -> JSON:
    env = message.envelope
    fields = {"message_id": env.message_id, "source": env.source, "received_at": env.received_at}
    return {k: v for k, v in fields.items() if v}


def _envelope(document: JSON, event_type: str, purpose: str, occurred_key: str) -> JSON:
    envelope: JSON = {
        "event_type": event_type,
        "occurred_at": document[occurred_key],
        "purpose": purpose,
        "sender_reference": document["reference"],
    }
    flags = {k: True for k in ("risk_of_significant_harm", "do_not_inform_family") if document.get(k) is True}
    if flags:
        envelope["flags"] = flags
    return envelope


def _copy_keys(source: Mapping[str, Any], pairs: tuple[tuple[str, str], ...]) -> JSON:
    """``{target: source[key]}`` for each ``(key, target)`` whose key is present."""
    return {target: source[key] for key, target in pairs if source.get(key) is not None}


def _about_child(category: str, item_type: str, data: JSON) -> JSON:
    """An item about the child (every item these formats produce is about the child)."""
    return {"category": category, "type": item_type, "about": [CHILD_REF], "data": data}


def _period_rules(status: str, period: JSON, pointer: str) -> list[Violation]:
    """Start/end rules of a plan or a looked-after period (dates already schema-checked)."""
    end = period.get("end_date")
    if status == "ended" and end is None:
        return [Violation(f"{pointer}/end_date", "end-date-required", "an ended status needs its end_date")]
    if status == "started" and end is not None:
        return [
            Violation(
                f"{pointer}/end_date", "no-end-date-when-started", "a started status has no end_date yet"
            )
        ]
    if end is not None and date.fromisoformat(end) < date.fromisoformat(period["start_date"]):
        return [
            Violation(f"{pointer}/end_date", "end-not-before-start", "end_date must not be before start_date")
        ]
    return []


# --- referral -----------------------------------------------------------------------------

REFERRAL = "social-care-referral"
_SUMMARY = (
    ("concern_summary", "summary"),
    ("referral_source", "referral_source"),
    ("referrer_organisation", "referrer_organisation"),
)


class SocialCareReferralAdapter(_SocialCareJson):
    """A contact or referral recorded by children's social care -> ``social-care.referral``."""

    name: str = REFERRAL
    content_types: tuple[str, ...] = (content_type_for(REFERRAL),)
    media_type: str = content_type_for(REFERRAL)
    schema: ClassVar[str] = f"{REFERRAL}.schema.json"
    event_types: ClassVar[tuple[str, ...]] = ("social-care.referral",)

    def _canonical(self, document: JSON, problems: list[Violation]) -> JSON:
        people = [_person(document["child"], "/child", CHILD_REF, "child", problems)]
        for i, member in enumerate(document.get("household", ())):
            people.append(_person(member, f"/household/{i}", f"person-{i + 1}", member["role"], problems))
        items: list[JSON] = []
        summary = _copy_keys(document, _SUMMARY)
        if summary:
            items.append(_about_child("event.summary", "concern-summary", summary))
        if "narrative" in document:
            items.append(
                _about_child("event.narrative", "referral-narrative", {"text": document["narrative"]})
            )
        envelope = _envelope(document, "social-care.referral", document["purpose"], "referred_at")
        return {"envelope": envelope, "people": people, "items": items}

    def _native(self, message: Message) -> JSON | None:
        child = _child(message)
        if child is None:
            return None
        env = message.envelope
        out: JSON = {
            "reference": env.sender_reference,
            "referred_at": env.occurred_at,
            "purpose": env.purpose,
        }
        out.update(env.flags.as_dict())
        summary = _item(message, "event.summary", "concern-summary")
        if summary is not None:
            out.update(_copy_keys(summary.data, tuple((t, k) for k, t in _SUMMARY)))
        narrative = _item(message, "event.narrative", "referral-narrative")
        if narrative is not None and narrative.data.get("text") is not None:
            out["narrative"] = narrative.data["text"]
        out["child"] = _native_person(child)
        household = [
            {"role": p.role, **_native_person(p)}
            for p in message.people
            if p is not child and p.role in HOUSEHOLD_ROLES
        ]
        if household:
            out["household"] = household
        return out


# --- referral outcome ---------------------------------------------------------------------

OUTCOME = "social-care-referral-outcome"
_WORKER = (
    ("name", "named_worker"),
    ("team", "worker_team"),
    ("phone", "worker_phone"),
    ("email", "worker_email"),
)
_REFERRER = (
    ("partner_id", "referrer_partner"),
    ("organisation", "referrer_organisation"),
    ("referral_reference", "referral_reference"),
)


class SocialCareReferralOutcomeAdapter(_SocialCareJson):
    """Feedback to the referrer (DOMAIN scenario 5) -> ``social-care.referral-outcome``.

    The referrer's partner id becomes the message's named recipient and is also kept in the
    ``event.outcome`` item (redaction clears the envelope's recipients before rendering, and
    the referrer needs to see whose referral this answers). The child is carried with
    minimal identity only: identifiers, name, birth date. Addresses, contacts and sex MUST
    NOT appear in this format, whatever the message carries.
    """

    name: str = OUTCOME
    content_types: tuple[str, ...] = (content_type_for(OUTCOME),)
    media_type: str = content_type_for(OUTCOME)
    schema: ClassVar[str] = f"{OUTCOME}.schema.json"
    event_types: ClassVar[tuple[str, ...]] = ("social-care.referral-outcome",)

    def _canonical(self, document: JSON, problems: list[Violation]) -> JSON:
        child = _person(document["child"], "/child", CHILD_REF, "child", problems)
        data: JSON = {"outcome": document["outcome"]}
        data.update(_copy_keys(document.get("named_worker", {}), _WORKER))
        data.update(_copy_keys(document.get("referrer", {}), _REFERRER))
        if "message_to_referrer" in document:
            data["message_to_referrer"] = document["message_to_referrer"]
        envelope = _envelope(document, "social-care.referral-outcome", "referral-feedback", "decided_at")
        if "referrer" in document:
            envelope["recipients"] = [document["referrer"]["partner_id"]]
        items = [_about_child("event.outcome", "referral-outcome", data)]
        return {"envelope": envelope, "people": [child], "items": items}

    def _native(self, message: Message) -> JSON | None:
        child = _child(message)
        outcome = _item(message, "event.outcome", "referral-outcome")
        if child is None or outcome is None:
            return None
        env = message.envelope
        data = outcome.data
        out: JSON = {
            "reference": env.sender_reference,
            "decided_at": env.occurred_at,
            "outcome": data.get("outcome"),
        }
        worker = _copy_keys(data, tuple((t, k) for k, t in _WORKER))
        if worker:
            out["named_worker"] = worker
        referrer = _copy_keys(data, tuple((t, k) for k, t in _REFERRER))
        if referrer:
            out["referrer"] = referrer
        if data.get("message_to_referrer") is not None:
            out["message_to_referrer"] = data["message_to_referrer"]
        out["child"] = _native_person(child, minimal=True)
        return out


# --- child protection plan and looked-after period ------------------------------------------

CP_PLAN = "social-care-cp-plan"
LOOKED_AFTER = "social-care-looked-after"
_AUTHORITY = (
    ("la_code", "responsible_authority_la_code"),
    ("name", "responsible_authority"),
    ("phone", "responsible_authority_phone"),
    ("out_of_hours_phone", "responsible_authority_out_of_hours_phone"),
)


class _StatusFormat(_SocialCareJson):
    """A status that starts and ends (a CP plan, a looked-after period): one schema with
    ``status: started|ended``, two event types, one ``social-care.status`` item, purpose
    ``safeguarding`` (the status is shared so that others can protect the child)."""

    item_type: ClassVar[str]
    period_key: ClassVar[str]
    period_fields: ClassVar[tuple[tuple[str, str], ...]]
    """(native key inside the period object, canonical item data key)"""

    def _rules(self, document: JSON) -> list[Violation]:
        return _period_rules(document["status"], document[self.period_key], f"/{self.period_key}")

    def _canonical(self, document: JSON, problems: list[Violation]) -> JSON:
        child = _person(document["child"], "/child", CHILD_REF, "child", problems)
        status = document["status"]
        data: JSON = {"status": status}
        data.update(_copy_keys(document[self.period_key], self.period_fields))
        data.update(_copy_keys(document["responsible_authority"], _AUTHORITY))
        envelope = _envelope(
            document, self.event_types[1 if status == "ended" else 0], "safeguarding", "occurred_at"
        )
        items = [_about_child(STATUS_CATEGORY, self.item_type, data)]
        return {"envelope": envelope, "people": [child], "items": items}

    def _native(self, message: Message) -> JSON | None:
        child = _child(message)
        item = _item(message, STATUS_CATEGORY, self.item_type)
        if child is None or item is None:
            return None
        env = message.envelope
        return {
            "reference": env.sender_reference,
            "status": "ended" if env.event_type == self.event_types[1] else "started",
            "occurred_at": env.occurred_at,
            self.period_key: _copy_keys(item.data, tuple((t, k) for k, t in self.period_fields)),
            "responsible_authority": _copy_keys(item.data, tuple((t, k) for k, t in _AUTHORITY)),
            "child": _native_person(child),
        }


class SocialCareCpPlanAdapter(_StatusFormat):
    """A child protection plan started or ended -> ``social-care.cp-plan-started|ended``,
    one ``social-care.status`` item of type ``cp-plan`` (CP-IS style: for health staff in
    unscheduled care: plan, category of abuse, dates, the responsible authority and its
    phone numbers)."""

    name: str = CP_PLAN
    content_types: tuple[str, ...] = (content_type_for(CP_PLAN),)
    media_type: str = content_type_for(CP_PLAN)
    schema: ClassVar[str] = f"{CP_PLAN}.schema.json"
    event_types: ClassVar[tuple[str, ...]] = ("social-care.cp-plan-started", "social-care.cp-plan-ended")
    item_type: ClassVar[str] = "cp-plan"
    period_key: ClassVar[str] = "plan"
    period_fields: ClassVar[tuple[tuple[str, str], ...]] = (
        ("category_of_abuse", "category_of_abuse"),
        ("start_date", "plan_start"),
        ("end_date", "plan_end"),
    )


class SocialCareLookedAfterAdapter(_StatusFormat):
    """A looked-after period started or ended -> ``social-care.looked-after-started|ended``,
    one ``social-care.status`` item of type ``looked-after`` with the SSDA903 legal status
    code (``LEGAL_STATUSES``). Placement addresses are deliberately not part of the format."""

    name: str = LOOKED_AFTER
    content_types: tuple[str, ...] = (content_type_for(LOOKED_AFTER),)
    media_type: str = content_type_for(LOOKED_AFTER)
    schema: ClassVar[str] = f"{LOOKED_AFTER}.schema.json"
    event_types: ClassVar[tuple[str, ...]] = (
        "social-care.looked-after-started",
        "social-care.looked-after-ended",
    )
    item_type: ClassVar[str] = "looked-after"
    period_key: ClassVar[str] = "episode"
    period_fields: ClassVar[tuple[tuple[str, str], ...]] = (
        ("legal_status", "legal_status"),
        ("start_date", "period_start"),
        ("end_date", "period_end"),
    )


ADAPTERS: tuple[Callable[[], _SocialCareJson], ...] = (
    SocialCareReferralAdapter,
    SocialCareReferralOutcomeAdapter,
    SocialCareCpPlanAdapter,
    SocialCareLookedAfterAdapter,
)
"""The four formats, for the registry: ``[make() for make in ADAPTERS]``."""
