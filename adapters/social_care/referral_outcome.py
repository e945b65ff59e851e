"""``social-care-referral-outcome``: feedback to the referrer (DOMAIN scenario 5) ->
``social-care.referral-outcome``, purpose ``referral-feedback``: the child with minimal
identity and one ``event.outcome`` item ``referral-outcome`` (outcome, named worker,
referrer, message to the referrer)."""

from __future__ import annotations

from typing import ClassVar

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

OUTCOME = "social-care-referral-outcome"
_WORKER = (
    ("name", "named_worker"),
    ("team", "worker_team"),
    ("phone", "worker_phone"),
    ("email", "worker_email"),
)
_REFERRER = (
    ("partner_id", "referrer_partner"),
    ("organisation", "referrer_organisation"),
    ("referral_reference", "referral_reference"),
)


class SocialCareReferralOutcomeAdapter(SocialCareJson):
    """Feedback to the referrer (DOMAIN scenario 5) -> ``social-care.referral-outcome``.

    The referrer's partner id becomes the message's named recipient and is also kept in the
    ``event.outcome`` item (redaction clears the envelope's recipients before rendering, and
    the referrer needs to see whose referral this answers). The child is carried with
    minimal identity only: identifiers, name, birth date. Addresses, contacts and sex MUST
    NOT appear in this format, whatever the message carries.
    """

    name: str = OUTCOME
    content_types: tuple[str, ...] = (content_type_for(OUTCOME),)
    media_type: str = content_type_for(OUTCOME)
    schema: ClassVar[str] = f"{OUTCOME}.schema.json"
    event_types: ClassVar[tuple[str, ...]] = ("social-care.referral-outcome",)

    def _canonical(self, document: JSON, problems: list[Violation]) -> JSON:
        child = canonical_person(document["child"], "/child", CHILD_REF, "child", problems)
        data: JSON = {"outcome": document["outcome"]}
        data.update(copy_keys(document.get("named_worker", {}), _WORKER))
        data.update(copy_keys(document.get("referrer", {}), _REFERRER))
        if "message_to_referrer" in document:
            data["message_to_referrer"] = document["message_to_referrer"]
        env = envelope(document, "social-care.referral-outcome", "referral-feedback", "decided_at")
        if "referrer" in document:
            env["recipients"] = [document["referrer"]["partner_id"]]
        items = [about_child("event.outcome", "referral-outcome", data)]
        return {"envelope": env, "people": [child], "items": items}

    def _native(self, message: Message) -> JSON | None:
        child = child_of(message)
        outcome = find_item(message, "event.outcome", "referral-outcome")
        if child is None or outcome is None:
            return None
        env = message.envelope
        data = outcome.data
        out: JSON = {
            "reference": env.sender_reference,
            "decided_at": env.occurred_at,
            "outcome": data.get("outcome"),
        }
        worker = copy_keys(data, tuple((t, k) for k, t in _WORKER))
        if worker:
            out["named_worker"] = worker
        referrer = copy_keys(data, tuple((t, k) for k, t in _REFERRER))
        if referrer:
            out["referrer"] = referrer
        if data.get("message_to_referrer") is not None:
            out["message_to_referrer"] = data["message_to_referrer"]
        out["child"] = native_person(child, minimal=True)
        return out
