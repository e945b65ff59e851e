"""Encryption at rest (AES-256-GCM with key ids) and keyed pseudonyms for subjects.

The keyring is a JSON file::

    {"active": "k-20261122-...", "keys": {"k-...": "<base64 32 bytes>"}, "pseudonym_key": "<base64>"}

Every stored payload carries the id of the key that sealed it, so keys rotate without
re-encrypting at once: ``gateway keys rotate`` adds a key and makes it active; old keys stay
to open old records until ``gateway keys rewrap`` has re-sealed them. The associated data
binds a ciphertext to its record id, so blobs cannot be swapped between rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.entropy import random_bytes
from gateway.errors import ConfigError

NONCE_BYTES = 12


class UnknownKey(ConfigError):
    """A sealed record names a key id this keyring does not hold. With several instances this
    is usually transient: one instance rotated and the others still run the old keyring."""


@dataclass(frozen=True, slots=True)
class Sealed:
    """A ciphertext and the id of the key that sealed it. Only these reach a store."""

    key_id: str
    blob: bytes


class Keyring:
    def __init__(self, active: str, keys: dict[str, bytes], pseudonym_key: bytes) -> None:
        if active not in keys:
            raise ConfigError(f"keyring: active key {active!r} is not among the keys")
        for kid, key in keys.items():
            if len(key) != 32:
                raise ConfigError(f"keyring: key {kid!r} must be 32 bytes (AES-256)")
        self.active = active
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self._pseudonym_key = pseudonym_key

    def __repr__(self) -> str:
        return f"Keyring(active={self.active!r}, keys={sorted(self._aead)})"

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._aead)

    def seal(self, plaintext: bytes, aad: str) -> Sealed:
        nonce = random_bytes(NONCE_BYTES)  # 96 random bits per record, never reused
        return Sealed(self.active, nonce + self._aead[self.active].encrypt(nonce, plaintext, aad.encode()))

    def open(self, sealed: Sealed, aad: str) -> bytes:
        """Decrypt; ``UnknownKey`` for a key id this keyring lacks, ``InvalidTag`` for a record
        that was altered or moved."""
        try:
            aead = self._aead[sealed.key_id]
        except KeyError:
            raise UnknownKey(
                f"keyring has no key {sealed.key_id!r}: another instance rotated keys and this one "
                "has not loaded the new keyring yet (restart it), or the key was removed before rewrap"
            ) from None
        return aead.decrypt(sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:], aad.encode())

    def pseudonym(self, value: str) -> str:
        """A stable keyed pseudonym (HMAC-SHA256) for an identifier; reveals nothing alone."""
        return hmac.new(self._pseudonym_key, value.encode(), hashlib.sha256).hexdigest()[:32]

    # -- files -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                doc["active"],
                {k: base64.b64decode(v) for k, v in doc["keys"].items()},
                base64.b64decode(doc["pseudonym_key"]),
            )
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: keyring file not found; create one with 'gateway keys generate --keyring PATH'"
            ) from None
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: not a valid keyring ({type(exc).__name__})") from None


def _new_key_id() -> str:
    return f"k-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


def generate_keyring(path: Path) -> str:
    """Write a new keyring (mode 0600). Refuses to overwrite. Returns the active key id."""
    kid = _new_key_id()
    doc = {
        "active": kid,
        "keys": {kid: base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()},
        "pseudonym_key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    _write_private(path, doc, exclusive=True)
    return kid


def add_key(path: Path, *, activate: bool) -> str:
    """Add a new key to the keyring file; make it the sealing key only if ``activate``.
    Old keys stay for decryption. Returns the new key's id.

    Adding without activating is the first step of a rotation across several processes or
    instances: once every one of them has been restarted with the keyring holding the new
    key, ``activate_key`` makes it the sealing key, and no process ever meets a payload
    sealed under a key it lacks."""
    doc = _read(path)
    kid = _new_key_id()
    doc["keys"][kid] = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
    if activate:
        doc["active"] = kid
    _write_private(path, doc, exclusive=False)
    return kid


def activate_key(path: Path, key_id: str) -> None:
    """Make ``key_id`` (already in the keyring) the key new payloads are sealed with."""
    doc = _read(path)
    if key_id not in doc["keys"]:
        raise ConfigError(
            f"{path}: key {key_id!r} is not in the keyring (known: {', '.join(sorted(doc['keys']))}); "
            "add it first with 'gateway keys add'"
        )
    doc["active"] = key_id
    _write_private(path, doc, exclusive=False)


def rotate_keyring(path: Path) -> str:
    """Add a new key and make it active at once (one gateway process: restart it after)."""
    return add_key(path, activate=True)


def _read(path: Path) -> dict[str, Any]:
    Keyring.load(path)  # the same checks and errors as at start-up
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _write_private(path: Path, doc: Mapping[str, object], *, exclusive: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    if exclusive and path.exists():
        raise ConfigError(f"{path}: a keyring already exists; refusing to overwrite it")
    fd = os.open(tmp, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
