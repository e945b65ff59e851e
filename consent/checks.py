"""``gateway policy check``: what an IG lead should fix (errors) or look at (warnings) in a
policy before it goes live. Pure: the caller passes the parsed documents and ``today``.

Errors (the command exits non-zero):

``<schema rule>``                   a file breaks its JSON Schema (the rule is the finding's code)
``known-partner`` / ``known-category`` / ``known-event-type`` / ``known-purpose`` / ``known-role``
                                    a reference to something that does not exist
``special-category-without-article9``   an agreement releases special-category data (UK GDPR
                                    Art 9) but names no Art 9(2) condition
``special-category-without-schedule1``  ... or no DPA 2018 Schedule 1 condition
``overlapping-flows``               two flows of one agreement cover the same key (only the first
                                    would ever be used)
``overlapping-agreements-disagree`` two agreements in force at the same time cover the same
                                    (source, recipient, event type, purpose) but release
                                    different things or apply different consent rules

Warnings (listed separately; exit stays 0):

``agreement-expired``               ``valid_until`` has passed: the engine denies under it
``agreement-expiring``              ends within 30 days
``agreement-not-yet-in-force``      starts in the future
``review-overdue``                  the agreement's review date has passed
``route-never-permitted``           a route sends an event to a partner no agreement lets the
                                    sender share it with, so every such decision is a denial
``consent-basis-without-consent``   Art 6(1)(a) (consent) is the basis but the agreement does
                                    not require consent
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from canonical import DataDictionary
from consent.policy import Agreement, Flow, PolicyError, PolicySnapshot, compile_policy

EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True, slots=True)
class Finding:
    level: str
    """``error`` or ``warning``"""
    code: str
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path} ({self.code}): {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {
            "level": self.level,
            "code": self.code,
            "file": self.file,
            "path": self.path,
            "message": self.message,
        }


def check_policy(documents: Mapping[str, Any], dictionary: DataDictionary, today: date) -> list[Finding]:
    """Every finding for the policy documents (file name -> parsed content).

    Schema and reference errors stop the analysis (the rest needs a compiled policy)."""
    try:
        policy = compile_policy(documents, dictionary)
    except PolicyError as exc:
        return [Finding("error", v.rule, file, v.field, v.message) for file, v in exc.problems]
    agreement_paths = {
        a["id"]: f"/agreements/{i}" for i, a in enumerate(documents["agreements.yaml"]["agreements"])
    }
    findings = [
        *_agreement_findings(policy, agreement_paths, today),
        *_overlap_findings(policy, agreement_paths),
        *_route_findings(policy, documents["routes.yaml"]["routes"]),
    ]
    return sorted(findings, key=lambda f: (f.level != "error", f.file, f.path, f.code))


def _agreement_findings(policy: PolicySnapshot, paths: Mapping[str, str], today: date) -> Iterator[Finding]:
    special = {c.id for c in policy.dictionary.categories.values() if c.special_category}
    for agreement in policy.agreements.values():
        path = paths[agreement.id]

        def finding(
            level: str, code: str, where: str, message: str, path: str = path, aid: str = agreement.id
        ) -> Finding:
            return Finding(level, code, "agreements.yaml", f"{path}{where}", f"{aid}: {message}")

        if agreement.valid_until < today:
            yield finding(
                "warning",
                "agreement-expired",
                "/valid_until",
                f"ended on {agreement.valid_until.isoformat()}",
            )
        elif agreement.valid_until < today + timedelta(days=EXPIRY_WARNING_DAYS):
            yield finding(
                "warning",
                "agreement-expiring",
                "/valid_until",
                f"ends on {agreement.valid_until.isoformat()}, within {EXPIRY_WARNING_DAYS} days",
            )
        if agreement.valid_from > today:
            yield finding(
                "warning",
                "agreement-not-yet-in-force",
                "/valid_from",
                f"starts on {agreement.valid_from.isoformat()}",
            )
        if agreement.review_date is not None and agreement.review_date < today:
            yield finding(
                "warning",
                "review-overdue",
                "/review_date",
                f"review was due on {agreement.review_date.isoformat()}",
            )
        if agreement.lawful_basis.article6.startswith("6(1)(a)") and not agreement.consent_required:
            yield finding(
                "warning",
                "consent-basis-without-consent",
                "/consent_required",
                "the basis is consent (Art 6(1)(a)) but consent_required is not set: it is never checked",
            )
        released = sorted({c for f in agreement.flows for c in f.categories} & special)
        if released and not agreement.lawful_basis.article9:
            yield finding(
                "error",
                "special-category-without-article9",
                "/lawful_basis",
                f"releases special-category data ({', '.join(released)}) but names no Art 9(2) condition",
            )
        if released and not agreement.lawful_basis.dpa_schedule1:
            yield finding(
                "error",
                "special-category-without-schedule1",
                "/lawful_basis",
                f"releases special-category data ({', '.join(released)}) "
                "but names no DPA 2018 Schedule 1 condition",
            )


def _terms(agreement: Agreement, flow: Flow) -> tuple[object, ...]:
    """What a decision under this grant depends on, beyond the key."""
    return (
        flow.categories,
        flow.person_roles,
        flow.confidential_address_needed,
        flow.role_categories,
        agreement.consent_required,
        agreement.share_without_consent_on_risk,
    )


def _overlap_findings(policy: PolicySnapshot, paths: Mapping[str, str]) -> Iterator[Finding]:
    reported: set[tuple[str, str]] = set()
    for (source, recipient, event, purpose), grants in sorted(policy.grants.items()):
        for i, a in enumerate(grants):
            for b in grants[i + 1 :]:
                pair = (a.agreement.id, b.agreement.id)
                if pair in reported:
                    continue
                if a.agreement.id == b.agreement.id:
                    if a.flow != b.flow:
                        reported.add(pair)
                        yield Finding(
                            "error",
                            "overlapping-flows",
                            "agreements.yaml",
                            paths[a.agreement.id],
                            f"{a.agreement.id}: two flows cover {source} -> {recipient}, {event}, purpose "
                            f"{purpose}; only the first is ever used: merge them into one flow",
                        )
                    continue
                overlap = a.agreement.valid_from <= b.agreement.valid_until and (
                    b.agreement.valid_from <= a.agreement.valid_until
                )
                if not overlap or _terms(a.agreement, a.flow) == _terms(b.agreement, b.flow):
                    continue
                reported.add(pair)
                yield Finding(
                    "error",
                    "overlapping-agreements-disagree",
                    "agreements.yaml",
                    paths[b.agreement.id],
                    f"{a.agreement.id} and {b.agreement.id} both cover {source} -> {recipient}, "
                    f"{event}, purpose {purpose}, in force at the same time, but release different "
                    "categories or people, or apply different consent rules; the engine would use "
                    f"{a.agreement.id} (first by id): merge them or make them disjoint",
                )


def _route_findings(policy: PolicySnapshot, routes: list[Mapping[str, Any]]) -> Iterator[Finding]:
    for i, route in enumerate(routes):
        sources = set(route.get("from") or policy.partners)
        for event in route["event_types"]:
            for j, recipient in enumerate(route["to"]):
                if not any(
                    key[0] in sources and key[1] == recipient and key[2] == event for key in policy.grants
                ):
                    yield Finding(
                        "warning",
                        "route-never-permitted",
                        "routes.yaml",
                        f"/routes/{i}/to/{j}",
                        f"no agreement lets {'/'.join(sorted(route.get('from', ['any sender'])))} share "
                        f"{event} with {recipient}: every such decision will be a denial",
                    )
