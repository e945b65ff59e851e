"""The consent registry's pure half: records, and the look-up rules a decision relies on.

A record says, for one subject (a person, by identifier), one purpose and one recipient
scope (a partner id, or ``sector:<sector>``), whether consent is given, refused or
withdrawn, who decided, when, until when, and on what evidence. Storage lives in the
gateway; this module only answers "what is the consent state for this person, purpose and
recipient at this time?".

Look-up rules (each tested by name):

``scope``                 a record applies to a recipient if its scope is that partner or the
                          partner's sector
``competent-child``       a competent child's decision beats a parent's (Gillick)
``latest-wins``           otherwise the most recently recorded applicable decision stands, so a
                          sector-wide withdrawal overrides an earlier consent given to one partner
``expired-ignored``       a record past its expiry, or recorded after ``now``, is as if absent
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from canonical import Identifier


class ConsentState(enum.StrEnum):
    GIVEN = "given"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class DecidedBy(enum.StrEnum):
    PARENT = "parent-with-parental-responsibility"
    COMPETENT_CHILD = "child-judged-competent"
    LOCAL_AUTHORITY = "local-authority-under-care-order"


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    record_id: str
    subject: str
    """The subject key: ``system:value`` of one identifier, or a keyed pseudonym of it."""
    purpose: str
    scope: str
    """A partner id, or ``sector:<sector>``."""
    state: ConsentState
    decided_by: DecidedBy
    recorded_at: datetime
    expires_at: datetime | None = None
    evidence_ref: str | None = None

    def in_force(self, now: datetime) -> bool:
        return self.recorded_at <= now and (self.expires_at is None or now < self.expires_at)

    def describe(self) -> str:
        return f"consent {self.state.value} by {self.decided_by.value} (record {self.record_id})"


class ConsentView(Protocol):
    def lookup(
        self, identifiers: tuple[Identifier, ...], purpose: str, recipient: str, sector: str, now: datetime
    ) -> ConsentRecord | None:
        """The consent record that governs sharing this person's data, or None if none."""
        ...


def subject_key(identifier: Identifier) -> str:
    return f"{identifier.system}:{identifier.value}"


class ConsentRegistry:
    """An in-memory index of consent records: (subject, purpose) -> records.

    ``key`` turns an identifier into the subject key the records were stored under (the
    gateway passes a keyed pseudonym function; tests and ``policy explain`` use the plain
    ``system:value``). A look-up is a dictionary hit and a scan of that subject's few
    records for the purpose.
    """

    def __init__(
        self, records: Iterable[ConsentRecord] = (), key: Callable[[Identifier], str] = subject_key
    ) -> None:
        self._key = key
        self._by_subject: dict[tuple[str, str], list[ConsentRecord]] = defaultdict(list)
        for r in records:
            self.add(r)

    def add(self, record: ConsentRecord) -> None:
        self._by_subject[(record.subject, record.purpose)].append(record)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_subject.values())

    def lookup(
        self, identifiers: tuple[Identifier, ...], purpose: str, recipient: str, sector: str, now: datetime
    ) -> ConsentRecord | None:
        scopes = {recipient, f"sector:{sector}"}
        best: ConsentRecord | None = None
        best_rank: tuple[int, datetime] | None = None
        for ident in identifiers:
            for record in self._by_subject.get((self._key(ident), purpose), ()):
                if record.scope not in scopes or not record.in_force(now):
                    continue
                rank = (int(record.decided_by is DecidedBy.COMPETENT_CHILD), record.recorded_at)
                if best_rank is None or rank > best_rank:
                    best, best_rank = record, rank
        return best
