"""A (redacted) canonical message -> a FHIR R4 message Bundle, as plain JSON values.

Built as dicts, not ``fhir.resources`` objects: the input is our own validated canonical
model, so the library's checks would only re-prove what the tests already prove (a test
validates every rendered Bundle with the library), at about 90 times the cost.

What is written (``docs/formats/fhir-r4.md`` has the table):

* entry 0, MessageHeader: ``id`` = message id, ``eventCoding`` = event type, ``reason`` =
  purpose, ``source`` = the sending partner, flag and received-at extensions.
* one Patient per ``child``, one RelatedPerson per other person (``RelatedPerson.patient``
  is required, so a message with adults but no child is ``NotRenderable``).
* per item, in order: ``health.attendance`` -> Encounter, ``social-care.status`` -> Flag,
  a referral summary (and the referral note after it) -> ServiceRequest, when the item fits
  that resource exactly (type, data keys, one child as subject); any other item -> a
  Communication "item carrier" whose payload is the item's data as an
  ``application/json`` attachment, so no category is ever dropped or reshaped.

It MUST NOT invent data: absent categories give no resource, absent fields no element.
The only fixed values are the codes FHIR requires (Encounter/ServiceRequest/Communication
``status``, ServiceRequest ``intent``), documented in the format page.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Sequence
from itertools import count
from typing import Any

from adapters.base import NotRenderable
from adapters.fhir import codes
from adapters.inputs import dumps
from canonical import Item, Message, Person

JSON = dict[str, Any]
_NAMESPACE = uuid.UUID("5b0f3f57-3c4e-4f7a-9a51-6d3c1b1f0e21")
"""Fixed namespace for the fullUrls (uuid5 of message id and ref): the same message always
renders to the same bytes, so a redelivery is byte-identical."""


class _Render:
    def __init__(self, message: Message) -> None:
        self.message = message
        self.seed = message.envelope.message_id or message.envelope.sender_reference or ""
        self.ids: dict[str, str] = {}
        self.urls: dict[str, str] = {}
        # A ref that is no FHIR id (an underscore, over 64 characters) gets a free
        # ``person-<n>``; it comes back under that name (documented).
        taken = {p.ref for p in message.people if codes.FHIR_ID.fullmatch(p.ref)}
        for n, person in enumerate(message.people):
            fid = person.ref
            if fid not in taken:
                fid = next(c for k in count() if (c := f"person-{n}" + (f"-{k}" if k else "")) not in taken)
                taken.add(fid)
            self.ids[person.ref] = fid
            self.urls[person.ref] = self.url(f"person/{person.ref}")
        self.children = {p.ref for p in message.people if p.role == "child"}

    def url(self, key: str) -> str:
        return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{self.seed}/{key}')}"

    def bundle(self) -> JSON:
        env = self.message.envelope
        entries = [{"fullUrl": self.url("header"), "resource": self.header()}]
        entries += [{"fullUrl": self.urls[p.ref], "resource": self.person(p)} for p in self.message.people]
        entries += [
            {"fullUrl": self.url(f"item/{n}"), "resource": resource}
            for n, resource in enumerate(self.item_resources())
        ]
        bundle: JSON = {"resourceType": "Bundle"}
        if codes.FHIR_ID.fullmatch(env.message_id):
            bundle["id"] = env.message_id
        if env.sender_reference:
            bundle["identifier"] = {"system": codes.SENDER_REFERENCE_SYSTEM, "value": env.sender_reference}
        bundle.update(type="message", timestamp=env.occurred_at, entry=entries)
        return bundle

    def header(self) -> JSON:
        env = self.message.envelope
        header: JSON = {"resourceType": "MessageHeader"}
        if codes.FHIR_ID.fullmatch(env.message_id):
            header["id"] = env.message_id
        extensions = [
            {"url": url, "valueBoolean": True}
            for url, on in (
                (codes.EXT_RISK_OF_SIGNIFICANT_HARM, env.flags.risk_of_significant_harm),
                (codes.EXT_DO_NOT_INFORM_FAMILY, env.flags.do_not_inform_family),
            )
            if on
        ]
        if env.received_at:
            extensions.append({"url": codes.EXT_RECEIVED_AT, "valueInstant": env.received_at})
        if extensions:
            header["extension"] = extensions
        header["eventCoding"] = {"system": codes.EVENT_SYSTEM, "code": env.event_type}
        # Recipients are never told whom else the sender named: no ``destination``.
        if env.source:
            header["source"] = {"name": env.source, "endpoint": codes.PARTNER_URN + env.source}
        else:  # source.endpoint is required; a message not from the gateway has no partner
            header["source"] = {"endpoint": codes.PARTNER_URN.rstrip(":")}
        header["reason"] = {"coding": [{"system": codes.PURPOSE_SYSTEM, "code": env.purpose}]}
        return header

    # -- people -------------------------------------------------------------------------

    def person(self, person: Person) -> JSON:
        kind = "Patient" if person.role == "child" else "RelatedPerson"
        out: JSON = {"resourceType": kind, "id": self.ids[person.ref]}
        if person.has_confidential_address:
            out["meta"] = {"security": [{"system": codes.CONFIDENTIALITY, "code": "R"}]}
        others = sorted(person.markers - {"confidential-address"})
        if others:
            out["extension"] = [{"url": codes.EXT_PERSON_MARKER, "valueCode": m} for m in others]
        if person.identifiers:
            out["identifier"] = [
                {"system": codes.IDENTIFIER_URLS[i.system], "value": i.value}
                for i in person.identifiers
                if i.system in codes.IDENTIFIER_URLS
            ]
        if kind == "RelatedPerson":
            child = next((p.ref for p in self.message.people if p.role == "child"), None)
            if child is None:
                raise NotRenderable(
                    f"{self.message.envelope.event_type} as fhir-r4: a RelatedPerson needs a child "
                    "(Patient) in the message"
                )
            out["patient"] = {"reference": self.urls[child]}
            coding = [{"system": codes.ROLE_SYSTEM, "code": person.role}]
            if person.role in codes.V3_FOR_ROLE:
                coding.append({"system": codes.ROLE_CODE, "code": codes.V3_FOR_ROLE[person.role]})
            out["relationship"] = [{"coding": coding}]
        if person.name is not None and (person.name.given or person.name.family):
            name: JSON = {}
            if person.name.family:
                name["family"] = person.name.family
            if person.name.given:
                name["given"] = [person.name.given]
            out["name"] = [name]
        if person.contacts:
            out["telecom"] = [{"system": c.kind, "value": c.value} for c in person.contacts]
        if person.sex is not None:
            out["gender"] = person.sex
        if person.birth_date is not None:
            out["birthDate"] = person.birth_date
        if person.addresses:
            out["address"] = [_address(a.use, a.lines, a.postcode) for a in person.addresses]
        return out

    # -- items --------------------------------------------------------------------------

    def item_resources(self) -> Iterable[JSON]:
        items = self.message.items
        n = 0
        while n < len(items):
            item = items[n]
            following = items[n + 1] if n + 1 < len(items) else None
            if _is_referral_summary(item, self.children):
                note = following if following is not None and _is_note_for(following, item) else None
                yield self.service_request(item, note)
                n += 2 if note is not None else 1
                continue
            if _is_referral_note(item, self.children):
                yield self.service_request(None, item)
            elif _is_encounter(item, self.children):
                yield self.encounter(item)
            elif _is_flag(item, self.children):
                yield self.flag(item)
            else:
                yield self.carrier(item)
            n += 1

    def encounter(self, item: Item) -> JSON:
        out = _resource("Encounter", item)
        out["status"] = "finished" if "left_at" in item.data else "unknown"
        out["class"] = {"system": codes.ACT_CODE, "code": codes.ENCOUNTER_TYPES[item.type]}
        if item.about:
            out["subject"] = {"reference": self.urls[item.about[0]]}
        period = _drop_empty({"start": item.data.get("arrived_at"), "end": item.data.get("left_at")})
        if period:
            out["period"] = period
        if "setting" in item.data:
            out["location"] = [{"location": {"display": item.data["setting"]}}]
        return out

    def flag(self, item: Item) -> JSON:
        out = _resource("Flag", item)
        out["status"] = item.data["status"]
        out["code"] = {
            "coding": [{"system": codes.SOCIAL_CARE_STATUS_SYSTEM, "code": codes.FLAG_CODES[item.type]}]
        }
        out["subject"] = {"reference": self.urls[item.about[0]]}
        period = _drop_empty({"start": item.data.get("start"), "end": item.data.get("end")})
        if period:
            out["period"] = period
        if "responsible_authority" in item.data:
            out["author"] = {"display": item.data["responsible_authority"]}
        return out

    def service_request(self, summary: Item | None, note: Item | None) -> JSON:
        basis = summary or note
        assert basis is not None
        out = _resource("ServiceRequest", basis)
        out.update(status="active", intent="order")
        if summary is not None and "category" in summary.data:
            out["category"] = [{"text": summary.data["category"]}]
        out["subject"] = {"reference": self.urls[basis.about[0]]}
        if summary is not None and "reason" in summary.data:
            out["reasonCode"] = [{"text": summary.data["reason"]}]
        if note is not None:
            out["note"] = [{"text": note.data["text"]}]
        return out

    def carrier(self, item: Item) -> JSON:
        out = _resource("Communication", item)
        out["status"] = "completed"
        out["category"] = [{"coding": [{"system": codes.ITEM_CATEGORY_SYSTEM, "code": item.category}]}]
        if item.about:
            out["about"] = [{"reference": self.urls[ref]} for ref in item.about if ref in self.urls]
        out["topic"] = {"coding": [{"system": codes.ITEM_TYPE_SYSTEM, "code": item.type}]}
        attachment = {"contentType": "application/json", "data": base64.b64encode(dumps(item.data)).decode()}
        out["payload"] = [{"contentAttachment": attachment}]
        return out


def to_bundle(message: Message) -> JSON:
    """The message Bundle for ``message``; ``NotRenderable`` if FHIR cannot carry it."""
    return _Render(message).bundle()


def _resource(kind: str, item: Item) -> JSON:
    out: JSON = {"resourceType": kind}
    if item.labels:
        out["meta"] = {
            "security": [
                {"system": codes.LABEL_SYSTEMS[label], "code": label} for label in sorted(item.labels)
            ]
        }
    return out


def _address(use: str | None, lines: Sequence[str], postcode: str | None) -> JSON:
    out: JSON = {}
    if use == codes.CORRESPONDENCE:
        out["type"] = "postal"
    elif use is not None:
        out["use"] = codes.ADDRESS_USE_OUT[use]
    if lines:
        out["line"] = list(lines)
    if postcode is not None:
        out["postalCode"] = postcode
    return out


def _drop_empty(values: JSON) -> JSON:
    return {k: v for k, v in values.items() if v is not None}


# An item gets a specific resource only if every one of its data values has a home there
# and the values are of the FHIR datatype: otherwise the carrier keeps it whole.


def _strings(item: Item, allowed: set[str], required: Sequence[str] = ()) -> bool:
    return (
        set(item.data) <= allowed
        and all(k in item.data for k in required)
        and all(isinstance(v, str) and v.strip() == v and v for v in item.data.values())
    )


def _about_one_child(item: Item, children: set[str]) -> bool:
    return len(item.about) == 1 and item.about[0] in children


def _labels_fit(item: Item) -> bool:
    return item.labels <= codes.LABEL_SYSTEMS.keys()


def _is_encounter(item: Item, children: set[str]) -> bool:
    return (
        item.category == "health.attendance"
        and item.type in codes.ENCOUNTER_TYPES
        and (not item.about or _about_one_child(item, children))
        and _strings(item, {"setting", "arrived_at", "left_at"})
        and all(codes.DATE_TIME.fullmatch(item.data[k]) for k in ("arrived_at", "left_at") if k in item.data)
        and _labels_fit(item)
    )


def _is_flag(item: Item, children: set[str]) -> bool:
    return (
        item.category == "social-care.status"
        and item.type in codes.FLAG_CODES
        and _about_one_child(item, children)
        and _strings(item, {"status", "start", "end", "responsible_authority"}, ("status",))
        and item.data["status"] in codes.FLAG_STATUSES
        and all(
            codes.DATE_TIME.fullmatch(item.data[k]) or codes.FULL_DATE.fullmatch(item.data[k])
            for k in ("start", "end")
            if k in item.data
        )
        and _labels_fit(item)
    )


def _is_referral_summary(item: Item, children: set[str]) -> bool:
    return (
        item.category == "event.summary"
        and item.type == codes.REFERRAL_SUMMARY
        and _about_one_child(item, children)
        and bool(item.data)
        and _strings(item, {"category", "reason"})
        and _labels_fit(item)
    )


def _is_referral_note(item: Item, children: set[str]) -> bool:
    return (
        item.category == "event.narrative"
        and item.type == codes.REFERRAL_NOTE
        and _about_one_child(item, children)
        and _strings(item, {"text"}, ("text",))
        and _labels_fit(item)
    )


def _is_note_for(note: Item, summary: Item) -> bool:
    """A referral note renders into its summary's ServiceRequest only if nothing about it
    differs from the summary but its data (one resource has one subject and one label set)."""
    return (
        note.category == "event.narrative"
        and note.type == codes.REFERRAL_NOTE
        and note.about == summary.about
        and note.labels == summary.labels
        and _strings(note, {"text"}, ("text",))
    )
