"""Leak property: for random agreements, the canaries in every rendered output are exactly
those of the released categories for released people — never one more.

Every value in the generated message is a unique canary string tagged with the category
(and person) it belongs to; the renderer's bytes are searched for each canary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import default_registry
from adapters.base import NotRenderable
from adapters.canonical_json import NAME as CANONICAL_JSON
from canonical import Flags, Message
from consent import ConsentRecord, ConsentRegistry, ConsentState, DecidedBy, Effect, decide, redact
from tests.consent.builders import CSC, SENDER, agreement, policy

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ROLES = ["child", "sibling", "victim", "alleged-perpetrator"]
ITEM_CATEGORIES = [
    "event.summary",
    "event.narrative",
    "police.risk-assessment",
    "health.mental-health",
    "health.sexual-health",
    "education.sen",
]
PERSON_CATEGORIES = ["identity.core", "identity.address", "identity.contact"]


@dataclass(frozen=True)
class Canary:
    value: str
    category: str
    person: str | None  # the person ref the value belongs to (None for items about nobody)


def build(
    people_spec: list[tuple[str, bool]], items_spec: list[tuple[str, list[int]]]
) -> tuple[Message, list[Canary]]:
    canaries: list[Canary] = []

    def canary(category: str, person: str | None) -> str:
        value = f"CNRY{len(canaries):04d}X"
        canaries.append(Canary(value, category, person))
        return value

    people: list[dict[str, Any]] = []
    for i, (role, confidential) in enumerate(people_spec):
        ref = f"p{i}"
        person: dict[str, Any] = {
            "ref": ref,
            "role": role,
            "name": {"given": canary("identity.core", ref), "family": canary("identity.core", ref)},
            "identifiers": [{"system": "local-child-id", "value": canary("identity.core", ref)}],
            "addresses": [
                {"lines": [canary("identity.address", ref)], "postcode": canary("identity.address", ref)}
            ],
            "contacts": [{"kind": "phone", "value": canary("identity.contact", ref)}],
        }
        if confidential:
            person["markers"] = ["confidential-address"]
        people.append(person)
    items = []
    for category, about_idx in items_spec:
        about = sorted({f"p{i % len(people)}" for i in about_idx}) if people else []
        owner = about[0] if len(about) == 1 else None
        items.append(
            {
                "category": category,
                "type": "t",
                "about": about,
                "data": {"v": canary(category, owner), "w": [canary(category, owner)]},
            }
        )
    doc = {
        "envelope": {
            "event_type": "police.domestic-abuse-incident",
            "occurred_at": "2026-05-01T00:00:00+00:00",
            "purpose": "safeguarding",
            "source": SENDER,
        },
        "people": people,
        "items": items,
    }
    return Message.from_dict(doc), canaries


people_st = st.lists(st.tuples(st.sampled_from(ROLES), st.booleans()), min_size=1, max_size=4)
items_st = st.lists(
    st.tuples(st.sampled_from(ITEM_CATEGORIES), st.lists(st.integers(0, 3), min_size=0, max_size=3)),
    max_size=6,
)


@st.composite
def flow_st(draw: st.DrawFn) -> dict[str, Any]:
    categories = draw(st.lists(st.sampled_from(PERSON_CATEGORIES + ITEM_CATEGORIES), min_size=1, unique=True))
    roles = draw(st.lists(st.sampled_from(ROLES), min_size=1, unique=True))
    # Some roles get only some of the flow's categories about them.
    narrowed = draw(st.lists(st.sampled_from(roles), unique=True))
    return {
        "categories": categories,
        "person_roles": roles,
        "confidential_address_needed": draw(st.booleans()),
        "role_categories": {
            role: draw(st.lists(st.sampled_from(categories), unique=True)) for role in narrowed
        },
    }


consent_st = st.fixed_dictionaries(
    {
        "required": st.booleans(),
        "override": st.booleans(),
        "risk": st.booleans(),
        "states": st.lists(st.sampled_from([None, "given", "refused", "withdrawn"]), min_size=4, max_size=4),
    }
)


def registry_for(msg: Message, states: list[str | None]) -> ConsentRegistry:
    records = []
    for i, (person, state) in enumerate(zip(msg.people, states, strict=False)):
        if state is not None:
            ident = person.identifiers[0]
            records.append(
                ConsentRecord(
                    f"r{i}",
                    f"{ident.system}:{ident.value}",
                    "safeguarding",
                    CSC,
                    ConsentState(state),
                    DecidedBy.PARENT,
                    NOW - timedelta(days=1),
                )
            )
    return ConsentRegistry(records)


class TestNoLeak:
    @settings(max_examples=300, deadline=None)
    @given(people_st, items_st, flow_st(), consent_st)
    def test_rendered_output_holds_exactly_the_released_canaries(
        self,
        people_spec: list[tuple[str, bool]],
        items_spec: list[tuple[str, list[int]]],
        flow: dict[str, Any],
        consent: dict[str, Any],
    ) -> None:
        msg, canaries = build(people_spec, items_spec)
        if consent["risk"]:
            msg = msg.with_envelope(flags=Flags(risk_of_significant_harm=True))
        pol = policy(
            agreement(
                flow=flow,
                consent_required=consent["required"],
                share_without_consent_on_risk=consent["override"],
            )
        )
        decision = decide(msg, CSC, pol, NOW, registry_for(msg, consent["states"]))
        roles = {f"p{i}": role for i, (role, _) in enumerate(people_spec)}
        confidential = {f"p{i}" for i, (_, c) in enumerate(people_spec) if c}
        allowed_roles = set(flow["person_roles"])

        def may_appear(c: Canary) -> bool:
            if c.category not in decision.released:
                return False
            if c.person is not None and (
                roles[c.person] not in allowed_roles or c.person in decision.excluded_people
            ):
                return False
            narrowed = flow["role_categories"].get(roles[c.person]) if c.person is not None else None
            if narrowed is not None and c.category not in narrowed:
                return False
            return not (
                c.category == "identity.address"
                and c.person in confidential
                and not flow["confidential_address_needed"]
            )

        if decision.effect is Effect.DENY:
            assert decision.released == frozenset()
            return
        # A held (review) decision is checked too: approval releases exactly this.
        redacted = redact(msg, decision)
        for adapter in default_registry().by_name.values():
            try:
                text = adapter.render(redacted).decode()
            except NotRenderable:
                continue  # this format cannot carry the message: nothing is sent
            present = {c for c in canaries if c.value in text}
            # Nothing beyond what may appear, in any format ...
            assert {c for c in present if not may_appear(c)} == set(), adapter.name
            if adapter.name == CANONICAL_JSON:
                # ... and in the full-fidelity format every person-owned value that may
                # appear does (no silent over-redaction). Agency formats carry subsets.
                expected = {c for c in canaries if may_appear(c) and c.person is not None}
                assert expected <= present
