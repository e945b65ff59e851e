"""People in our police documents <-> canonical people.

A native person is flat (``police_reference``, ``nhs_number``, ``given_name``,
``date_of_birth``...). Identifier order in the canonical person is fixed (NHS number, UPN,
local child id, police reference) so that parse(render(m)) == m. NHS numbers and UPNs are
checked with ``adapters.identifiers`` (python-stdnum) and stored in compact form.

Confidential addresses: an address with ``confidential: true`` or ``use: refuge``, or a
person with ``confidential_address: true``, gives the person the ``confidential-address``
marker (the consent engine then withholds that person's addresses from every recipient
not explicitly entitled). A refuge becomes a canonical ``temporary`` address. The marker
belongs to identity.core, so it survives when redaction removes the addresses; that is why
the renderer writes it on the person (``confidential_address``), never on an address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.identifiers import (
    LOCAL_CHILD_ID,
    NHS_NUMBER,
    POLICE_REFERENCE,
    UPN,
    identifier_violation,
    normalise,
)
from canonical import Person, Violation
from canonical.model import CONFIDENTIAL_ADDRESS

DO_NOT_CONTACT_FAMILY = "do-not-contact-family"
IDENTIFIER_FIELDS = (
    ("nhs_number", NHS_NUMBER),
    ("upn", UPN),
    ("local_child_id", LOCAL_CHILD_ID),
    ("police_reference", POLICE_REFERENCE),
)
_CHECKED = {NHS_NUMBER, UPN}


def person_to_canonical(
    native: Mapping[str, Any],
    *,
    ref: str,
    role: str,
    at: str,
    problems: list[Violation],
    contacts_field: str = "contacts",
) -> dict[str, Any]:
    """A schema-valid native person at pointer ``at`` -> a canonical person document."""
    out: dict[str, Any] = {"ref": ref, "role": role}
    identifiers = []
    for name, system in IDENTIFIER_FIELDS:
        value = native.get(name)
        if value is None:
            continue
        violation = identifier_violation(system, value, f"{at}/{name}")
        if violation is not None:
            problems.append(violation)
            continue
        identifiers.append(
            {"system": system, "value": normalise(system, value) if system in _CHECKED else value}
        )
    if identifiers:
        out["identifiers"] = identifiers
    name_doc = {k: native[f] for k, f in (("given", "given_name"), ("family", "family_name")) if f in native}
    if name_doc:
        out["name"] = name_doc
    if "date_of_birth" in native:
        out["birth_date"] = native["date_of_birth"]
    if "sex" in native:
        out["sex"] = native["sex"]
    confidential = bool(native.get("confidential_address"))
    addresses = []
    for address in native.get("addresses", ()):
        use = address.get("use")
        if use == "refuge" or address.get("confidential"):
            confidential = True
        canonical: dict[str, Any] = {}
        if use is not None:
            canonical["use"] = "temporary" if use == "refuge" else use
        if address.get("lines"):
            canonical["lines"] = list(address["lines"])
        if "postcode" in address:
            canonical["postcode"] = address["postcode"]
        addresses.append(canonical)
    if addresses:
        out["addresses"] = addresses
    contacts = [{"kind": c["type"], "value": c["value"]} for c in native.get(contacts_field, ())]
    if contacts:
        out["contacts"] = contacts
    markers = ([CONFIDENTIAL_ADDRESS] if confidential else []) + (
        [DO_NOT_CONTACT_FAMILY] if native.get("do_not_contact_family") else []
    )
    if markers:
        out["markers"] = markers
    return out


def person_to_native(
    person: Person,
    *,
    with_id: bool = True,
    with_role: bool = False,
    with_addresses: bool = True,
    contacts_field: str | None = "contacts",
) -> dict[str, Any]:
    """A canonical person -> a native person. Only the first identifier of each system is
    written (a native person has one field per system); identifiers of other systems and
    fields the format has no place for are not rendered."""
    out: dict[str, Any] = {}
    if with_id:
        out["id"] = person.ref
    if with_role:
        out["role"] = person.role
    by_system: dict[str, str] = {}
    for ident in person.identifiers:
        by_system.setdefault(ident.system, ident.value)
    for name, system in IDENTIFIER_FIELDS:
        if system in by_system:
            out[name] = by_system[system]
    if person.name is not None:
        if person.name.given is not None:
            out["given_name"] = person.name.given
        if person.name.family is not None:
            out["family_name"] = person.name.family
    if person.birth_date is not None:
        out["date_of_birth"] = person.birth_date
    if person.sex is not None:
        out["sex"] = person.sex
    if person.has_confidential_address:
        out["confidential_address"] = True
    if DO_NOT_CONTACT_FAMILY in person.markers:
        out["do_not_contact_family"] = True
    if with_addresses and person.addresses:
        out["addresses"] = [a.as_dict() for a in person.addresses]
    if contacts_field is not None and person.contacts:
        out[contacts_field] = [{"type": c.kind, "value": c.value} for c in person.contacts]
    return out
