"""People in the social-care formats: a native child or household member <-> a canonical
person (identifiers, name, birth date, sex, addresses, contacts and markers).

Contracts: ``canonical_person`` checks each identifier's check characters and appends a violation
naming the *native* field (``/household/2/nhs_number``) and the rule; it MUST NOT quote the
value. ``native_person`` writes only what the person carries, never a placeholder.
"""

from __future__ import annotations

from adapters.identifiers import LOCAL_CHILD_ID, NHS_NUMBER, UPN, identifier_violation, normalise
from adapters.social_care.shared import JSON
from canonical import Person, Violation
from canonical.model import CONFIDENTIAL_ADDRESS

DO_NOT_CONTACT_FAMILY = "do-not-contact-family"

# Native identifier key -> canonical system, in the order identifiers are written.
_IDENTIFIER_KEYS = (("nhs_number", NHS_NUMBER), ("upn", UPN), ("la_child_id", LOCAL_CHILD_ID))
_MARKER_KEYS = (
    ("confidential_address", CONFIDENTIAL_ADDRESS),
    ("do_not_contact_family", DO_NOT_CONTACT_FAMILY),
)


def canonical_person(native: JSON, pointer: str, ref: str, role: str, problems: list[Violation]) -> JSON:
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


def native_person(person: Person, *, minimal: bool = False) -> JSON:
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
