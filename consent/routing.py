"""Candidate recipients for a message: the standing routes for its event type plus any
recipients the sender named. A candidate is a question for ``decide``, never a permission.

A sender may name a recipient by partner id or by an identifier the partner is known by —
``school-urn.<URN>`` or ``ods-code.<ODS code>`` (lower case; a CTF names its destination
school by URN), or ``la-code.<code>`` for the children's social care of a local authority
(an emergency department names the authority responsible for a child's protection plan) —
and ``resolve_named_recipients`` turns those into partner ids first. A reference that
matches no partner, or more than one, stays as it is and is then refused as an unknown
recipient.
"""

from __future__ import annotations

from canonical import Message
from consent.policy import PolicySnapshot


def candidates(message: Message, policy: PolicySnapshot) -> tuple[str, ...]:
    """Ordered, de-duplicated candidates; the sender itself is never a candidate."""
    env = message.envelope
    out: dict[str, None] = {}
    for route in policy.routes.get(env.event_type, ()):
        if route.sources is None or env.source in route.sources:
            out.update(dict.fromkeys(route.recipients))
    out.update(dict.fromkeys(env.recipients))
    out.pop(env.source, None)
    return tuple(out)


RECIPIENT_REFERENCES: dict[str, tuple[str, str | None]] = {
    "school-urn": ("school_urn", None),
    "ods-code": ("ods_code", None),
    "la-code": ("la_code", "social-care"),
}
"""Reference prefix -> (the partner identifier it names, the sector it is limited to)."""


def resolve_named_recipients(message: Message, policy: PolicySnapshot) -> Message:
    """The message with every ``kind.value`` recipient reference replaced by its partner id."""
    named = message.envelope.recipients
    if not any("." in r for r in named):
        return message
    resolved = tuple(dict.fromkeys(_resolve(r, policy) for r in named))
    return message.with_envelope(recipients=resolved)


def _resolve(reference: str, policy: PolicySnapshot) -> str:
    kind, _, value = reference.partition(".")
    if kind not in RECIPIENT_REFERENCES or not value:
        return reference
    key, sector = RECIPIENT_REFERENCES[kind]
    matches = [
        p.id
        for p in policy.partners.values()
        if p.identifiers.get(key, "").lower() == value and sector in (None, p.sector)
    ]
    return matches[0] if len(matches) == 1 else reference


def unknown_named_recipients(message: Message, policy: PolicySnapshot) -> tuple[str, ...]:
    """Recipients the sender named that are not partners: the message is rejected for these."""
    return tuple(r for r in message.envelope.recipients if r not in policy.partners)
