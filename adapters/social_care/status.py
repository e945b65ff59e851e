"""A status that starts and ends (a child protection plan, a looked-after period): the
shared base of ``social-care-cp-plan`` and ``social-care-looked-after``.

One schema per format with ``status: started|ended``, two event types (started, ended),
one ``social-care.status`` item, purpose ``safeguarding`` (the status is shared so that
others can protect the child). The period rules (``period_rules``) run on parse and on
render; a violation names the native ``end_date`` and the rule, never a date.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from adapters.social_care.people import canonical_person, native_person
from adapters.social_care.shared import (
    CHILD_REF,
    JSON,
    SocialCareJson,
    about_child,
    child_of,
    copy_keys,
    envelope,
    find_item,
)
from canonical import Message, Violation

STATUS_CATEGORY = "social-care.status"
_AUTHORITY = (
    ("la_code", "responsible_authority_la_code"),
    ("name", "responsible_authority"),
    ("phone", "responsible_authority_phone"),
    ("out_of_hours_phone", "responsible_authority_out_of_hours_phone"),
)


def period_rules(status: str, period: JSON, pointer: str) -> list[Violation]:
    """Start/end rules of a plan or a looked-after period (dates already schema-checked)."""
    end = period.get("end_date")
    if status == "ended" and end is None:
        return [Violation(f"{pointer}/end_date", "end-date-required", "an ended status needs its end_date")]
    if status == "started" and end is not None:
        return [
            Violation(
                f"{pointer}/end_date", "no-end-date-when-started", "a started status has no end_date yet"
            )
        ]
    if end is not None and date.fromisoformat(end) < date.fromisoformat(period["start_date"]):
        return [
            Violation(f"{pointer}/end_date", "end-not-before-start", "end_date must not be before start_date")
        ]
    return []


class StatusFormat(SocialCareJson):
    """A status that starts and ends (a CP plan, a looked-after period): one schema with
    ``status: started|ended``, two event types, one ``social-care.status`` item, purpose
    ``safeguarding`` (the status is shared so that others can protect the child)."""

    item_type: ClassVar[str]
    period_key: ClassVar[str]
    period_fields: ClassVar[tuple[tuple[str, str], ...]]
    """(native key inside the period object, canonical item data key)"""

    def _rules(self, document: JSON) -> list[Violation]:
        return period_rules(document["status"], document[self.period_key], f"/{self.period_key}")

    def _canonical(self, document: JSON, problems: list[Violation]) -> JSON:
        child = canonical_person(document["child"], "/child", CHILD_REF, "child", problems)
        status = document["status"]
        data: JSON = {"status": status}
        data.update(copy_keys(document[self.period_key], self.period_fields))
        data.update(copy_keys(document["responsible_authority"], _AUTHORITY))
        env = envelope(
            document, self.event_types[1 if status == "ended" else 0], "safeguarding", "occurred_at"
        )
        items = [about_child(STATUS_CATEGORY, self.item_type, data)]
        return {"envelope": env, "people": [child], "items": items}

    def _native(self, message: Message) -> JSON | None:
        child = child_of(message)
        item = find_item(message, STATUS_CATEGORY, self.item_type)
        if child is None or item is None:
            return None
        env = message.envelope
        return {
            "reference": env.sender_reference,
            "status": "ended" if env.event_type == self.event_types[1] else "started",
            "occurred_at": env.occurred_at,
            self.period_key: copy_keys(item.data, tuple((t, k) for k, t in self.period_fields)),
            "responsible_authority": copy_keys(item.data, tuple((t, k) for k, t in _AUTHORITY)),
            "child": native_person(child),
        }
