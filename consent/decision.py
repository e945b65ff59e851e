"""The sharing decision: for one message and one candidate recipient, permit (with the exact
categories released), deny, or hold for review, and say why.

Rules, in the order they are applied (each is named in ``Decision.rule``):

``unknown-recipient``          the recipient is not a partner in the policy -> deny
``no-agreement``               no agreement covers (source, recipient, event type, purpose) -> deny
``agreement-not-in-force``     agreements exist but none is in force on the decision date -> deny
``nothing-to-share``           the agreement allows nothing the message carries -> deny
``permit``                     released = agreement categories for that purpose ∩ message categories

Data minimisation is structural: ``released`` is an intersection, never a default. There is
no path that returns permit without an agreement. The function is pure: the caller passes
``now``; nothing is read from a clock, a file or the network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from canonical import Message
from canonical.model import IDENTITY_ADDRESS, PERSON_CATEGORIES
from consent.policy import Grant, LawfulBasis, PolicySnapshot


class Effect(enum.StrEnum):
    PERMIT = "permit"
    DENY = "deny"
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class Withheld:
    """A category (optionally for one person, by the message's local ref) and why."""

    category: str
    reason: str
    person_ref: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"category": self.category, "reason": self.reason}
        if self.person_ref is not None:
            out["person_ref"] = self.person_ref
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    recipient: str
    effect: Effect
    rule: str
    released: frozenset[str]
    withheld: tuple[Withheld, ...]
    policy_version: str
    agreement_id: str | None = None
    lawful_basis: LawfulBasis | None = None
    consent: str = "not-required"
    person_roles: frozenset[str] = frozenset()
    confidential_address_needed: bool = False
    explanation: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def permitted(self) -> bool:
        return self.effect is Effect.PERMIT

    def as_dict(self) -> dict[str, object]:
        """The structured explanation written to the audit log (no personal data)."""
        return {
            "recipient": self.recipient,
            "effect": self.effect.value,
            "rule": self.rule,
            "agreement": self.agreement_id,
            "lawful_basis": self.lawful_basis.describe() if self.lawful_basis else None,
            "consent": self.consent,
            "released": sorted(self.released),
            "withheld": [w.as_dict() for w in self.withheld],
            "person_roles": sorted(self.person_roles),
            "policy_version": self.policy_version,
            "explanation": self.explanation,
        }


def decide(message: Message, recipient: str, policy: PolicySnapshot, now: datetime) -> Decision:
    """Decide what ``recipient`` may receive of ``message`` under ``policy`` at ``now``."""
    env = message.envelope
    carried = message.categories()

    def deny(rule: str, why: str) -> Decision:
        return Decision(
            recipient=recipient,
            effect=Effect.DENY,
            rule=rule,
            released=frozenset(),
            withheld=tuple(Withheld(c, why) for c in sorted(carried)),
            policy_version=policy.version,
            explanation=f"Not shared with {recipient}: {why}.",
        )

    if recipient not in policy.partners:
        return deny("unknown-recipient", "the recipient is not a partner in the policy")
    grants = policy.grants.get((env.source, recipient, env.event_type, env.purpose), ())
    if not grants:
        return deny(
            "no-agreement",
            f"no sharing agreement lets {env.source} share "
            f"{env.event_type} with {recipient} for the purpose {env.purpose}",
        )
    today = now.date()
    in_force = [g for g in grants if g.agreement.in_force(today)]
    if not in_force:
        ids = ", ".join(sorted({g.agreement.id for g in grants}))
        return deny(
            "agreement-not-in-force", f"the agreement(s) {ids} are not in force on {today.isoformat()}"
        )
    # Several in-force agreements for one key: the first by id is used, deterministically;
    # `gateway policy check` reports such overlaps so IG leads can resolve them.
    grant = in_force[0]
    return _permit(message, recipient, grant, policy, carried)


def _permit(
    message: Message, recipient: str, grant: Grant, policy: PolicySnapshot, carried: frozenset[str]
) -> Decision:
    flow, agreement = grant.flow, grant.agreement
    withheld: list[Withheld] = []
    for category in sorted(carried - flow.categories):
        reason = f"not named in agreement {agreement.id} for purpose {message.envelope.purpose}"
        if category in policy.dictionary.sensitive_categories:
            reason = f"sensitive category; {reason}"
        withheld.append(Withheld(category, reason))

    kept_people = [p for p in message.people if p.role in flow.person_roles]
    for person in message.people:
        if person.role not in flow.person_roles:
            for category in sorted(person.categories() & flow.categories):
                withheld.append(
                    Withheld(
                        category,
                        f"role {person.role} is not released by agreement {agreement.id}",
                        person.ref,
                    )
                )
        elif (
            person.has_confidential_address
            and person.addresses
            and IDENTITY_ADDRESS in flow.categories
            and not flow.confidential_address_needed
        ):
            withheld.append(
                Withheld(
                    IDENTITY_ADDRESS,
                    f"confidential-address marker; agreement {agreement.id} names no need for it",
                    person.ref,
                )
            )

    kept_refs = {p.ref for p in kept_people}
    released_items: set[str] = set()
    for item in message.items:
        if item.category not in flow.categories:
            continue
        if not item.about or kept_refs.intersection(item.about):
            released_items.add(item.category)
        else:
            withheld.append(
                Withheld(
                    item.category,
                    f"an item of type {item.type} is only about "
                    f"people whose role agreement {agreement.id} does not release",
                )
            )
    released_people: set[str] = set()
    for p in kept_people:
        cats = p.categories() & flow.categories
        if p.has_confidential_address and not flow.confidential_address_needed:
            cats = cats - {IDENTITY_ADDRESS}
        released_people |= cats
    released = frozenset(released_items | released_people)
    if not released:
        return Decision(
            recipient=recipient,
            effect=Effect.DENY,
            rule="nothing-to-share",
            released=frozenset(),
            withheld=tuple(withheld),
            policy_version=policy.version,
            agreement_id=agreement.id,
            lawful_basis=agreement.lawful_basis,
            explanation=(
                f"Nothing sent to {recipient}: agreement {agreement.id} allows none of "
                "the information this message carries."
            ),
        )
    person_part = ", ".join(sorted(flow.person_roles))
    explanation = (
        f"Shared with {recipient} under agreement {agreement.id} ({agreement.title}) for the "
        f"purpose {message.envelope.purpose}, on the basis {agreement.lawful_basis.describe()}. "
        f"Consent was not needed: the agreement does not rely on consent. Released: "
        f"{', '.join(sorted(released))}; details of: {person_part}."
    )
    if withheld:
        explanation += (
            " Withheld: "
            + "; ".join(
                f"{w.category}{' of ' + w.person_ref if w.person_ref else ''} ({w.reason})" for w in withheld
            )
            + "."
        )
    return Decision(
        recipient=recipient,
        effect=Effect.PERMIT,
        rule="permit",
        released=released,
        withheld=tuple(withheld),
        policy_version=policy.version,
        agreement_id=agreement.id,
        lawful_basis=agreement.lawful_basis,
        person_roles=flow.person_roles,
        confidential_address_needed=flow.confidential_address_needed,
        explanation=explanation,
    )


__all__ = ["PERSON_CATEGORIES", "Decision", "Effect", "Withheld", "decide"]
