"""Common Transfer File (CTF) XML: a school's pupil records for the next school
(``application/vnd.gateway.ctf+xml``), one canonical message per pupil.

Supported subset (element names of the DfE CTF specification, section 4.3, checked against
public CTF implementations - ``docs/formats/ctf.md``, "What was checked", lists each source
and the few names no source confirmed; every element outside the subset is ignored on
parse - not read, not carried - and never rendered):

* ``CTfile/Header``: ``DocumentName`` (must be ``Common Transfer File``), ``DateTime``
  (required), ``SourceSchool`` and ``DestSchool`` (``LEA``, ``Estab``, ``URN``,
  ``SchoolName``). ``CTFversion``, ``DocumentQualifier`` and ``SupplierID`` are read past.
* ``CTfile/CTFpupilData/Pupil``, per pupil: ``UPN`` (required, check letter verified),
  ``Surname``, ``Forename``, ``DOB`` (required), ``Sex`` (or ``Gender`` in older files:
  ``M``/``F``/``U``), ``LookedAfter`` (``InCare``, ``CareAuthority``; also accepted
  inside ``BasicDetails``), ``SENhistory`` (``SEN`` records and ranked ``SENneeds``),
  ``Address`` (``BS7666Address`` or ``AddressLines``, ``PostCode``), ``Phones``, ``Email``,
  ``Contacts/Contact`` (parents and carers: ``Relationship``, names, phones, e-mail) and
  ``Attendance/YearData`` (sessions possible, authorised and unauthorised absence).

Mapping (``docs/formats/ctf.md`` has the field-by-field table):

* envelope: event ``education.pupil-transfer``, purpose ``education-transfer``,
  ``occurred_at`` = ``Header/DateTime``. A ``DateTime`` without an offset is read as UTC
  (adapters read no clock and no time-zone database; the file's creation time can be an
  hour early in British Summer Time, which no decision depends on). ``sender_reference``
  = ``ctf:<source LA><source estab>:<DateTime as YYYYMMDDTHHMMSS>:<pupil index>``.
* ``SourceSchool``/``DestSchool`` -> an ``event.summary`` item ``school-transfer``. The
  adapter knows no partner ids: routing to the destination school by its URN is the
  gateway's job, not this module's.
* ``LookedAfter`` -> ``social-care.status`` item ``looked-after-status``; ``SENhistory`` ->
  ``education.sen`` items (special category data); ``Attendance`` ->
  ``education.attendance`` items; ``Address`` -> ``identity.address``; phones and e-mail ->
  ``identity.contact``; contacts whose relationship is a parent or carer code -> people with
  role ``parent``/``carer``. Other contacts (relatives, childminders, doctors...) have no
  canonical role and are not carried.

Errors name the element by path with 1-based indexes
(``/CTfile/CTFpupilData/Pupil[3]/UPN``) and the rule, never the value.

``render`` writes a one-pupil CTF holding exactly what the (redacted) message carries: an
absent category is an absent element. It needs exactly one child with a UPN (a CTF
identifies a pupil by UPN) and re-reads its own output with the parser's checks, so a
recipient never gets a document this adapter would refuse (``NotRenderable`` instead).
The XML is built with ``xml.etree.ElementTree``; only parsing needs ``defusedxml``.
"""

from __future__ import annotations

from adapters.base import NotRenderable
from adapters.ctf.codes import MAX_PUPILS, MEDIA_TYPE, NAME, PUPILS_PATH
from adapters.ctf.parse import Reader, pupil_document, read_file, read_messages
from adapters.ctf.render import render_pupil
from canonical import DataDictionary, InvalidInput, Message, Violation

__all__ = ["MAX_PUPILS", "MEDIA_TYPE", "NAME", "CtfAdapter"]


class CtfAdapter:
    """CTF XML: ``parse`` takes a file of one pupil, ``parse_batch`` a file of many."""

    name: str = NAME
    content_types: tuple[str, ...] = (MEDIA_TYPE,)
    media_type: str = MEDIA_TYPE

    def parse(self, body: bytes, dictionary: DataDictionary) -> Message:
        """A file with exactly one ``Pupil``; more (or none) is ``single-message``."""
        header, pupils = read_file(body)
        if len(pupils) != 1:
            raise InvalidInput(
                [
                    Violation(
                        f"{PUPILS_PATH}/Pupil",
                        "single-message",
                        "a single message is a file of exactly one Pupil; send a file of several as a batch",
                    )
                ],
                adapter=NAME,
            )
        return read_messages(header, pupils, dictionary)[0]

    def parse_batch(self, body: bytes, dictionary: DataDictionary) -> tuple[Message, ...]:
        """Every pupil's message in file order; all valid, or one ``InvalidInput`` naming
        each broken record (``/CTfile/CTFpupilData/Pupil[3]/UPN``)."""
        header, pupils = read_file(body)
        return read_messages(header, pupils, dictionary)

    def render(self, message: Message) -> bytes:
        """A one-pupil CTF of what ``message`` carries. Raises ``NotRenderable`` without
        exactly one child with a UPN, or when a value cannot be written as valid CTF."""
        out = render_pupil(message)
        try:
            header, pupils = read_file(out)
            reader = Reader()
            pupil_document(reader, header, pupils[0], 1)
            if reader.violations:
                raise InvalidInput(reader.violations, adapter=NAME)
        except InvalidInput as exc:
            # The rule and native path only: the value stays out of the dead-letter reason.
            first = exc.violations[0]
            kind = f"{message.envelope.event_type} as {NAME}"
            raise NotRenderable(f"{kind}: a value does not fit CTF ({first.field}: {first.rule})") from None
        return out
