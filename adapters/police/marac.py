"""MARAC referral (``police-marac``, ``application/vnd.gateway.police-marac+json``,
``schemas/police-marac.schema.json``): high-risk domestic abuse referred to a multi-agency
risk assessment conference. Event ``police.marac-referral``, purpose ``marac``.

Supported subset: one victim, with ``safe_contacts`` (how the victim can be reached safely:
mapped to the victim's ``identity.contact``; the agreements' ``role_categories`` release
that category about a victim to the IDVA only, the adapter does not narrow it) and
addresses (a refuge -> ``confidential-address``); alleged perpetrators and children with
identifiers, addresses and contacts; the risk assessment with DASH and referral criteria;
the conference date and summary (``event.summary``), narrative (``event.narrative``),
offending history (``police.offender-history``) and the referrer (a ``professional``,
ref ``referrer``).

``risk_of_significant_harm`` is set when graded high or set explicitly, as for the PPN.
People of other roles are not carried by this format and are not rendered.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.base import NotRenderable
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

NAME = "police-marac"
MEDIA_TYPE = "application/vnd.gateway.police-marac+json"
REFERRER_REF = "referrer"
_SECTIONS = (("alleged_perpetrators", "alleged-perpetrator"), ("children", "child"))


class MaracAdapter(PoliceJsonAdapter):
    name: str = NAME
    content_types: tuple[str, ...] = (MEDIA_TYPE,)
    media_type: str = MEDIA_TYPE
    schema: ClassVar[str] = "police-marac.schema.json"
    event_type: ClassVar[str] = "police.marac-referral"
    purpose: ClassVar[str] = "marac"

    def to_canonical(self, document: dict[str, Any], problems: list[Violation]) -> dict[str, Any]:
        victim = document["victim"]
        ids = [("/victim/id", victim["id"])]
        people = [
            person_to_canonical(
                victim,
                ref=victim["id"],
                role="victim",
                at="/victim",
                problems=problems,
                contacts_field="safe_contacts",
            )
        ]
        for section, role in _SECTIONS:
            for i, p in enumerate(document.get(section, ())):
                ids.append((f"/{section}/{i}/id", p["id"]))
                people.append(
                    person_to_canonical(p, ref=p["id"], role=role, at=f"/{section}/{i}", problems=problems)
                )
        if "referrer" in document:
            ids.append(("/referrer", REFERRER_REF))
        problems.extend(duplicate_ids(ids))
        subjects = [ident for _, ident in ids if ident != REFERRER_REF]
        children = [p["id"] for p in document.get("children", ())]
        items = []
        summary: dict[str, Any] = {k: document[k] for k in ("summary", "conference_date") if k in document}
        if summary:
            items.append(item("event.summary", "marac-summary", [victim["id"], *children], summary))
        if "narrative" in document:
            items.append(
                item("event.narrative", "officer-narrative", subjects, {"text": document["narrative"]})
            )
        risk = document.get("risk_assessment")
        if risk is not None:
            items.append(
                item(
                    "police.risk-assessment",
                    "dash-risk",
                    [victim["id"]],
                    risk_to_canonical(risk, "/risk_assessment", problems),
                )
            )
        items.extend(offender_history_items(document.get("offender_history", ()), set(subjects), problems))
        if "referrer" in document:
            people.append(
                person_to_canonical(
                    document["referrer"],
                    ref=REFERRER_REF,
                    role=PROFESSIONAL,
                    at="/referrer",
                    problems=problems,
                )
            )
        return {
            "envelope": envelope(
                self,
                document,
                occurred_at=document["referred_at"],
                sender_reference=document["marac_reference"],
                risk_of_significant_harm=is_high(risk),
            ),
            "people": people,
            "items": items,
        }

    def to_native(self, message: Message) -> dict[str, Any]:
        victims = [p for p in message.people if p.role == "victim"]
        if len(victims) > 1:
            raise NotRenderable(f"{NAME} carries one victim per referral; this message has {len(victims)}")
        out: dict[str, Any] = {}
        if message.envelope.sender_reference is not None:
            out["marac_reference"] = message.envelope.sender_reference
        out["referred_at"] = message.envelope.occurred_at
        summary = single(message, "event.summary", NAME)
        conference = text(summary, "conference_date")
        if conference is not None:
            out["conference_date"] = conference
        out.update(envelope_to_native(message))
        if victims:
            out["victim"] = person_to_native(victims[0], contacts_field="safe_contacts")
        for section, role in _SECTIONS:
            found = [person_to_native(p) for p in message.people if p.role == role]
            if found:
                out[section] = found
        if text(summary, "summary") is not None:
            out["summary"] = text(summary, "summary")
        narrative = text(single(message, "event.narrative", NAME), "text")
        if narrative is not None:
            out["narrative"] = narrative
        risk = single(message, "police.risk-assessment", NAME)
        if risk is not None:
            out["risk_assessment"] = risk_to_native(risk)
        history = offender_history_to_native(message)
        if history:
            out["offender_history"] = history
        professionals = [p for p in message.people if p.role == PROFESSIONAL]
        if professionals:
            out["referrer"] = person_to_native(professionals[0], with_id=False, with_addresses=False)
        return out
