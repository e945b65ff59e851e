"""Public code lists of the social-care formats: CIN census referral sources, categories
of abuse, SSDA903 legal statuses, referral outcomes and household roles (the schemas in
``schemas/`` enumerate the same codes; ``docs/formats/social-care.md`` has the tables)."""

from __future__ import annotations

from collections.abc import Mapping

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
