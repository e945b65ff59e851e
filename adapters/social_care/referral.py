"""``social-care-referral``: a contact or referral recorded by children's social care ->
``social-care.referral``, purpose ``safeguarding`` or ``child-in-need`` as the document
says. The child, the household (in the roles of ``HOUSEHOLD_ROLES``), an
``event.summary`` item ``concern-summary`` and an ``event.narrative`` item
``referral-narrative``; household members in other roles are not rendered."""

from __future__ import annotations

from typing import ClassVar

from adapters.social_care.codes import HOUSEHOLD_ROLES
from adapters.social_care.people import canonical_person, native_person
from adapters.social_care.shared import (
    CHILD_REF,
    JSON,
    SocialCareJson,
    about_child,
    child_of,
    content_type_for,
    copy_keys,
    envelope,
    find_item,
)
from canonical import Message, Violation

REFERRAL = "social-care-referral"
_SUMMARY = (
    ("concern_summary", "summary"),
    ("referral_source", "referral_source"),
    ("referrer_organisation", "referrer_organisation"),
)


class SocialCareReferralAdapter(SocialCareJson):
    """A contact or referral recorded by children's social care -> ``social-care.referral``."""

    name: str = REFERRAL
    content_types: tuple[str, ...] = (content_type_for(REFERRAL),)
    media_type: str = content_type_for(REFERRAL)
    schema: ClassVar[str] = f"{REFERRAL}.schema.json"
    event_types: ClassVar[tuple[str, ...]] = ("social-care.referral",)

    def _canonical(self, document: JSON, problems: list[Violation]) -> JSON:
        people = [canonical_person(document["child"], "/child", CHILD_REF, "child", problems)]
        for i, member in enumerate(document.get("household", ())):
            people.append(
                canonical_person(member, f"/household/{i}", f"person-{i + 1}", member["role"], problems)
            )
        items: list[JSON] = []
        summary = copy_keys(document, _SUMMARY)
        if summary:
            items.append(about_child("event.summary", "concern-summary", summary))
        if "narrative" in document:
            items.append(
                about_child("event.narrative", "referral-narrative", {"text": document["narrative"]})
            )
        env = envelope(document, "social-care.referral", document["purpose"], "referred_at")
        return {"envelope": env, "people": people, "items": items}

    def _native(self, message: Message) -> JSON | None:
        child = child_of(message)
        if child is None:
            return None
        env = message.envelope
        out: JSON = {
            "reference": env.sender_reference,
            "referred_at": env.occurred_at,
            "purpose": env.purpose,
        }
        out.update(env.flags.as_dict())
        summary = find_item(message, "event.summary", "concern-summary")
        if summary is not None:
            out.update(copy_keys(summary.data, tuple((t, k) for k, t in _SUMMARY)))
        narrative = find_item(message, "event.narrative", "referral-narrative")
        if narrative is not None and narrative.data.get("text") is not None:
            out["narrative"] = narrative.data["text"]
        out["child"] = native_person(child)
        household = [
            {"role": p.role, **native_person(p)}
            for p in message.people
            if p is not child and p.role in HOUSEHOLD_ROLES
        ]
        if household:
            out["household"] = household
        return out
