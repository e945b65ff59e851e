"""Identifier checks every adapter shares, with ``python-stdnum`` doing the arithmetic.

* A failed NHS number check digit or UPN check letter is an **error** naming the native
  field (``PID-3[1]``, ``/CTfile/CTFpupilData/Pupil[2]/UPN``): the message is refused.
* A UPN whose local-authority code is not on the deployment's list is a **warning**
  (``upn_warnings``): schools move between authorities and lists lag, so the message is
  accepted and the warning returned to the sender.

Canonical identifier systems are those of the data dictionary (``nhs-number``, ``upn``,
``local-child-id``, ``police-reference``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from stdnum.exceptions import ValidationError
from stdnum.gb import nhs, upn

from canonical import Message, Violation

NHS_NUMBER = "nhs-number"
UPN = "upn"
LOCAL_CHILD_ID = "local-child-id"
POLICE_REFERENCE = "police-reference"

_CHECKERS = {NHS_NUMBER: nhs, UPN: upn}
_RULES = {NHS_NUMBER: "nhs-number-check-digit", UPN: "upn-check-letter"}


def normalise(system: str, value: str) -> str:
    """The compact form (spaces and dashes removed, upper case) for checked systems."""
    checker = _CHECKERS.get(system)
    return checker.compact(value) if checker is not None else value.strip()


def identifier_violation(system: str, value: str, field: str) -> Violation | None:
    """``None`` if ``value`` is a valid identifier of ``system`` (or the system has no check)."""
    checker = _CHECKERS.get(system)
    if checker is None:
        return None
    try:
        checker.validate(value)
    except ValidationError:
        return Violation(field, _RULES[system], f"not a valid {system} (length, format or check character)")
    return None


def upn_la_code(value: str) -> str:
    """The three-digit local-authority code inside a UPN (characters 2-4)."""
    return upn.compact(value)[1:4]


def upn_warnings(message: Message, known_la_codes: Collection[str]) -> list[Violation]:
    """A warning for each child UPN whose LA code is not in ``known_la_codes`` (empty list:
    no check). Fields are canonical pointers; the value is never quoted."""
    if not known_la_codes:
        return []
    return list(_upn_warnings(message, known_la_codes))


def _upn_warnings(message: Message, known: Collection[str]) -> Iterable[Violation]:
    for i, person in enumerate(message.people):
        for j, ident in enumerate(person.identifiers):
            if ident.system == UPN and upn_la_code(ident.value) not in known:
                yield Violation(
                    f"/people/{i}/identifiers/{j}/value",
                    "upn-la-code-known",
                    "the UPN's local-authority code is not one this deployment lists (accepted; check it)",
                )
