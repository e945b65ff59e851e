"""Consent semantics, each rule by name: given, refused, withdrawn, unknown (review), the
safeguarding override, other people's own refusals, do-not-inform-family, and the
registry's look-up rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from canonical import Identifier, Message
from consent import Effect, decide, redact
from consent.registry import ConsentRecord, ConsentRegistry, ConsentState, DecidedBy
from tests.consent.builders import CSC, SCHOOL, SENDER, agreement, policy
from tests.support import sample_message

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CHILD = "nhs-number:9990000018"
ROLES = ["child", "victim", "alleged-perpetrator"]


def message(*, risk: bool = False, do_not_inform: bool = False, purpose: str = "safeguarding") -> Message:
    doc = sample_message()
    doc["envelope"].update(
        source=SENDER,
        purpose=purpose,
        flags={"risk_of_significant_harm": risk, "do_not_inform_family": do_not_inform},
    )
    doc["envelope"].pop("recipients", None)
    doc["people"][1]["identifiers"] = [{"system": "local-child-id", "value": "ADULT-1"}]
    return Message.from_dict(doc)


def record(
    state: ConsentState,
    *,
    subject: str = CHILD,
    scope: str = CSC,
    by: DecidedBy = DecidedBy.PARENT,
    at: datetime = NOW - timedelta(days=1),
    expires: datetime | None = None,
    rid: str = "c1",
) -> ConsentRecord:
    return ConsentRecord(rid, subject, "safeguarding", scope, state, by, at, expires)


def consent_policy(**overrides: Any) -> Any:
    return policy(agreement(consent_required=True, flow={"person_roles": ROLES}, **overrides))


class TestConsentRequired:
    def test_given_permits_and_names_the_record(self) -> None:
        d = decide(message(), CSC, consent_policy(), NOW, ConsentRegistry([record(ConsentState.GIVEN)]))
        assert (d.effect, d.rule, d.consent_records) == (Effect.PERMIT, "permit", ("c1",))
        assert d.consent.startswith("given")
        assert d.relies_on_consent

    def test_refused_or_withdrawn_denies(self) -> None:
        for state in (ConsentState.REFUSED, ConsentState.WITHDRAWN):
            d = decide(message(), CSC, consent_policy(), NOW, ConsentRegistry([record(state)]))
            assert (d.effect, d.rule, d.released) == (Effect.DENY, "consent-refused", frozenset())

    def test_unknown_is_held_for_the_named_role_with_a_deadline(self) -> None:
        pol = consent_policy(review={"role": "mash-manager", "within_hours": 4})
        d = decide(message(), CSC, pol, NOW, ConsentRegistry())
        assert (d.effect, d.rule, d.review_role) == (Effect.REVIEW, "consent-unknown", "mash-manager")
        assert d.review_deadline == NOW + timedelta(hours=4)
        assert d.released  # what the reviewer would approve
        assert not d.permitted

    def test_no_registry_never_means_share(self) -> None:
        d = decide(message(), CSC, consent_policy(), NOW, None)
        assert d.effect is Effect.REVIEW

    def test_not_required_needs_no_registry(self) -> None:
        d = decide(message(), CSC, policy(agreement()), NOW, None)
        assert (d.effect, d.consent_records) == (Effect.PERMIT, ())
        assert d.consent.startswith("not required")


class TestSafeguardingOverride:
    def test_refused_consent_is_overridden_only_with_risk_and_permission(self) -> None:
        refused = ConsentRegistry([record(ConsentState.REFUSED)])
        allowed = consent_policy(
            share_without_consent_on_risk=True,
            lawful_basis={"article6": "6(1)(e)", "article9": "9(2)(g)", "dpa_schedule1": "Sch 1 para 18"},
        )
        d = decide(message(risk=True), CSC, allowed, NOW, refused)
        assert (d.effect, d.consent_records) == (Effect.PERMIT, ())
        assert d.consent.startswith("without consent")
        assert "Sch 1 para 18" in d.consent
        assert decide(message(risk=False), CSC, allowed, NOW, refused).rule == "consent-refused"
        assert decide(message(risk=True), CSC, consent_policy(), NOW, refused).rule == "consent-refused"

    def test_unknown_consent_with_risk_is_shared_without_consent(self) -> None:
        allowed = consent_policy(share_without_consent_on_risk=True)
        d = decide(message(risk=True), CSC, allowed, NOW, ConsentRegistry())
        assert d.effect is Effect.PERMIT
        assert "without consent" in d.consent


class TestSeveralPeople:
    def test_an_adults_own_refusal_keeps_their_details_out(self) -> None:
        reg = ConsentRegistry(
            [
                record(ConsentState.GIVEN),
                record(ConsentState.REFUSED, subject="local-child-id:ADULT-1", rid="c2"),
            ]
        )
        d = decide(message(), CSC, consent_policy(), NOW, reg)
        assert d.effect is Effect.PERMIT
        assert d.excluded_people == {"parent-1"}
        out = redact(message(), d)
        assert "parent-1" not in {p.ref for p in out.people}
        assert any(w.person_ref == "parent-1" and "consent" in w.reason for w in d.withheld)


class TestDoNotInformFamily:
    def test_parent_facing_recipients_get_nothing(self) -> None:
        pol = policy(agreement(flow={"to": [SCHOOL, CSC]}))
        assert decide(message(do_not_inform=True), SCHOOL, pol, NOW).rule == "do-not-inform-family"
        assert decide(message(do_not_inform=True), CSC, pol, NOW).effect is Effect.PERMIT
        assert decide(message(), SCHOOL, pol, NOW).effect is Effect.PERMIT


class TestRegistryLookup:
    child = (Identifier("nhs-number", "9990000018"),)

    def lookup(self, *records: ConsentRecord, now: datetime = NOW) -> ConsentRecord | None:
        return ConsentRegistry(records).lookup(self.child, "safeguarding", CSC, "social-care", now)

    def test_scope_is_the_partner_or_its_sector(self) -> None:
        assert self.lookup(record(ConsentState.GIVEN, scope=CSC)) is not None
        assert self.lookup(record(ConsentState.GIVEN, scope="sector:social-care")) is not None
        assert self.lookup(record(ConsentState.GIVEN, scope="sector:education")) is None
        assert self.lookup(record(ConsentState.GIVEN, scope=SCHOOL)) is None

    def test_a_later_sector_withdrawal_overrides_an_earlier_partner_consent(self) -> None:
        partner = record(ConsentState.GIVEN, scope=CSC, rid="partner", at=NOW - timedelta(days=3))
        sector = record(
            ConsentState.WITHDRAWN, scope="sector:social-care", rid="sector", at=NOW - timedelta(hours=1)
        )
        assert self.lookup(partner, sector) == sector

    def test_competent_child_prevails_over_parent(self) -> None:
        child = record(
            ConsentState.REFUSED, by=DecidedBy.COMPETENT_CHILD, rid="child", at=NOW - timedelta(days=5)
        )
        parent = record(ConsentState.GIVEN, rid="parent", at=NOW - timedelta(days=1))
        assert self.lookup(child, parent) == child

    def test_latest_wins(self) -> None:
        old = record(ConsentState.GIVEN, rid="old", at=NOW - timedelta(days=5))
        new = record(ConsentState.WITHDRAWN, rid="new", at=NOW - timedelta(days=1))
        assert self.lookup(old, new) == new

    def test_expired_and_future_records_are_ignored(self) -> None:
        expired = record(ConsentState.GIVEN, expires=NOW - timedelta(seconds=1))
        future = record(ConsentState.GIVEN, at=NOW + timedelta(days=1))
        assert self.lookup(expired) is None
        assert self.lookup(future) is None
        assert self.lookup(expired, now=NOW - timedelta(days=1)) == expired
