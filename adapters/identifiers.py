"""Identifier checks every adapter shares (the rules live in ``canonical.identifiers``).

* A failed NHS number check digit or UPN check letter is an **error** naming the native
  field (``PID-3[1]``, ``/CTfile/CTFpupilData/Pupil[2]/UPN``): the message is refused.
* A UPN whose local-authority code is not on the deployment's list (or, without one, on
  python-stdnum's national list) is a **warning** (``upn_warnings``): the message is
  accepted and the warning returned to the sender.

Canonical identifier systems are those of the data dictionary (``nhs-number``, ``upn``,
``local-child-id``, ``police-reference``).
"""

from __future__ import annotations

from collections.abc import Collection

from canonical import Message, Violation
from canonical.identifiers import (
    LOCAL_CHILD_ID,
    NHS_NUMBER,
    POLICE_REFERENCE,
    UPN,
    identifier_violation,
    normalise,
    upn_la_code,
    upn_la_code_unknown,
)

__all__ = [
    "LOCAL_CHILD_ID",
    "NHS_NUMBER",
    "POLICE_REFERENCE",
    "UPN",
    "identifier_violation",
    "normalise",
    "upn_la_code",
    "upn_warnings",
]


def upn_warnings(message: Message, known_la_codes: Collection[str]) -> list[Violation]:
    """A warning for each UPN whose LA code is unknown (see ``upn_la_code_unknown``).
    Fields are canonical pointers; the value is never quoted."""
    return [
        Violation(
            f"/people/{i}/identifiers/{j}/value",
            "upn-la-code-known",
            "the UPN's local-authority code is not a known one (accepted; check it)",
        )
        for i, person in enumerate(message.people)
        for j, ident in enumerate(person.identifiers)
        if ident.system == UPN and upn_la_code_unknown(ident.value, known_la_codes)
    ]
