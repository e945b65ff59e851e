"""Candidate recipients for a message: the standing routes for its event type plus any
recipients the sender named. A candidate is a question for ``decide``, never a permission."""

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


def unknown_named_recipients(message: Message, policy: PolicySnapshot) -> tuple[str, ...]:
    """Recipients the sender named that are not partners: the message is rejected for these."""
    return tuple(r for r in message.envelope.recipients if r not in policy.partners)
