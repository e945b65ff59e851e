"""Identifier checks, with ``python-stdnum`` doing the arithmetic.

* NHS number: ten digits, mod-11 check digit (``stdnum.gb.nhs``).
* UPN: thirteen characters, check letter first (``stdnum.gb.upn``). python-stdnum also
  refuses a UPN whose local-authority code is not on its national list; here that is only a
  **warning** (``upn_la_code_unknown``): authorities are reorganised, lists lag, and test
  ranges (LA 999) are not on it. A wrong length, format or check letter is an **error**.
"""

from __future__ import annotations

from collections.abc import Collection

from stdnum.exceptions import InvalidComponent, ValidationError
from stdnum.gb import nhs, upn

from canonical.errors import Violation

NHS_NUMBER = "nhs-number"
UPN = "upn"
LOCAL_CHILD_ID = "local-child-id"
POLICE_REFERENCE = "police-reference"

_RULES = {NHS_NUMBER: "nhs-number-check-digit", UPN: "upn-check-letter"}


def identifier_violation(system: str, value: str, field: str) -> Violation | None:
    """``None`` if ``value`` is a valid identifier of ``system`` (or the system has no check).
    The violation names ``field`` and the rule, never the value."""
    if system not in _RULES or _valid(system, value):
        return None
    return Violation(field, _RULES[system], f"not a valid {system} (length, format or check character)")


def _valid(system: str, value: str) -> bool:
    checker = nhs if system == NHS_NUMBER else upn
    try:
        checker.validate(value)
    except InvalidComponent:
        # Only the UPN raises this, for an LA code off python-stdnum's list, and before it
        # looks at the check letter: check the letter here.
        number = upn.compact(value)
        return upn.calc_check_digit(number[1:]) == number[0]
    except ValidationError:
        return False
    return True


def normalise(system: str, value: str) -> str:
    """The compact form (spaces and dashes removed, upper case) for checked systems."""
    if system == NHS_NUMBER:
        return str(nhs.compact(value))
    if system == UPN:
        return str(upn.compact(value))
    return value.strip()


def upn_la_code(value: str) -> str:
    """The three-digit local-authority code inside a UPN (characters 2-4)."""
    return str(upn.compact(value))[1:4]


def upn_la_code_unknown(value: str, known: Collection[str] = ()) -> bool:
    """True if a valid UPN's LA code is not in ``known`` or, when ``known`` is empty, not on
    python-stdnum's national list."""
    if known:
        return upn_la_code(value) not in known
    try:
        upn.validate(value)
    except InvalidComponent:
        return True
    except ValidationError:
        return False
    return False
