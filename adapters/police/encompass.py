"""Operation Encompass notification (``police-encompass``,
``application/vnd.gateway.police-encompass+json``, ``schemas/police-encompass.schema.json``).

Supported subset: one child per notification (the duty is per child and each child's
school is told separately), the incident's date, time, location type and description,
whether the child was present, brief circumstances and the child's voice, and the school
as the named recipient (``school`` -> ``envelope.recipients``). Event
``police.domestic-abuse-incident``, purpose ``operation-encompass``.

The format has no place for the risk assessment, other people, addresses, contacts or
offending history (DOMAIN: not the risk assessment answers, the victim's new address or the
perpetrator's history): when a message carrying them is rendered, they are not written.
Circumstances and the child's voice are mapped faithfully to ``event.narrative``: an
Encompass agreement releases what it releases, and the consent engine decides, not the
adapter.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.base import NotRenderable
from adapters.police.base import PoliceJsonAdapter, envelope, envelope_to_native, item, single, text
from adapters.police.people import person_to_canonical, person_to_native
from canonical import Message, Violation

NAME = "police-encompass"
MEDIA_TYPE = "application/vnd.gateway.police-encompass+json"
CHILD_REF = "child"
_SUMMARY_FIELDS = ("location_type", "location_description", "child_present")


class EncompassAdapter(PoliceJsonAdapter):
    name: str = NAME
    content_types: tuple[str, ...] = (MEDIA_TYPE,)
    media_type: str = MEDIA_TYPE
    schema: ClassVar[str] = "police-encompass.schema.json"
    event_type: ClassVar[str] = "police.domestic-abuse-incident"
    purpose: ClassVar[str] = "operation-encompass"

    def to_canonical(self, document: dict[str, Any], problems: list[Violation]) -> dict[str, Any]:
        incident = document["incident"]
        school = document.get("school")
        child = person_to_canonical(
            document["child"], ref=CHILD_REF, role="child", at="/child", problems=problems
        )
        summary = {"incident_at": incident["date_time"]} | {
            k: incident[k] for k in _SUMMARY_FIELDS if k in incident
        }
        items = [item("event.summary", "incident-summary", [CHILD_REF], summary)]
        narrative = {
            k: incident[f]
            for k, f in (("text", "circumstances"), ("childs_voice", "childs_voice"))
            if f in incident
        }
        if narrative:
            items.append(item("event.narrative", "incident-narrative", [CHILD_REF], narrative))
        return {
            "envelope": envelope(
                self,
                document,
                occurred_at=incident["date_time"],
                sender_reference=document["police_reference"],
                recipients=(school,) if school else (),
            ),
            "people": [child],
            "items": items,
        }

    def to_native(self, message: Message) -> dict[str, Any]:
        children = message.children()
        if len(children) > 1:
            raise NotRenderable(
                f"{NAME} carries one child per notification; this message has {len(children)}"
            )
        out: dict[str, Any] = {}
        if message.envelope.sender_reference is not None:
            out["police_reference"] = message.envelope.sender_reference
        out.update(envelope_to_native(message))
        summary = single(message, "event.summary", NAME)
        narrative = single(message, "event.narrative", NAME)
        incident: dict[str, Any] = {"date_time": text(summary, "incident_at") or message.envelope.occurred_at}
        if summary is not None:
            if text(summary, "location_type") is not None:
                incident["location_type"] = summary["location_type"]
            if text(summary, "location_description") is not None:
                incident["location_description"] = summary["location_description"]
            if isinstance(summary.get("child_present"), bool):
                incident["child_present"] = summary["child_present"]
        for native, key in (("circumstances", "text"), ("childs_voice", "childs_voice")):
            value = text(narrative, key)
            if value is not None:
                incident[native] = value
        out["incident"] = incident
        if children:
            out["child"] = person_to_native(
                children[0], with_id=False, with_addresses=False, contacts_field=None
            )
        return out
