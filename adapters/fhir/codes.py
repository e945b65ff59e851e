"""Code systems, URLs and value maps of the FHIR R4 adapter, in one place so that the
mapping table in ``docs/formats/fhir-r4.md`` can be checked against a single file.

Systems under ``https://schemas.mash-gateway.example/fhir/`` are ours: FHIR and UK Core have
no code for a gateway event type, a sharing purpose or a canonical item category. Every
other system is HL7's or NHS England's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

OURS: Final = "https://schemas.mash-gateway.example/fhir"
EVENT_SYSTEM: Final = f"{OURS}/event-type"
"""MessageHeader.eventCoding.system; the codes are the event catalogue's ids."""
PURPOSE_SYSTEM: Final = f"{OURS}/purpose"
"""MessageHeader.reason.coding.system; the codes are the data dictionary's purposes."""
ROLE_SYSTEM: Final = f"{OURS}/person-role"
"""RelatedPerson.relationship.coding.system; the codes are canonical person roles."""
SOCIAL_CARE_STATUS_SYSTEM: Final = f"{OURS}/social-care-status"
"""Flag.code.coding.system for child protection plan / looked after / child in need."""
ITEM_CATEGORY_SYSTEM: Final = f"{OURS}/item-category"
"""Communication.category.coding.system of the generic item carrier."""
ITEM_TYPE_SYSTEM: Final = f"{OURS}/item-type"
"""Communication.topic.coding.system of the generic item carrier."""
SENDER_REFERENCE_SYSTEM: Final = f"{OURS}/sender-reference"
"""Bundle.identifier.system written on render (any system is read on parse)."""
EXT_RISK_OF_SIGNIFICANT_HARM: Final = f"{OURS}/StructureDefinition/risk-of-significant-harm"
EXT_DO_NOT_INFORM_FAMILY: Final = f"{OURS}/StructureDefinition/do-not-inform-family"
EXT_RECEIVED_AT: Final = f"{OURS}/StructureDefinition/received-at"
EXT_PERSON_MARKER: Final = f"{OURS}/StructureDefinition/person-marker"
PARTNER_URN: Final = "urn:mash-gateway:partner:"
"""MessageHeader.source.endpoint / destination.endpoint prefix; the rest is a partner id."""

DEFAULT_PURPOSE: Final = "safeguarding"
"""The purpose when MessageHeader.reason carries none of ours (every event type of this
subset is sent to protect a child)."""

CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"

LABEL_SYSTEMS: Final[Mapping[str, str]] = {
    "R": CONFIDENTIALITY,
    "V": CONFIDENTIALITY,
    "SDV": ACT_CODE,
    "PSY": ACT_CODE,
    "ETH": ACT_CODE,
    "SEX": ACT_CODE,
    "STD": ACT_CODE,
    "HIV": ACT_CODE,
}
"""Canonical sensitivity label -> the system of the same code in ``meta.security``."""

CONFIDENTIAL_ADDRESS_CODES: Final = frozenset({"R", "V"})
"""``meta.security`` confidentiality codes on a Patient/RelatedPerson that mean the
``confidential-address`` marker (as NHS PDS marks a restricted, "S-flagged", patient)."""

IDENTIFIER_SYSTEMS: Final[Mapping[str, str]] = {
    NHS_NUMBER_SYSTEM: "nhs-number",
    f"{OURS}/id/upn": "upn",
    f"{OURS}/id/local-child-id": "local-child-id",
    f"{OURS}/id/police-reference": "police-reference",
}
"""FHIR identifier system -> canonical system. Identifiers of any other system (hospital
numbers...) are not carried."""
IDENTIFIER_URLS: Final[Mapping[str, str]] = {v: k for k, v in IDENTIFIER_SYSTEMS.items()}

GENDERS: Final = frozenset({"male", "female", "other", "unknown"})
"""Patient.gender and canonical sex share their codes."""

ADDRESS_USE_IN: Final[Mapping[str, str]] = {"home": "home", "temp": "temporary", "old": "previous"}
ADDRESS_USE_OUT: Final[Mapping[str, str]] = {v: k for k, v in ADDRESS_USE_IN.items()}
CORRESPONDENCE: Final = "correspondence"
"""Canonical ``correspondence`` <-> FHIR Address.type ``postal`` with no use."""

TELECOM_IN: Final[Mapping[str, str]] = {"phone": "phone", "sms": "phone", "email": "email"}

ROLE_FROM_V3: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        ("PRN", "MTH", "FTH", "NPRN", "NMTH", "NFTH", "STPPRN", "STPMTH", "STPFTH", "ADOPTP", "ADOPTM",
         "ADOPTF"),
        "parent",
    ),
    **dict.fromkeys(
        ("SIB", "BRO", "SIS", "NSIB", "NBRO", "NSIS", "HSIB", "HBRO", "HSIS", "STPSIB"), "sibling"
    ),
    **dict.fromkeys(("GUARD", "PRNFOST", "MTHFOST", "FTHFOST"), "carer"),
}  # fmt: skip
"""v3 RoleCode on RelatedPerson.relationship -> canonical role (ours takes precedence).
Every code was checked against the HL7 terminology (THO) code system v3-RoleCode 2.2.0:
all exist, are active and mean what the role says (``docs/formats/fhir-r4.md``, "What was
checked"). MUST NOT gain a code without such a source: an unknown code is refused, never
guessed."""
V3_FOR_ROLE: Final[Mapping[str, str]] = {"parent": "PRN", "sibling": "SIB"}
"""The v3 RoleCode written next to ours on render, where one means the same."""

ENCOUNTER_CLASSES: Final[Mapping[str, str]] = {
    "EMER": "ed-attendance",
    "IMP": "inpatient-stay",
    "AMB": "ambulatory-attendance",
}
"""Encounter.class (v3 ActCode) -> ``health.attendance`` item type."""
ENCOUNTER_TYPES: Final[Mapping[str, str]] = {v: k for k, v in ENCOUNTER_CLASSES.items()}

SOCIAL_CARE_STATUSES: Final[Mapping[str, str]] = {
    "child-protection-plan": "cp-plan-status",
    "looked-after": "looked-after-status",
    "child-in-need": "child-in-need-status",
}
"""Flag.code (ours) -> ``social-care.status`` item type."""
FLAG_CODES: Final[Mapping[str, str]] = {v: k for k, v in SOCIAL_CARE_STATUSES.items()}
FLAG_STATUSES: Final = frozenset({"active", "inactive", "entered-in-error"})

REFERRAL_SUMMARY: Final = "referral-summary"
"""``event.summary`` item type from ServiceRequest.category / reasonCode."""
REFERRAL_NOTE: Final = "referral-note"
"""``event.narrative`` item type from ServiceRequest.note (or a Communication's text payload)."""

FHIR_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
TOKEN: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
FULL_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
DATE_TIME: Final = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?"
    r"(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))"
)
"""A FHIR instant (a dateTime with seconds and a zone), the form render writes."""
