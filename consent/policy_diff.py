"""``gateway policy diff OLD NEW``: who would newly see, or stop seeing, which categories.

Pure. Two compiled snapshots are compared on a given date, key by key — (source, recipient,
event type, purpose) — using the grant each would actually apply that day (the same
``PolicySnapshot.governing_grant`` the decision uses), so an agreement that exists but is not
in force counts as sharing nothing. Besides categories, a change in the people released
(person roles), in whether a confidential address may be released, or in the consent rule
is reported, because each changes what a recipient can see. Agreement-level edits (added,
removed, dates, basis) are listed too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from consent.policy import Agreement, Grant, GrantKey, PolicySnapshot


@dataclass(frozen=True, slots=True)
class AccessChange:
    source: str
    recipient: str
    event_type: str
    purpose: str
    gains: tuple[str, ...] = ()
    """Categories the recipient newly sees."""
    loses: tuple[str, ...] = ()
    """Categories the recipient stops seeing."""
    roles_gained: tuple[str, ...] = ()
    roles_lost: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Other changes: confidential address, consent rule, governing agreement."""
    old_agreement: str | None = None
    new_agreement: str | None = None

    def describe(self) -> str:
        head = f"{self.recipient} <- {self.source}  {self.event_type} / {self.purpose}"
        lines = [head]
        if self.gains:
            lines.append(f"  + newly sees: {', '.join(self.gains)}")
        if self.loses:
            lines.append(f"  - stops seeing: {', '.join(self.loses)}")
        if self.roles_gained:
            lines.append(f"  + details of: {', '.join(self.roles_gained)}")
        if self.roles_lost:
            lines.append(f"  - no longer details of: {', '.join(self.roles_lost)}")
        lines += [f"  * {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "recipient": self.recipient,
            "event_type": self.event_type,
            "purpose": self.purpose,
            "gains": list(self.gains),
            "loses": list(self.loses),
            "roles_gained": list(self.roles_gained),
            "roles_lost": list(self.roles_lost),
            "notes": list(self.notes),
            "old_agreement": self.old_agreement,
            "new_agreement": self.new_agreement,
        }


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    on: date
    access: tuple[AccessChange, ...] = ()
    agreements_added: tuple[str, ...] = ()
    agreements_removed: tuple[str, ...] = ()
    agreements_changed: tuple[str, ...] = field(default=())
    """``id: what changed`` lines."""

    @property
    def empty(self) -> bool:
        return not (
            self.access or self.agreements_added or self.agreements_removed or self.agreements_changed
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "on": self.on.isoformat(),
            "access": [a.as_dict() for a in self.access],
            "agreements_added": list(self.agreements_added),
            "agreements_removed": list(self.agreements_removed),
            "agreements_changed": list(self.agreements_changed),
        }


def diff_policies(old: PolicySnapshot, new: PolicySnapshot, on: date) -> PolicyDiff:
    changes = [
        c for key in sorted(set(old.grants) | set(new.grants)) if (c := _key_change(old, new, key, on))
    ]
    return PolicyDiff(
        on=on,
        access=tuple(changes),
        agreements_added=tuple(sorted(set(new.agreements) - set(old.agreements))),
        agreements_removed=tuple(sorted(set(old.agreements) - set(new.agreements))),
        agreements_changed=tuple(
            f"{aid}: {what}"
            for aid in sorted(set(old.agreements) & set(new.agreements))
            for what in _agreement_changes(old.agreements[aid], new.agreements[aid])
        ),
    )


def _key_change(old: PolicySnapshot, new: PolicySnapshot, key: GrantKey, on: date) -> AccessChange | None:
    a, b = old.governing_grant(key, on), new.governing_grant(key, on)
    cats_a, cats_b = _categories(a), _categories(b)
    roles_a = a.flow.person_roles if a else frozenset()
    roles_b = b.flow.person_roles if b else frozenset()
    notes = list(_notes(a, b))
    if cats_a == cats_b and roles_a == roles_b and not notes:
        return None
    return AccessChange(
        *key,
        gains=tuple(sorted(cats_b - cats_a)),
        loses=tuple(sorted(cats_a - cats_b)),
        roles_gained=tuple(sorted(roles_b - roles_a)) if a and b else (),
        roles_lost=tuple(sorted(roles_a - roles_b)) if a and b else (),
        notes=tuple(notes),
        old_agreement=a.agreement.id if a else None,
        new_agreement=b.agreement.id if b else None,
    )


def _categories(grant: Grant | None) -> frozenset[str]:
    return grant.flow.categories if grant else frozenset()


def _notes(a: Grant | None, b: Grant | None) -> Iterator[str]:
    if a is None or b is None:
        if b is not None:
            yield f"newly shared under {b.agreement.id}"
        elif a is not None:
            yield f"no longer shared (was {a.agreement.id})"
        return
    if a.agreement.id != b.agreement.id:
        yield f"governed by {b.agreement.id} instead of {a.agreement.id}"
    if a.flow.confidential_address_needed != b.flow.confidential_address_needed:
        yield (
            "may now receive confidential addresses"
            if b.flow.confidential_address_needed
            else "no longer receives confidential addresses"
        )
    if a.flow.role_categories != b.flow.role_categories:
        old, new = dict(a.flow.role_categories), dict(b.flow.role_categories)
        for role in sorted(set(old) | set(new)):
            before, after = old.get(role, a.flow.categories), new.get(role, b.flow.categories)
            if before != after:
                yield f"about a {role}: {', '.join(sorted(before))} -> {', '.join(sorted(after))}"
    if a.agreement.consent_required != b.agreement.consent_required:
        yield "consent is now required" if b.agreement.consent_required else "consent is no longer required"
    if a.agreement.share_without_consent_on_risk != b.agreement.share_without_consent_on_risk:
        yield (
            "may now be shared without consent on risk of significant harm"
            if b.agreement.share_without_consent_on_risk
            else "no longer shared without consent on risk of significant harm"
        )


def _agreement_changes(a: Agreement, b: Agreement) -> Iterator[str]:
    for name in ("valid_from", "valid_until", "review_date"):
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            yield f"{name} {x} -> {y}"
    if a.lawful_basis != b.lawful_basis:
        yield f"lawful basis {a.lawful_basis.describe()} -> {b.lawful_basis.describe()}"
    if (a.review_role, a.review_hours) != (b.review_role, b.review_hours):
        yield (
            f"review by {a.review_role} within {a.review_hours:g} h -> "
            f"{b.review_role} within {b.review_hours:g} h"
        )
