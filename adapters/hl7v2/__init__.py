"""Health HL7 v2 ADT in ER7 (pipe) encoding <-> canonical, with ``python-hl7`` doing the parsing
and the escaping.

Subset supported (everything else is refused or ignored, as listed):

* **Messages**: ``ADT^A01`` admit -> ``health.admission``, ``ADT^A03`` discharge ->
  ``health.discharge``, ``ADT^A04`` registration with PV1-2 patient class ``E`` ->
  ``health.ed-attendance``, ``ADT^A08`` update -> ``health.patient-update``, ``ADT^A40`` merge
  -> ``health.patient-merge``. Any other message type or trigger (``ORU^R01``, ``ADT^A05``...),
  an A04 whose patient class is not ``E`` (outpatient registrations are not safeguarding
  information), a processing id other than ``P`` (MSH-11: a training or debug message must never
  create real shares), a version outside 2.3-2.9 (MSH-12), or an A40 with more than one
  PID/MRG group raises ``UnsupportedHl7Message`` (the MLLP listener answers ``AR``). Content
  errors raise ``InvalidInput`` (``AE``).
* **Segments read**: MSH, EVN, PID, PD1, NK1, PV1, PV2, DG1, MRG (A40), and the local ``ZCP``
  (below). PID is required, PV1 too except for A40, MRG for A40. EVN is optional (EVN-2 falls
  back to MSH-7). Other segments (other Z-segments, AL1, OBX...) are ignored and never
  stored. Segment order is not checked beyond MSH first; one message per body (no batches).
* **Character sets**: MSH-18 empty or ``UNICODE UTF-8`` (UTF-8), ``ASCII``, ``8859/1``
  (Latin-1). UTF-16, NUL and other control bytes are refused. ``\\n`` and ``\\r\\n`` are accepted
  as segment terminators (files edited by hand), empty lines are skipped.
* **Escapes**: ``\\F\\ \\S\\ \\R\\ \\T\\ \\E\\ \\Xhh..\\`` and the formatting sequences (``\\.br\\``...)
  are unescaped by the library; any other escape (character-set switches, highlighting,
  application ``\\Z..\\``, a count) is refused *before* the library sees it, because the
  library's unescape logs the whole field (personal data) when it meets one.
* **Times**: HL7 TS to the minute at least. A time without a UTC offset takes MSH-7's offset
  (the HL7 rule: the sender's time zone); if MSH-7 has none either, the message is refused
  (``hl7-timezone``): assuming UTC would be an hour wrong in British Summer Time.

Field mapping (``docs/formats/hl7v2.md`` has the full table):

* the person of PID is the **child** (ADT feeds to this gateway are about children; a birth
  date that is not a child's is still accepted), ref ``child-1``; PID-3 repetitions whose
  assigning authority (CX.4) is ``NHS`` and type (CX.5) ``NH`` -> ``nhs-number`` (check digit
  verified); other repetitions (hospital numbers MR/PI...) are **dropped**: ``local-child-id``
  means a local authority's id, not a hospital's. PID-5 name (the legal ``L`` repetition, else
  the first; given and middle names joined), PID-7 birth date, PID-8 sex, PID-11 addresses,
  PID-13 phone/e-mail, PD1-12 protection indicator ``Y`` -> marker ``confidential-address``.
* NK1 -> a person per segment, role from NK1-3 (``MTH``/``FTH``/``PAR`` parent,
  ``BRO``/``SIS``/``SIB`` sibling, ``OAD`` household-member, anything else carer), ref
  ``{role}-{n}``; NK1-2 name, NK1-4 addresses, NK1-5 phone/e-mail.
* PV1 -> ``health.attendance`` item ``{patient_class, setting, arrived_at, left_at}`` when
  PV1-3, PV1-44 or PV1-45 carry something; PV2-3 admit reason and DG1 diagnoses ->
  ``health.clinical`` items labelled ``R``. MRG-1 NHS numbers -> an ``identity.core`` item
  ``patient-merge`` ``{prior_nhs_numbers}``.
* ``ZCP`` (a local segment agreed with emergency departments that see the CP-IS flag; HL7 v2
  has no standard field for it): ZCP-1 ``CPP`` (child protection plan) or ``LAC`` (looked
  after), ZCP-2 the responsible local authority's three-digit code, ZCP-3 the plan's start
  date -> a ``social-care.status`` item ``cp-is-flag`` ``{status, responsible_la_code,
  start_date}``, and the envelope names ``la-code.<ZCP-2>`` as a recipient: that authority's
  children's social care is told of the attendance (DOMAIN scenario 2). Without a ZCP an
  attendance names no one.
* MSH-10 -> ``sender_reference``; EVN-2 (else MSH-7) -> ``occurred_at``; purpose
  ``safeguarding`` for an ED attendance, ``direct-care`` for the others. MSH-4 (the sender's
  ODS code) is informational here: the gateway authenticates the sender.

``render`` writes A04/A01/A03/A08 for ``health.ed-attendance``/``admission``/``discharge``/
``patient-update``; every other event type raises ``NotRenderable``. It writes only what the
(redacted) message carries and never invents a value.

MUST NOT: quote a value in any error; do I/O or read a clock (the ACK, which needs the time,
is built by ``gateway.mllp``).
"""

from __future__ import annotations

from adapters.hl7v2.codes import (
    CONTENT_TYPES,
    MAX_BODY_BYTES,
    MAX_FIELD_CHARS,
    MAX_NK1,
    MAX_REPETITIONS,
    MEDIA_TYPE,
    NAME,
    RENDER_APPLICATION,
    RENDER_VERSION,
)
from adapters.hl7v2.er7 import Hl7Header, UnsupportedHl7Message, read_header
from adapters.hl7v2.parse import parse_message
from adapters.hl7v2.render import render_message
from canonical import DataDictionary, Message

__all__ = [
    "CONTENT_TYPES",
    "MAX_BODY_BYTES",
    "MAX_FIELD_CHARS",
    "MAX_NK1",
    "MAX_REPETITIONS",
    "MEDIA_TYPE",
    "NAME",
    "RENDER_APPLICATION",
    "RENDER_VERSION",
    "Hl7Header",
    "Hl7v2Adapter",
    "UnsupportedHl7Message",
    "parse_message",
    "read_header",
    "render_message",
]


class Hl7v2Adapter:
    """HL7 v2 ADT (ER7). Pure: no I/O, no clock."""

    name: str = NAME
    content_types: tuple[str, ...] = CONTENT_TYPES
    media_type: str = MEDIA_TYPE

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        return parse_message(body, dictionary)

    def render(self, message: Message) -> bytes:
        return render_message(message)
