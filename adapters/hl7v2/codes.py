"""Codes, limits and value maps of the HL7 v2 subset (see the package docstring)."""

from __future__ import annotations

import re

NAME = "hl7v2"
MEDIA_TYPE = "application/hl7-v2"
CONTENT_TYPES = (MEDIA_TYPE, "x-application/hl7-v2+er7")

MAX_BODY_BYTES = 1024 * 1024
"""The MLLP listener's default frame limit; an HTTP body is capped lower by the gateway."""
MAX_SEGMENTS = 500
MAX_FIELD_CHARS = 20_000
"""The canonical model's longest text; a longer field could not be carried anyway."""
MAX_REPETITIONS = 50
MAX_NK1 = 49
"""The canonical model carries at most 50 people: the child and 49 others."""

EVENTS = {
    "A01": "health.admission",
    "A03": "health.discharge",
    "A04": "health.ed-attendance",
    "A08": "health.patient-update",
    "A40": "health.patient-merge",
}
TRIGGERS = {
    "health.ed-attendance": "A04",
    "health.admission": "A01",
    "health.discharge": "A03",
    "health.patient-update": "A08",
}
"""Event types ``render`` can write; any other raises ``NotRenderable``."""
STRUCTURES = {"A01": "ADT_A01", "A03": "ADT_A03", "A04": "ADT_A01", "A08": "ADT_A01"}
ATTENDANCE_TYPES = {
    "A01": "admission",
    "A03": "discharge",
    "A04": "ed-attendance",
    "A08": "visit",
    "A40": "visit",
}
CHARSETS = {"": "utf-8", "UNICODE UTF-8": "utf-8", "ASCII": "ascii", "8859/1": "latin-1"}
VERSION = re.compile(r"2\.[3-9](\.\d{1,2})?")
SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
ALLOWED_ESCAPES = re.compile(r"[FSRTE]|X(?:[0-9A-Fa-f]{2})+|\.(?:br|sp|fi|nf|in|ti|sk|ce)")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
DATE_TIME = re.compile(r"(\d{12})(\d{2}(?:\.\d{1,4})?)?(?:([+-])(\d{2})(\d{2}))?")
BIRTH_DATE = re.compile(r"(\d{8})(?:\d{2,6}(?:\.\d{1,4})?)?(?:[+-]\d{4})?")

SEX_IN = {"M": "male", "F": "female", "U": "unknown", "O": "other", "A": "other", "N": "unknown"}
SEX_OUT = {"male": "M", "female": "F", "unknown": "U", "other": "O"}
CLASS_IN = {
    "E": "emergency",
    "I": "inpatient",
    "O": "outpatient",
    "P": "preadmit",
    "R": "recurring",
    "B": "obstetrics",
    "C": "commercial",
    "N": "not-applicable",
    "U": "unknown",
}
CLASS_OUT = {v: k for k, v in CLASS_IN.items()}
ROLE_IN = {"MTH": "parent", "FTH": "parent", "PAR": "parent", "BRO": "sibling", "SIS": "sibling"}
ROLE_IN |= {"SIB": "sibling", "OAD": "household-member"}
ROLE_OUT = {"parent": "PAR", "carer": "CGV", "sibling": "SIB", "household-member": "OAD"}
"""Roles an NK1 can carry. Other people (victim, professional...) are not written to ADT."""
ADDRESS_USE_IN = {"H": "home", "P": "home", "L": "home", "C": "temporary", "M": "correspondence"}
ADDRESS_USE_OUT = {"home": "H", "temporary": "C", "correspondence": "M"}
MAX_ADDRESS_LINES = 4
"""XAD.1-XAD.4 (street, other designation, city, county); lines beyond are joined into XAD.4."""

CHILD_REF = "child-1"
CP_IS_FLAG = "cp-is-flag"
CP_IS_STATUS_IN = {"CPP": "child-protection-plan", "LAC": "looked-after"}
CP_IS_STATUS_OUT = {v: k for k, v in CP_IS_STATUS_IN.items()}
LA_CODE = re.compile(r"[0-9]{3}")
RENDER_APPLICATION = "MASH-GATEWAY"
RENDER_VERSION = "2.5"
