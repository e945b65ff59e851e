"""The audit log: append-only and hash-chained.

Each record's hash is ``sha256(prev_hash || canonical JSON of the record)``, where the record
includes its sequence number. So an edited record breaks its own hash, a removed or
reordered one breaks the chain or the sequence, and ``gateway audit verify`` finds it.
Truncation of the newest records is only detectable against an anchor kept elsewhere:
``gateway audit verify`` prints the head hash to record off-box, and ``--expect-head``
checks a previously recorded head is still in the chain.

Audit data holds ids, partner ids, rule names, categories and pseudonyms, never a value
from a message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An event to append; the store adds ``seq``, ``at``, ``prev_hash`` and ``hash``."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    partner: str | None = None
    actor: str = "gateway"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: str
    kind: str
    message_id: str | None
    partner: str | None
    actor: str
    data: Mapping[str, Any]
    prev_hash: str
    hash: str
    data_json: str | None = field(default=None, compare=False, repr=False)
    """The data exactly as stored (the text the hash covers); ``None`` when not loaded."""

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> AuditRecord:
        """A stored row: ``seq, at, kind, message_id, partner, actor, data (text), prev_hash,
        hash`` (the column order of both stores' ``audit`` tables)."""
        seq, at, kind, message_id, partner, actor, data_json, prev_hash, digest = row
        return cls(
            seq, at, kind, message_id, partner, actor, json.loads(data_json), prev_hash, digest, data_json
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "message_id": self.message_id,
            "partner": self.partner,
            "actor": self.actor,
            "data": dict(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the text an audit record's hash covers.

    ``verify_chain`` hashes the stored text itself, so this only has to be deterministic for
    new records; it matches ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` except in how some floats are spelt (``orjson``: several times faster,
    and every accepted message writes five records)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def chain_hash(prev_hash: str, seq: int, at: str, event: AuditEvent | AuditRecord, data_json: str) -> str:
    """``sha256(prev_hash|canonical JSON of the record's fields|data_json)``, hex.

    The fields' dict is built with its keys already in sorted order, so plain ``orjson``
    output is the same text as ``canonical_json`` (sorted keys) would give, at less cost;
    the text MUST stay byte-identical, or stored chains would no longer verify."""
    body = orjson.dumps(
        {
            "actor": event.actor,
            "at": at,
            "kind": event.kind,
            "message_id": event.message_id,
            "partner": event.partner,
            "seq": seq,
        }
    )
    return hashlib.sha256(b"%s|%s|%s" % (prev_hash.encode(), body, data_json.encode())).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    head: str
    problems: tuple[str, ...]


def verify_chain(records: Iterable[AuditRecord], expect_head: str | None = None) -> VerifyResult:
    """Walk the records in stored order and report every break (by sequence number)."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    seen_heads: set[str] = set()
    for rec in records:
        count += 1
        if rec.seq != expected_seq:
            problems.append(f"seq {rec.seq}: expected seq {expected_seq} (a record was removed or reordered)")
        if rec.prev_hash != prev:
            problems.append(f"seq {rec.seq}: prev_hash does not match the previous record's hash")
        data_json = rec.data_json if rec.data_json is not None else canonical_json(rec.data)
        recomputed = chain_hash(rec.prev_hash, rec.seq, rec.at, rec, data_json)
        if recomputed != rec.hash:
            problems.append(f"seq {rec.seq}: hash does not match the record's content (edited)")
        prev = rec.hash
        expected_seq = rec.seq + 1
        seen_heads.add(rec.hash)
    if expect_head is not None and expect_head not in seen_heads:
        problems.append(f"the expected head {expect_head[:16]}... is not in the chain (truncated?)")
    return VerifyResult(not problems, count, prev, tuple(problems))
