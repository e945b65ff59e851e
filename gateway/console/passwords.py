"""Console passwords: argon2id hashes (RFC 9106 defaults via ``argon2-cffi``).

Contracts:

* A password MUST NOT be logged, audited, stored or echoed; only its argon2 hash is
  configured (``gateway console hash-password``).
* Verifying takes the same work for an unknown user id as for a known one (a dummy hash is
  checked), so the answer time does not reveal which ids exist.
* Hashing and verifying cost tens of milliseconds of CPU by design: callers on the event
  loop use ``verify_async``, which runs in a worker thread.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
MAX_PASSWORD_BYTES = 1024
"""Longer input is refused unhashed: argon2 cost must not be an attacker's lever."""


def hash_password(password: str) -> str:
    """An argon2id PHC string for ``password``; ``ValueError`` when it is empty or too long."""
    if not password or len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"a password must be 1 to {MAX_PASSWORD_BYTES} bytes")
    return _HASHER.hash(password)


_DUMMY_HASH = hash_password("not-a-password-only-equalises-timing")


def verify(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash still costs one verification."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return False
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify, password_hash, password)
