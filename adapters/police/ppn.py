"""Public Protection Notice (``police-ppn``, ``application/vnd.gateway.police-ppn+json``,
``schemas/police-ppn.schema.json``): a police vulnerability referral to children's social
care. Event ``police.public-protection-notice``, purpose ``safeguarding``.

Supported subset: the people of the household (roles child, parent, carer, sibling,
victim, alleged-perpetrator, household-member; at least one child) with identifiers,
names, birth dates, addresses (refuge / confidential -> ``confidential-address`` marker)
and contacts; the grade (high/medium/standard or red/amber/green) and DASH answers
(``adapters.police.risk``) -> ``police.risk-assessment``; summary -> ``event.summary``;
narrative -> ``event.narrative``; offending history -> ``police.offender-history`` about
the named person; the officer -> a ``professional`` person (ref ``officer``) with contacts.

``risk_of_significant_harm`` is set when the PPN is graded high, or when the force sets it
explicitly at any grade; a medium or standard PPN without it does not assert that risk.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.police.base import (
    PROFESSIONAL,
    PoliceJsonAdapter,
    duplicate_ids,
    envelope,
    envelope_to_native,
    item,
    offender_history_items,
    offender_history_to_native,
    single,
    text,
)
from adapters.police.people import person_to_canonical, person_to_native
from adapters.police.risk import is_high, risk_to_canonical, risk_to_native
from canonical import Message, Violation

NAME = "police-ppn"
MEDIA_TYPE = "application/vnd.gateway.police-ppn+json"
OFFICER_REF = "officer"


class PpnAdapter(PoliceJsonAdapter):
    name: str = NAME
    content_types: tuple[str, ...] = (MEDIA_TYPE,)
    media_type: str = MEDIA_TYPE
    schema: ClassVar[str] = "police-ppn.schema.json"
    event_type: ClassVar[str] = "police.public-protection-notice"
    purpose: ClassVar[str] = "safeguarding"

    def to_canonical(self, document: dict[str, Any], problems: list[Violation]) -> dict[str, Any]:
        natives = document["people"]
        ids = [(f"/people/{i}/id", p["id"]) for i, p in enumerate(natives)]
        if "officer" in document:
            ids.append(("/officer", OFFICER_REF))
        problems.extend(duplicate_ids(ids))
        people = [
            person_to_canonical(p, ref=p["id"], role=p["role"], at=f"/people/{i}", problems=problems)
            for i, p in enumerate(natives)
        ]
        children = [p["id"] for p in natives if p["role"] == "child"]
        if not children:
            problems.append(
                Violation("/people", "has-child", "a PPN to children's social care names at least one child")
            )
        everyone = [p["id"] for p in natives]
        items = []
        if "summary" in document:
            items.append(item("event.summary", "ppn-summary", children, {"summary": document["summary"]}))
        if "narrative" in document:
            items.append(
                item("event.narrative", "officer-narrative", everyone, {"text": document["narrative"]})
            )
        risk = document["risk_assessment"]
        assessed = [p["id"] for p in natives if p["role"] in {"child", "victim"}]
        items.append(
            item(
                "police.risk-assessment",
                "dash-risk",
                assessed,
                risk_to_canonical(risk, "/risk_assessment", problems),
            )
        )
        items.extend(offender_history_items(document.get("offender_history", ()), set(everyone), problems))
        if "officer" in document:
            people.append(
                person_to_canonical(
                    document["officer"], ref=OFFICER_REF, role=PROFESSIONAL, at="/officer", problems=problems
                )
            )
        return {
            "envelope": envelope(
                self,
                document,
                occurred_at=document["incident_date_time"],
                sender_reference=document["ppn_reference"],
                risk_of_significant_harm=is_high(risk),
            ),
            "people": people,
            "items": items,
        }

    def to_native(self, message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if message.envelope.sender_reference is not None:
            out["ppn_reference"] = message.envelope.sender_reference
        out["incident_date_time"] = message.envelope.occurred_at
        out.update(envelope_to_native(message))
        professionals = [p for p in message.people if p.role == PROFESSIONAL]
        out["people"] = [
            person_to_native(p, with_role=True) for p in message.people if p.role != PROFESSIONAL
        ]
        summary = text(single(message, "event.summary", NAME), "summary")
        if summary is not None:
            out["summary"] = summary
        narrative = text(single(message, "event.narrative", NAME), "text")
        if narrative is not None:
            out["narrative"] = narrative
        risk = single(message, "police.risk-assessment", NAME)
        if risk is not None:
            out["risk_assessment"] = risk_to_native(risk)
        history = offender_history_to_native(message)
        if history:
            out["offender_history"] = history
        if professionals:
            out["officer"] = person_to_native(professionals[0], with_id=False, with_addresses=False)
        return out
