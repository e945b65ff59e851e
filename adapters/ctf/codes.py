"""Codes, limits and patterns of the CTF subset (see the package docstring)."""

from __future__ import annotations

import re

NAME = "ctf-xml"
MEDIA_TYPE = "application/vnd.gateway.ctf+xml"
EVENT_TYPE = "education.pupil-transfer"
PURPOSE = "education-transfer"
DOCUMENT_NAME = "Common Transfer File"
CTF_VERSION = "24.0"
"""Written into rendered files; parse accepts any version with the subset's elements. DfE's
own service writes ``25.0`` now; the subset was checked against CTF 24 sources, so this
stays until it is checked against CTF 25 (``docs/formats/ctf.md``, "What was checked")."""
SUPPLIER_ID = "mash-gateway"
DOCUMENT_QUALIFIER = "partial"
"""Rendered files carry only what the recipient may see: a partial transfer, never ``full``."""
MAX_PUPILS = 2000
"""A year group is a few hundred pupils; more in one file is refused (``max-pupils``)."""
MAX_VIOLATIONS = 100
"""An error lists at most this many problems, so a broken 2,000-pupil file stays readable."""
CHILD_REF = "child-1"

PUPILS_PATH = "/CTfile/CTFpupilData"

SEX_CODES = {"M": "male", "F": "female", "U": "unknown"}
SEX_OUT = {v: k for k, v in SEX_CODES.items()}
RELATIONSHIP_ROLES = {
    # CBDS "relationship to pupil": parents and carers are the contacts the canonical
    # model has roles for. PAR is what render writes for "parent": the canonical role
    # does not say mother or father, and writing either would invent it. No public source
    # for these codes was found: they are unverified (docs/formats/ctf.md).
    "PAR": "parent",
    "PAM": "parent",
    "PAF": "parent",
    "STP": "parent",
    "STM": "parent",
    "STF": "parent",
    "CAR": "carer",
    "FOS": "carer",
    "FOM": "carer",
    "FOF": "carer",
}
ROLE_RELATIONSHIP = {"parent": "PAR", "carer": "CAR"}
SEN_PROVISION = frozenset({"N", "K", "E", "S", "A", "P"})
"""N no SEN, K SEN support, E EHC plan; S statement, A/P School Action (Plus) in old files.
Not checked against a DfE code set (none was found); ``SEN_TYPES`` likewise."""
SEN_TYPES = frozenset(
    {"SPLD", "MLD", "SLD", "PMLD", "SEMH", "BESD", "SLCN", "HI", "VI", "MSI", "PD", "ASD", "OTH", "NSA"}
)
BOOLEAN = {"true": True, "1": True, "false": False, "0": False}

DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
LEA = re.compile(r"^(?:[0-9]{3}|MMM|XXX)$")
ESTAB = re.compile(r"^(?:[0-9]{4}|MMMM|XXXX)$")
URN = re.compile(r"^[0-9]{6}$")
_CODE3 = re.compile(r"^[0-9A-Z]{3}$")
COUNT = re.compile(r"^[0-9]{1,5}$")
YEAR = re.compile(r"^[0-9]{4}$")
RANK = re.compile(r"^[0-9]{1,2}$")

NAME_LEN = 200  # the canonical model's short_text
LINE_LEN = 200
POSTCODE_LEN = 10
MAX_LINES = 5  # AddressLine1..AddressLine5
MAX_CONTACT_DETAILS = 10  # canonical: contacts per person
MAX_CONTACTS = 20
_BS7666 = ("SAON", "PAON", "Street", "Locality", "Town", "AdministrativeArea", "PostTown")
SCHOOL_FIELDS = (("LEA", "lea", LEA), ("Estab", "estab", ESTAB), ("URN", "urn", URN))
YEAR_FIELDS = (
    ("SessionsPossible", "sessions_possible"),
    ("SessionsAuthorised", "sessions_authorised_absence"),
    ("SessionsUnauthorised", "sessions_unauthorised_absence"),
)
