"""FHIR message Bundle (already framed, and validated on the full path) -> a canonical
document, ready for ``adapters.inputs.to_message``.

Reads the plain decoded JSON through ``Node`` (shape-checked, located) rather than the
``fhir.resources`` objects, so the full and the light path share one mapping, and so that
strings such as ``Bundle.timestamp`` are carried exactly as sent.

Semantic problems (a bad NHS number check digit, an unknown event code, an unresolvable
reference) are collected and raised together; a value of the wrong JSON type stops at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from adapters.fhir import codes, elements
from adapters.fhir.reader import MAX_TEXT, NAME, Node, reject
from adapters.identifiers import identifier_violation, normalise
from canonical import DataDictionary, InvalidInput, Violation

JSON = dict[str, Any]


class _Parse:
    """One parse: the Bundle, the person index built from it, and the problems found."""

    def __init__(self, bundle: Node, resources: list[Node], dictionary: DataDictionary) -> None:
        self.bundle = bundle
        self.resources = resources
        self.dictionary = dictionary
        self.problems: list[Violation] = []
        self.refs: dict[str, str] = {}
        """fullUrl or ``Type/id`` of a Patient/RelatedPerson -> canonical person ref."""
        self.ref_at: dict[int, str] = {}
        """entry index -> person ref"""

    def problem(self, field: str, rule: str, message: str) -> None:
        self.problems.append(Violation(field, rule, message))

    # -- envelope -----------------------------------------------------------------------

    def envelope(self) -> JSON:
        header = self.resources[0]
        env: JSON = {"event_type": self.event_type(header), "purpose": self.purpose(header)}
        timestamp = self.bundle.text("timestamp", 40)
        if timestamp is None:
            self.problem("Bundle.timestamp", "fhir-required", "a message Bundle needs its timestamp")
        env["occurred_at"] = timestamp or ""
        identifier = self.bundle.obj("identifier")
        reference = identifier.text("value", 100) if identifier is not None else None
        if reference:
            env["sender_reference"] = reference
        flags = {
            key: True
            for key, url in (
                ("risk_of_significant_harm", codes.EXT_RISK_OF_SIGNIFICANT_HARM),
                ("do_not_inform_family", codes.EXT_DO_NOT_INFORM_FAMILY),
            )
            if any(ext.boolean("valueBoolean") for ext in elements.extensions(header, url))
        }
        if flags:
            env["flags"] = flags
        recipients: list[str] = []
        for destination in header.objs("destination"):
            endpoint = destination.text("endpoint", 200) or ""
            partner = endpoint.removeprefix(codes.PARTNER_URN)
            if endpoint.startswith(codes.PARTNER_URN) and partner not in recipients:
                recipients.append(partner)
        if recipients:
            env["recipients"] = recipients
        return env

    def event_type(self, header: Node) -> str:
        coding = header.obj("eventCoding")
        if coding is None:
            self.problem(
                header.at("eventCoding"), "fhir-event-code", "expected an eventCoding of our event types"
            )
            return ""
        if coding.text("system", 200) != codes.EVENT_SYSTEM:
            self.problem(
                coding.at("system"), "fhir-event-system", f"expected the system {codes.EVENT_SYSTEM}"
            )
        code = coding.text("code", 100) or ""
        if code not in self.dictionary.event_types:
            self.problem(coding.at("code"), "fhir-event-code", "not an event type of the event catalogue")
        return code

    def purpose(self, header: Node) -> str:
        reason = header.obj("reason")
        for coding in reason.objs("coding") if reason is not None else []:
            if coding.text("system", 200) == codes.PURPOSE_SYSTEM:
                code = coding.text("code", 100) or ""
                if code not in self.dictionary.purposes:
                    self.problem(coding.at("code"), "fhir-purpose", "not a purpose of the data dictionary")
                return code
        return codes.DEFAULT_PURPOSE

    # -- people -------------------------------------------------------------------------

    def index_people(self, entries: list[Node]) -> None:
        taken: set[str] = set()
        for n, (entry, resource) in enumerate(zip(entries, self.resources, strict=True)):
            kind = resource.value["resourceType"]
            if kind not in {"Patient", "RelatedPerson"}:
                continue
            fid = resource.text("id", 64)
            ref = fid if fid is not None and codes.TOKEN.fullmatch(fid) else f"person-{n}"
            if ref in taken:
                self.problem(resource.at("id"), "fhir-unique-id", "another person in this Bundle has this id")
            taken.add(ref)
            self.ref_at[n] = ref
            full_url = entry.text("fullUrl", 400)
            if full_url:
                self.refs[full_url] = ref
            if fid is not None:
                self.refs[f"{kind}/{fid}"] = ref

    def person(self, resource: Node, ref: str) -> JSON:
        kind = resource.value["resourceType"]
        person: JSON = {"ref": ref, "role": "child" if kind == "Patient" else self.role(resource)}
        identifiers = list(self.identifiers(resource))
        if identifiers:
            person["identifiers"] = identifiers
        name = elements.human_name(resource.objs("name"))
        if name:
            person["name"] = name
        birth_date = resource.text("birthDate", 40)
        if birth_date is not None:
            if not codes.FULL_DATE.fullmatch(birth_date):
                self.problem(resource.at("birthDate"), "full-date", "expected a full date (YYYY-MM-DD)")
            person["birth_date"] = birth_date
        gender = resource.text("gender", 40)
        if gender is not None:
            if gender not in codes.GENDERS:
                self.problem(resource.at("gender"), "fhir-code", "expected male, female, other or unknown")
            person["sex"] = gender
        addresses = [elements.address(a) for a in resource.objs("address")]
        if addresses:
            person["addresses"] = addresses
        contacts = [
            {"kind": kind, "value": value}
            for t in resource.objs("telecom")
            if (kind := codes.TELECOM_IN.get(t.text("system", 40) or "")) and (value := t.text("value", 200))
        ]
        if contacts:
            person["contacts"] = contacts
        markers = sorted(set(self.markers(resource)))
        if markers:
            person["markers"] = markers
        return person

    def role(self, resource: Node) -> str:
        v3: str | None = None
        for concept in resource.objs("relationship"):
            for coding in concept.objs("coding"):
                system, code = coding.text("system", 200), coding.text("code", 100) or ""
                if system == codes.ROLE_SYSTEM and code in self.dictionary.person_roles - {"child"}:
                    return code
                if system == codes.ROLE_CODE and v3 is None:
                    v3 = codes.ROLE_FROM_V3.get(code)
        if v3 is None:
            self.problem(
                resource.at("relationship"),
                "related-person-role",
                f"expected a relationship coded in {codes.ROLE_SYSTEM} or a v3 RoleCode for a parent, "
                "sibling or guardian/foster carer",
            )
            return "household-member"
        return v3

    def identifiers(self, resource: Node) -> Iterable[JSON]:
        for ident in resource.objs("identifier"):
            system = codes.IDENTIFIER_SYSTEMS.get(ident.text("system", 200) or "")
            value = ident.text("value", 64)
            if system is None or value is None:
                continue
            value = normalise(system, value)
            problem = identifier_violation(system, value, ident.at("value"))
            if problem is not None:
                self.problems.append(problem)
            yield {"system": system, "value": value}

    def markers(self, resource: Node) -> Iterable[str]:
        if codes.CONFIDENTIAL_ADDRESS_CODES & elements.security_labels(resource):
            yield "confidential-address"
        for ext in elements.extensions(resource, codes.EXT_PERSON_MARKER):
            code = ext.text("valueCode", 100)
            if code is not None:
                if code not in self.dictionary.markers:
                    self.problem(ext.at("valueCode"), "fhir-code", "not a marker of the data dictionary")
                yield code

    # -- items --------------------------------------------------------------------------

    def items(self, resource: Node) -> Iterable[JSON]:
        kind = resource.value["resourceType"]
        if kind == "Encounter":
            yield from self.encounter(resource)
        elif kind == "Flag":
            yield from self.flag(resource)
        elif kind == "ServiceRequest":
            yield from self.referral(resource, resource.objs("category"), resource.objs("reasonCode"))
        elif kind == "Communication":
            yield from self.communication(resource)

    def encounter(self, resource: Node) -> Iterable[JSON]:
        klass = resource.obj("class")
        code = klass.text("code", 40) if klass is not None else None
        kind = codes.ENCOUNTER_CLASSES.get(code or "")
        if klass is None or kind is None or klass.text("system", 200) not in {None, codes.ACT_CODE}:
            self.problem(
                resource.at("class"), "encounter-class", "expected a v3 ActCode class EMER, IMP or AMB"
            )
            return
        data: JSON = {}
        locations = resource.objs("location")
        place = locations[0].obj("location") if locations else None
        if place is not None and (setting := place.text("display")):
            data["setting"] = setting
        period = resource.obj("period")
        if period is not None:
            elements.put(data, "arrived_at", period.text("start", 40))
            elements.put(data, "left_at", period.text("end", 40))
        yield self.item(resource, "health.attendance", kind, data, self.about(resource, "subject"))

    def flag(self, resource: Node) -> Iterable[JSON]:
        concept = resource.obj("code")
        kind = None
        for coding in concept.objs("coding") if concept is not None else []:
            if coding.text("system", 200) == codes.SOCIAL_CARE_STATUS_SYSTEM:
                kind = codes.SOCIAL_CARE_STATUSES.get(coding.text("code", 100) or "")
        if kind is None:
            self.problem(
                resource.at("code"),
                "flag-code",
                f"expected a code of {codes.SOCIAL_CARE_STATUS_SYSTEM}: "
                + ", ".join(codes.SOCIAL_CARE_STATUSES),
            )
            return
        data: JSON = {}
        status = resource.text("status", 40)
        if status is not None and status not in codes.FLAG_STATUSES:
            self.problem(resource.at("status"), "fhir-code", "expected active, inactive or entered-in-error")
        elements.put(data, "status", status)
        period = resource.obj("period")
        if period is not None:
            elements.put(data, "start", period.text("start", 40))
            elements.put(data, "end", period.text("end", 40))
        author = resource.obj("author")
        if author is not None:
            elements.put(data, "responsible_authority", author.text("display", 200))
        yield self.item(resource, "social-care.status", kind, data, self.about(resource, "subject"))

    def referral(self, resource: Node, categories: list[Node], reasons: list[Node]) -> Iterable[JSON]:
        about = self.about(resource, "subject")
        summary: JSON = {}
        elements.put(summary, "category", elements.concept_text(categories))
        elements.put(summary, "reason", elements.concept_text(reasons))
        if summary:
            yield self.item(resource, "event.summary", codes.REFERRAL_SUMMARY, summary, about)
        notes = [text for note in resource.objs("note") if (text := note.text("text"))]
        notes += [text for p in resource.objs("payload") if (text := p.text("contentString"))]
        if notes:
            joined = "\n\n".join(notes)
            if len(joined) > MAX_TEXT:
                raise reject(resource.at("note"), "max-length", f"longer than {MAX_TEXT} characters together")
            yield self.item(resource, "event.narrative", codes.REFERRAL_NOTE, {"text": joined}, about)

    def communication(self, resource: Node) -> Iterable[JSON]:
        categories = resource.objs("category")
        category = elements.code_in(categories, codes.ITEM_CATEGORY_SYSTEM)
        if category is None:  # a partner's own referral Communication
            yield from self.referral(resource, categories, resource.objs("reasonCode"))
            return
        if category not in self.dictionary.categories:
            self.problem(resource.at("category"), "fhir-code", "not a category of the data dictionary")
        topic = resource.obj("topic")
        item_type = elements.code_in([topic] if topic is not None else [], codes.ITEM_TYPE_SYSTEM)
        if item_type is None:
            self.problem(
                resource.at("topic"),
                "fhir-required",
                f"an item carrier needs a topic in {codes.ITEM_TYPE_SYSTEM}",
            )
        about: list[str] = []
        for reference in resource.objs("about"):
            ref = self.resolve(reference)
            if ref is not None and ref not in about:
                about.append(ref)
        payloads = resource.objs("payload")
        attachment = payloads[0].obj("contentAttachment") if len(payloads) == 1 else None
        if attachment is None or attachment.text("contentType", 100) != "application/json":
            raise reject(
                resource.at("payload"),
                "item-carrier-payload",
                "an item carrier has one payload: an application/json contentAttachment",
            )
        yield self.item(resource, category, item_type or "", elements.attached_json(attachment), about)

    def item(self, resource: Node, category: str, kind: str, data: JSON, about: list[str]) -> JSON:
        item: JSON = {"category": category, "type": kind}
        if about:
            item["about"] = about
        labels = sorted(elements.security_labels(resource))
        if labels:
            item["labels"] = labels
        item["data"] = data
        return item

    def about(self, resource: Node, key: str) -> list[str]:
        reference = resource.obj(key)
        ref = self.resolve(reference) if reference is not None else None
        return [ref] if ref is not None else []

    def resolve(self, reference: Node) -> str | None:
        target = reference.text("reference", 400)
        if target is None:
            return None
        ref = self.refs.get(target)
        if ref is None:
            self.problem(
                reference.at("reference"),
                "fhir-reference",
                "must reference a Patient or RelatedPerson in this Bundle (by fullUrl or Type/id)",
            )
        return ref


def to_canonical(bundle: Node, resources: list[Node], dictionary: DataDictionary) -> JSON:
    """The canonical document of a framed message Bundle; ``InvalidInput`` naming FHIR
    locations for everything this mapping refuses."""
    parse = _Parse(bundle, resources, dictionary)
    entries = bundle.objs("entry")
    envelope = parse.envelope()
    parse.index_people(entries)
    people: list[JSON] = []
    items: list[JSON] = []
    for n, resource in enumerate(resources):
        if n in parse.ref_at:
            people.append(parse.person(resource, parse.ref_at[n]))
        else:
            items.extend(parse.items(resource))
    if parse.problems:
        raise InvalidInput(parse.problems, adapter=NAME)
    return {"envelope": envelope, "people": people, "items": items}
