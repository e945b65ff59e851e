"""Redaction: reduce a canonical message to exactly what a permit decision releases.

Runs once on the canonical model, so every output format gets the same reduction. The
result MUST contain no field whose category is not in ``decision.released``, no person
whose role the agreement does not release, nothing about a person beyond what the agreement
releases for that person's role, and no address of a person with a confidential-address
marker unless the agreement names that need.
"""

from __future__ import annotations

from dataclasses import replace

from canonical import Item, Message, Person
from canonical.model import IDENTITY_ADDRESS, IDENTITY_CONTACT, IDENTITY_CORE
from consent.decision import Decision, Effect


class NotPermitted(ValueError):
    """Redaction was asked for a decision that is not a permit: a programming error."""


def redact(message: Message, decision: Decision) -> Message:
    """The message reduced to ``decision``. A held (review) decision may be redacted too: what
    the reviewer approves is exactly this."""
    if decision.effect is Effect.DENY:
        raise NotPermitted(f"decision {decision.rule} for {decision.recipient} releases nothing")
    released = decision.released
    people = tuple(
        _redact_person(p, decision.categories_about(p.role), decision.confidential_address_needed)
        for p in message.people
        if p.role in decision.person_roles and p.ref not in decision.excluded_people
    )
    kept_roles = {p.ref: p.role for p in people}
    items = tuple(
        _about_only(i, kept_roles)
        for i in message.items
        if i.category in released
        and (
            not i.about
            or any(
                r in kept_roles and i.category in decision.categories_about(kept_roles[r]) for r in i.about
            )
        )
    )
    return Message(envelope=replace(message.envelope, recipients=()), people=people, items=items)


def _about_only(item: Item, kept_roles: dict[str, str]) -> Item:
    """``item`` naming only the people that are kept (the same object when it names no other)."""
    about = tuple(r for r in item.about if r in kept_roles)
    return item if about == item.about else replace(item, about=about)


def _redact_person(person: Person, released: frozenset[str], confidential_ok: bool) -> Person:
    show_address = IDENTITY_ADDRESS in released and (confidential_ok or not person.has_confidential_address)
    addresses = person.addresses if show_address else ()
    contacts = person.contacts if IDENTITY_CONTACT in released else ()
    if IDENTITY_CORE not in released:
        # Only the local ref and role remain, so items can still say whom they are about.
        return Person(ref=person.ref, role=person.role, addresses=addresses, contacts=contacts)
    if addresses is person.addresses and contacts is person.contacts:
        return person  # nothing of this person is withheld
    return replace(person, addresses=addresses, contacts=contacts)
