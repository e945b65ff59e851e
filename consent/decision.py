"""The sharing decision: for one message and one candidate recipient, permit (with the exact
categories released), deny, or hold for review, and say why.

Rules, in the order they are applied (each is named in ``Decision.rule``):

``unknown-recipient``        the recipient is not a partner in the policy -> deny
``do-not-inform-family``     the sender flagged "do not inform the family" and the recipient
                             is parent-facing -> deny
``no-agreement``             no agreement covers (source, recipient, event type, purpose) -> deny
``agreement-not-in-force``   agreements exist but none is in force on the decision date -> deny
``consent-refused``          the agreement relies on consent and a child's consent is refused or
                             withdrawn, and no safeguarding override applies -> deny
``consent-unknown``          the agreement relies on consent, a child's consent is not recorded,
                             and no safeguarding override applies -> review (held for a named
                             role until a deadline; never shared automatically)
``nothing-to-share``         the agreement allows nothing the message carries -> deny
``permit``                   released = agreement categories for that purpose ∩ message categories,
                             for the person roles the agreement names

Safeguarding override: where the agreement allows sharing without consent on risk
(``share_without_consent_on_risk``) **and** the sender asserted risk of significant harm,
refused or unknown consent does not stop sharing; the decision records "without consent"
and the condition relied on.

Data minimisation is structural: ``released`` is an intersection, never a default. There is
no path that returns permit without an agreement. The function is pure: the caller passes
``now`` and the consent view; nothing is read from a clock, a file or the network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from canonical import Message, Person
from canonical.model import IDENTITY_ADDRESS
from consent.policy import Agreement, Flow, Grant, LawfulBasis, Partner, PolicySnapshot
from consent.registry import ConsentRecord, ConsentState, ConsentView

PARENT_FACING = "parent-facing"


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
    """The consent relied on, or why none was needed."""
    consent_records: tuple[str, ...] = ()
    """Ids of the consent records the release relies on: withdrawing one cancels it."""
    person_roles: frozenset[str] = frozenset()
    excluded_people: frozenset[str] = frozenset()
    """Local refs of people whose own consent refusal keeps them out of the release."""
    confidential_address_needed: bool = False
    role_categories: tuple[tuple[str, frozenset[str]], ...] = ()
    """Narrower releases about people in some roles (the agreement flow's ``role_categories``)."""
    review_role: str | None = None
    review_deadline: datetime | None = None
    explanation: str = ""

    @property
    def permitted(self) -> bool:
        return self.effect is Effect.PERMIT

    @property
    def relies_on_consent(self) -> bool:
        return bool(self.consent_records)

    def categories_about(self, role: str) -> frozenset[str]:
        """What is released about a person in ``role``: ``released``, narrowed for that role
        where the agreement says so."""
        for listed, categories in self.role_categories:
            if listed == role:
                return self.released & categories
        return self.released

    def as_dict(self) -> dict[str, object]:
        """The structured explanation written to the audit log (no personal data)."""
        return {
            "recipient": self.recipient,
            "effect": self.effect.value,
            "rule": self.rule,
            "agreement": self.agreement_id,
            "lawful_basis": self.lawful_basis.describe() if self.lawful_basis else None,
            "consent": self.consent,
            "consent_records": list(self.consent_records),
            "released": sorted(self.released),
            "withheld": [w.as_dict() for w in self.withheld],
            "person_roles": sorted(self.person_roles),
            **(
                {"role_categories": {role: sorted(cats) for role, cats in self.role_categories}}
                if self.role_categories
                else {}
            ),
            "excluded_people": sorted(self.excluded_people),
            "review_role": self.review_role,
            "review_deadline": self.review_deadline.isoformat() if self.review_deadline else None,
            "policy_version": self.policy_version,
            "explanation": self.explanation,
        }


def decide(
    message: Message,
    recipient: str,
    policy: PolicySnapshot,
    now: datetime,
    consents: ConsentView | None = None,
) -> Decision:
    """Decide what ``recipient`` may receive of ``message`` under ``policy`` at ``now``.

    ``consents`` answers consent look-ups; without one, every consent is "not recorded"
    (so consent-based sharing is held for review, never allowed by default).
    """
    env = message.envelope
    carried = message.categories()

    def deny(rule: str, why: str, agreement: Agreement | None = None) -> Decision:
        return Decision(
            recipient=recipient,
            effect=Effect.DENY,
            rule=rule,
            released=frozenset(),
            withheld=tuple(Withheld(c, why) for c in sorted(carried)),
            policy_version=policy.version,
            agreement_id=agreement.id if agreement else None,
            lawful_basis=agreement.lawful_basis if agreement else None,
            explanation=f"Not shared with {recipient}: {why}.",
        )

    partner = policy.partners.get(recipient)
    if partner is None:
        return deny("unknown-recipient", "the recipient is not a partner in the policy")
    if env.flags.do_not_inform_family and PARENT_FACING in partner.roles:
        return deny(
            "do-not-inform-family",
            f"the sender asked that the family is not informed and {recipient} is a parent-facing service",
        )
    key = (env.source, recipient, env.event_type, env.purpose)
    grants = policy.grants.get(key, ())
    if not grants:
        return deny(
            "no-agreement",
            f"no sharing agreement lets {env.source} share "
            f"{env.event_type} with {recipient} for the purpose {env.purpose}",
        )
    today = now.date()
    # Several in-force agreements for one key: the first by id is used, deterministically;
    # `gateway policy check` reports such overlaps so IG leads can resolve them.
    grant = policy.governing_grant(key, today)
    if grant is None:
        ids = ", ".join(sorted({g.agreement.id for g in grants}))
        return deny(
            "agreement-not-in-force", f"the agreement(s) {ids} are not in force on {today.isoformat()}"
        )
    consent = _consent(message, partner, grant.agreement, consents, now)
    if consent.blocking == "refused":
        return deny("consent-refused", consent.summary, grant.agreement)
    return _release(message, recipient, grant, policy, carried, consent, now)


@dataclass(frozen=True, slots=True)
class _Consent:
    summary: str
    records: tuple[str, ...] = ()
    blocking: str | None = None  # "refused" | "unknown" | None
    excluded_people: frozenset[str] = frozenset()


def _consent(
    message: Message, partner: Partner, agreement: Agreement, consents: ConsentView | None, now: datetime
) -> _Consent:
    if not agreement.consent_required:
        return _Consent("not required: the agreement's lawful basis does not rely on consent")
    env = message.envelope

    def lookup(person: Person) -> ConsentRecord | None:
        if consents is None or not person.identifiers:
            return None
        return consents.lookup(person.identifiers, env.purpose, partner.id, partner.sector, now)

    override = agreement.share_without_consent_on_risk and env.flags.risk_of_significant_harm
    condition = agreement.lawful_basis.dpa_schedule1 or agreement.lawful_basis.article9 or "safeguarding"
    children = message.children()
    found = {c.ref: lookup(c) for c in children}
    refused = sorted(ref for ref, r in found.items() if r is not None and r.state is not ConsentState.GIVEN)
    unknown = sorted(ref for ref, r in found.items() if r is None)
    if not children:
        unknown = ["(no child identified)"]
    if refused or unknown:
        what = (
            f"consent refused or withdrawn for {', '.join(refused)}"
            if refused
            else f"consent not recorded for {', '.join(unknown)}"
        )
        if override:
            return _Consent(
                f"without consent ({what}): the sender asserted risk of significant harm "
                f"and agreement {agreement.id} allows sharing without consent under {condition}"
            )
        return _Consent(what, blocking="refused" if refused else "unknown")
    # Every child consents. Other people's own refusals keep their details out.
    excluded = frozenset(
        p.ref
        for p in message.people
        if p.role != "child" and (r := lookup(p)) is not None and r.state is not ConsentState.GIVEN
    )
    records = tuple(sorted(r.record_id for r in found.values() if r is not None))
    people = "; ".join(f"{ref}: {r.describe()}" for ref, r in sorted(found.items()) if r is not None)
    return _Consent(f"given ({people})", records, None, excluded)


def _release(
    message: Message,
    recipient: str,
    grant: Grant,
    policy: PolicySnapshot,
    carried: frozenset[str],
    consent: _Consent,
    now: datetime,
) -> Decision:
    flow, agreement = grant.flow, grant.agreement
    withheld: list[Withheld] = []
    for category in sorted(carried - flow.categories):
        reason = f"not named in agreement {agreement.id} for purpose {message.envelope.purpose}"
        if category in policy.dictionary.sensitive_categories:
            reason = f"sensitive category; {reason}"
        withheld.append(Withheld(category, reason))

    kept_people = [p for p in message.people if _person_released(p, flow, consent)]
    for person in message.people:
        if person.ref in consent.excluded_people:
            withheld += [
                Withheld(c, "this person refused or withdrew consent", person.ref)
                for c in sorted(person.categories() & flow.categories)
            ]
        elif person.role not in flow.person_roles:
            withheld += [
                Withheld(c, f"role {person.role} is not released by agreement {agreement.id}", person.ref)
                for c in sorted(person.categories() & flow.categories)
            ]
        else:
            allowed = flow.categories_for(person.role)
            withheld += [
                Withheld(c, f"not released about a {person.role} by agreement {agreement.id}", person.ref)
                for c in sorted((person.categories() & flow.categories) - allowed)
            ]
            if (
                person.has_confidential_address
                and person.addresses
                and IDENTITY_ADDRESS in allowed
                and not flow.confidential_address_needed
            ):
                withheld.append(
                    Withheld(
                        IDENTITY_ADDRESS,
                        f"confidential-address marker; agreement {agreement.id} names no need for it",
                        person.ref,
                    )
                )

    kept_roles = {p.ref: p.role for p in kept_people}
    released_items: set[str] = set()
    for item in message.items:
        if item.category not in flow.categories:
            continue
        # An item about people goes only if it is about someone released, in a role that
        # may receive this category (role_categories narrows it for some roles).
        if not item.about or any(
            ref in kept_roles and item.category in flow.categories_for(kept_roles[ref]) for ref in item.about
        ):
            released_items.add(item.category)
        else:
            withheld.append(
                Withheld(
                    item.category,
                    f"an item of type {item.type} is only about people about whom {item.category} "
                    "is not released",
                )
            )
    released_people: set[str] = set()
    for p in kept_people:
        cats = p.categories() & flow.categories & flow.categories_for(p.role)
        if p.has_confidential_address and not flow.confidential_address_needed:
            cats = cats - {IDENTITY_ADDRESS}
        released_people |= cats
    released = frozenset(released_items | released_people)

    basis = (
        f"under agreement {agreement.id} ({agreement.title}) for the purpose "
        f"{message.envelope.purpose}, on the basis {agreement.lawful_basis.describe()}"
    )
    listing = f"Released: {', '.join(sorted(released))}; details of: {', '.join(sorted(flow.person_roles))}."
    if withheld:
        listing += (
            " Withheld: "
            + "; ".join(
                f"{w.category}{' of ' + w.person_ref if w.person_ref else ''} ({w.reason})" for w in withheld
            )
            + "."
        )
    effect, rule = Effect.PERMIT, "permit"
    review_role: str | None = None
    deadline: datetime | None = None
    if not released:
        effect, rule = Effect.DENY, "nothing-to-share"
        explanation = (
            f"Nothing sent to {recipient}: agreement {agreement.id} allows none of the information "
            "this message carries."
        )
    elif consent.blocking == "unknown":
        effect, rule = Effect.REVIEW, "consent-unknown"
        review_role, deadline = agreement.review_role, now + timedelta(hours=agreement.review_hours)
        explanation = (
            f"Held for review by {review_role} until {deadline.isoformat()}: "
            f"{consent.summary}. If approved it would be shared with {recipient} {basis}. "
            f"{listing}"
        )
    else:
        explanation = f"Shared with {recipient} {basis}. Consent: {consent.summary}. {listing}"
    # One construction, no copies: this is the hot path of every decision.
    return Decision(
        recipient=recipient,
        effect=effect,
        rule=rule,
        released=released,
        withheld=tuple(withheld),
        policy_version=policy.version,
        agreement_id=agreement.id,
        lawful_basis=agreement.lawful_basis,
        consent=consent.summary,
        consent_records=consent.records,
        person_roles=flow.person_roles,
        excluded_people=consent.excluded_people,
        confidential_address_needed=flow.confidential_address_needed,
        role_categories=flow.role_categories,
        review_role=review_role,
        review_deadline=deadline,
        explanation=explanation,
    )


def _person_released(person: Person, flow: Flow, consent: _Consent) -> bool:
    return person.role in flow.person_roles and person.ref not in consent.excluded_people
