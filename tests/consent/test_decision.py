"""Each decision rule by name (consent.decision), on policies built for the rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from canonical import Message
from consent import Effect, PolicyError, decide, redact
from consent.redact import NotPermitted
from tests.consent.builders import CSC, SCHOOL, SENDER, agreement, policy
from tests.support import sample_message

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def message(**envelope: Any) -> Message:
    doc = sample_message()
    doc["envelope"].update(envelope)
    doc["envelope"]["source"] = SENDER
    doc["envelope"].pop("recipients", None)
    return Message.from_dict(doc)


class TestDenyRules:
    def test_no_agreement_denies(self) -> None:
        d = decide(message(), SCHOOL, policy(agreement()), NOW)
        assert (d.effect, d.rule, d.released) == (Effect.DENY, "no-agreement", frozenset())
        assert {w.category for w in d.withheld} == message().categories()

    def test_unknown_recipient_denies(self) -> None:
        d = decide(message(), "nobody", policy(agreement()), NOW)
        assert (d.effect, d.rule) == (Effect.DENY, "unknown-recipient")

    def test_other_purpose_denies(self) -> None:
        d = decide(message(purpose="early-help"), CSC, policy(agreement()), NOW)
        assert d.rule == "no-agreement"

    @pytest.mark.parametrize(
        "when", [datetime(2025, 12, 31, 23, 59, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]
    )
    def test_agreement_out_of_date_denies(self, when: datetime) -> None:
        d = decide(message(), CSC, policy(agreement()), when)
        assert (d.effect, d.rule) == (Effect.DENY, "agreement-not-in-force")

    def test_last_day_is_in_force(self) -> None:
        d = decide(message(), CSC, policy(agreement()), datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
        assert d.effect is Effect.PERMIT

    def test_nothing_to_share_denies(self) -> None:
        pol = policy(agreement(flow={"categories": ["health.attendance"]}))
        d = decide(message(), CSC, pol, NOW)
        assert (d.effect, d.rule, d.agreement_id) == (Effect.DENY, "nothing-to-share", "agr-a")


class TestPermit:
    def test_released_is_the_intersection(self) -> None:
        pol = policy(agreement(flow={"categories": ["identity.core", "event.summary", "health.attendance"]}))
        d = decide(message(), CSC, pol, NOW)
        assert d.effect is Effect.PERMIT
        assert d.released == {"identity.core", "event.summary"}
        withheld = {w.category for w in d.withheld if w.person_ref is None}
        assert withheld == {
            "identity.address",
            "identity.contact",
            "event.narrative",
            "police.risk-assessment",
        }
        assert d.agreement_id == "agr-a"
        assert d.lawful_basis is not None
        assert "6(1)(e)" in d.explanation
        assert d.policy_version == pol.version

    def test_sensitive_category_is_withheld_with_its_reason_unless_named(self) -> None:
        doc = sample_message()
        doc["envelope"]["source"] = SENDER
        doc["items"].append(
            {"category": "health.mental-health", "type": "note", "about": ["child-1"], "data": {"x": 1}}
        )
        msg = Message.from_dict(doc)
        d = decide(msg, CSC, policy(agreement()), NOW)
        reasons = {w.category: w.reason for w in d.withheld}
        assert reasons["health.mental-health"].startswith("sensitive category")
        named = policy(agreement(flow={"categories": ["identity.core", "health.mental-health"]}))
        assert "health.mental-health" in decide(msg, CSC, named, NOW).released

    def test_only_released_roles_appear(self) -> None:
        pol = policy(agreement(flow={"categories": ["identity.core", "event.narrative"]}))
        d = decide(message(), CSC, pol, NOW)
        out = redact(message(), d)
        assert [p.role for p in out.people] == ["child"]
        by_ref = {w.person_ref for w in d.withheld if w.person_ref}
        assert by_ref == {"parent-1", "adult-2"}

    def test_item_only_about_unreleased_people_is_withheld(self) -> None:
        pol = policy(agreement(flow={"categories": ["identity.core", "police.risk-assessment"]}))
        d = decide(message(), CSC, pol, NOW)
        assert "police.risk-assessment" not in d.released
        assert any(w.category == "police.risk-assessment" for w in d.withheld)


class TestConfidentialAddress:
    roles: ClassVar[list[str]] = ["child", "victim", "alleged-perpetrator"]

    def test_marked_address_is_withheld_from_every_recipient(self) -> None:
        pol = policy(
            agreement(flow={"categories": ["identity.core", "identity.address"], "person_roles": self.roles})
        )
        d = decide(message(), CSC, pol, NOW)
        out = redact(message(), d).as_dict()
        people = {p["ref"]: p for p in out["people"]}
        assert "addresses" not in people["parent-1"]
        assert people["child-1"]["addresses"]
        assert any(w.person_ref == "parent-1" and "confidential-address" in w.reason for w in d.withheld)

    def test_released_only_where_the_agreement_names_the_need(self) -> None:
        flow = {
            "categories": ["identity.core", "identity.address"],
            "person_roles": self.roles,
            "confidential_address_needed": True,
        }
        d = decide(message(), CSC, policy(agreement(flow=flow)), NOW)
        people = {p.ref: p for p in redact(message(), d).people}
        assert people["parent-1"].addresses


class TestRoleCategories:
    """A flow's ``role_categories`` narrows what is released about people in a role."""

    FLOW: ClassVar[dict[str, Any]] = {
        "categories": ["identity.core", "identity.contact", "event.summary"],
        "person_roles": ["child", "victim", "alleged-perpetrator"],
        "role_categories": {"alleged-perpetrator": ["identity.core"]},
    }

    def test_the_role_gets_only_its_categories(self) -> None:
        doc = sample_message()
        doc["envelope"]["source"] = SENDER
        doc["people"][2]["contacts"] = [{"kind": "phone", "value": "07700 900099"}]
        msg = Message.from_dict(doc)
        d = decide(msg, CSC, policy(agreement(flow=self.FLOW)), NOW)
        people = {p.ref: p for p in redact(msg, d).people}
        assert people["adult-2"].name is not None  # his identifiers: yes
        assert people["adult-2"].contacts == ()  # his phone: no
        assert people["parent-1"].contacts  # the victim's safe contact: yes
        assert "identity.contact" in d.released
        assert any(
            (w.category, w.person_ref) == ("identity.contact", "adult-2")
            and "alleged-perpetrator" in w.reason
            for w in d.withheld
        )
        assert d.as_dict()["role_categories"] == {"alleged-perpetrator": ["identity.core"]}
        assert "07700 900099" not in json.dumps(redact(msg, d).as_dict())

    def test_a_role_the_flow_does_not_release_is_refused(self) -> None:
        flow = {**self.FLOW, "person_roles": ["child", "victim"]}
        with pytest.raises(PolicyError, match="role_categories/alleged-perpetrator \\(role-released\\)"):
            policy(agreement(flow=flow))

    def test_categories_outside_the_flow_are_refused(self) -> None:
        flow = {**self.FLOW, "role_categories": {"victim": ["identity.address"]}}
        with pytest.raises(PolicyError, match="within-flow-categories"):
            policy(agreement(flow=flow))


class TestRedact:
    def test_refuses_a_deny(self) -> None:
        d = decide(message(), SCHOOL, policy(agreement()), NOW)
        with pytest.raises(NotPermitted):
            redact(message(), d)

    def test_without_identity_core_only_ref_and_role_remain(self) -> None:
        pol = policy(agreement(flow={"categories": ["event.summary"]}))
        out = redact(message(), decide(message(), CSC, pol, NOW))
        assert [p.as_dict() for p in out.people] == [{"ref": "child-1", "role": "child"}]
