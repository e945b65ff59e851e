"""Typed canonical message (the JSON Schema in ``schemas/canonical-message.schema.json`` is
the contract; these classes are its Python face).

Category of every person field (DESIGN 3: each field belongs to exactly one category):

==============================================  ====================
field                                           category
==============================================  ====================
ref, role, identifiers, name, birth_date, sex,  identity.core
markers
addresses                                       identity.address
contacts                                        identity.contact
item (whole item)                               item.category
envelope                                        metadata, released to every permitted recipient
==============================================  ====================

The classes are immutable; ``from_dict`` expects a document that already passed the
schema (see ``canonical.validate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

IDENTITY_CORE = "identity.core"
IDENTITY_ADDRESS = "identity.address"
IDENTITY_CONTACT = "identity.contact"
# (has an address, has a contact) -> the person's categories; built once, shared.
_PERSON_CATEGORIES = {
    (address, contact): frozenset(
        {IDENTITY_CORE}
        | ({IDENTITY_ADDRESS} if address else set())
        | ({IDENTITY_CONTACT} if contact else set())
    )
    for address in (False, True)
    for contact in (False, True)
}
PERSON_CATEGORIES = frozenset({IDENTITY_CORE, IDENTITY_ADDRESS, IDENTITY_CONTACT})
CONFIDENTIAL_ADDRESS = "confidential-address"

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Identifier:
    system: str
    value: str

    def as_dict(self) -> JSON:
        return {"system": self.system, "value": self.value}


@dataclass(frozen=True, slots=True)
class Name:
    given: str | None = None
    family: str | None = None

    def as_dict(self) -> JSON:
        return _drop_none({"given": self.given, "family": self.family})


@dataclass(frozen=True, slots=True)
class Address:
    lines: tuple[str, ...] = ()
    postcode: str | None = None
    use: str | None = None

    def as_dict(self) -> JSON:
        return _drop_none({"use": self.use, "lines": list(self.lines) or None, "postcode": self.postcode})


@dataclass(frozen=True, slots=True)
class Contact:
    kind: str
    value: str

    def as_dict(self) -> JSON:
        return {"kind": self.kind, "value": self.value}


@dataclass(frozen=True, slots=True)
class Person:
    ref: str
    role: str
    identifiers: tuple[Identifier, ...] = ()
    name: Name | None = None
    birth_date: str | None = None
    sex: str | None = None
    addresses: tuple[Address, ...] = ()
    contacts: tuple[Contact, ...] = ()
    markers: frozenset[str] = frozenset()

    @property
    def has_confidential_address(self) -> bool:
        return CONFIDENTIAL_ADDRESS in self.markers

    def categories(self) -> frozenset[str]:
        """The categories this person's present fields belong to."""
        return _PERSON_CATEGORIES[(bool(self.addresses), bool(self.contacts))]

    @classmethod
    def from_dict(cls, d: JSON) -> Person:
        name = d.get("name")
        return cls(
            ref=d["ref"],
            role=d["role"],
            identifiers=tuple(Identifier(i["system"], i["value"]) for i in d.get("identifiers", ())),
            name=Name(name.get("given"), name.get("family")) if name is not None else None,
            birth_date=d.get("birth_date"),
            sex=d.get("sex"),
            addresses=tuple(
                Address(tuple(a.get("lines", ())), a.get("postcode"), a.get("use"))
                for a in d.get("addresses", ())
            ),
            contacts=tuple(Contact(c["kind"], c["value"]) for c in d.get("contacts", ())),
            markers=frozenset(d.get("markers", ())),
        )

    def as_dict(self) -> JSON:
        out: JSON = {"ref": self.ref, "role": self.role}
        if self.identifiers:
            out["identifiers"] = [i.as_dict() for i in self.identifiers]
        if self.name is not None:
            out["name"] = self.name.as_dict()
        if self.birth_date is not None:
            out["birth_date"] = self.birth_date
        if self.sex is not None:
            out["sex"] = self.sex
        if self.addresses:
            out["addresses"] = [a.as_dict() for a in self.addresses]
        if self.contacts:
            out["contacts"] = [c.as_dict() for c in self.contacts]
        if self.markers:
            out["markers"] = sorted(self.markers)
        return out


@dataclass(frozen=True, slots=True)
class Item:
    category: str
    type: str
    data: JSON
    about: tuple[str, ...] = ()
    labels: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, d: JSON) -> Item:
        return cls(
            category=d["category"],
            type=d["type"],
            data=d["data"],
            about=tuple(d.get("about", ())),
            labels=frozenset(d.get("labels", ())),
        )

    def as_dict(self) -> JSON:
        out: JSON = {"category": self.category, "type": self.type}
        if self.about:
            out["about"] = list(self.about)
        if self.labels:
            out["labels"] = sorted(self.labels)
        out["data"] = self.data
        return out


@dataclass(frozen=True, slots=True)
class Flags:
    risk_of_significant_harm: bool = False
    do_not_inform_family: bool = False

    def as_dict(self) -> JSON:
        return {k: True for k in ("risk_of_significant_harm", "do_not_inform_family") if getattr(self, k)}


@dataclass(frozen=True, slots=True)
class Envelope:
    event_type: str
    occurred_at: str
    purpose: str
    source: str = ""
    message_id: str = ""
    received_at: str = ""
    flags: Flags = field(default_factory=Flags)
    sender_reference: str | None = None
    recipients: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: JSON) -> Envelope:
        flags = d.get("flags", {})
        return cls(
            event_type=d["event_type"],
            occurred_at=d["occurred_at"],
            purpose=d["purpose"],
            source=d.get("source", ""),
            message_id=d.get("message_id", ""),
            received_at=d.get("received_at", ""),
            flags=Flags(
                bool(flags.get("risk_of_significant_harm", False)),
                bool(flags.get("do_not_inform_family", False)),
            ),
            sender_reference=d.get("sender_reference"),
            recipients=tuple(d.get("recipients", ())),
        )

    def as_dict(self, *, include_recipients: bool = True) -> JSON:
        out: JSON = {
            "message_id": self.message_id or None,
            "source": self.source or None,
            "event_type": self.event_type,
            "occurred_at": self.occurred_at,
            "received_at": self.received_at or None,
            "purpose": self.purpose,
            "sender_reference": self.sender_reference,
        }
        flags = self.flags.as_dict()
        if flags:
            out["flags"] = flags
        if include_recipients and self.recipients:
            out["recipients"] = list(self.recipients)
        return _drop_none(out)


@dataclass(frozen=True, slots=True)
class Message:
    envelope: Envelope
    people: tuple[Person, ...] = ()
    items: tuple[Item, ...] = ()
    _categories: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cats: set[str] = set()
        for p in self.people:
            cats |= p.categories()
        cats.update(i.category for i in self.items)
        object.__setattr__(self, "_categories", frozenset(cats))

    @classmethod
    def from_dict(cls, d: JSON) -> Message:
        return cls(
            envelope=Envelope.from_dict(d["envelope"]),
            people=tuple(Person.from_dict(p) for p in d.get("people", ())),
            items=tuple(Item.from_dict(i) for i in d.get("items", ())),
        )

    def as_dict(self, *, include_recipients: bool = True) -> JSON:
        return {
            "envelope": self.envelope.as_dict(include_recipients=include_recipients),
            "people": [p.as_dict() for p in self.people],
            "items": [i.as_dict() for i in self.items],
        }

    def with_envelope(self, **changes: Any) -> Message:
        return Message(replace(self.envelope, **changes), self.people, self.items)

    def categories(self) -> frozenset[str]:
        """Every category this message carries a value for (computed once, at construction)."""
        return self._categories

    def children(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.role == "child")


def _drop_none(d: JSON) -> JSON:
    return {k: v for k, v in d.items() if v is not None}
