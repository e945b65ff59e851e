"""The four children's social care JSON formats: golden files, round trips, every documented
rejection, rendering of redacted messages, no value in any error, and bounded fuzzing."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import Adapter, NotRenderable
from adapters.social_care import (
    ADAPTERS,
    LEGAL_STATUSES,
    REFERRAL_SOURCES,
    SocialCareCpPlanAdapter,
    SocialCareLookedAfterAdapter,
    SocialCareReferralAdapter,
    SocialCareReferralOutcomeAdapter,
)
from canonical import Identifier, InvalidInput, Message, Person, Violation, default_dictionary
from canonical.model import Address, Contact, Name
from canonical.validate import fast_check, schema_validator, schema_violations
from schemas import load

GOLDEN = Path(__file__).parent / "golden" / "social-care"
CANARY = "CanaryValue7Q"

REFERRAL = SocialCareReferralAdapter()
OUTCOME = SocialCareReferralOutcomeAdapter()
CP_PLAN = SocialCareCpPlanAdapter()
LOOKED_AFTER = SocialCareLookedAfterAdapter()

# golden file stem -> the adapter that reads it
CASES: dict[str, Any] = {
    "referral": REFERRAL,
    "referral-outcome": OUTCOME,
    "cp-plan-started": CP_PLAN,
    "cp-plan-ended": CP_PLAN,
    "looked-after-started": LOOKED_AFTER,
    "looked-after-ended": LOOKED_AFTER,
}


def native(stem: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / f"{stem}.json").read_text())
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def parse(adapter: Any, doc: Any) -> Message:
    message: Message = adapter.parse(encode(doc), default_dictionary())
    return message


def delivered(message: Message) -> Message:
    """What the gateway hands a renderer: its own envelope fields set, recipients cleared."""
    return message.with_envelope(
        message_id="01JDEMO0000000000000000000",
        source="csc-northshire",
        received_at="2026-11-19T10:00:01+00:00",
        recipients=(),
    )


def parse_or_problems(adapter: Any, raw: bytes) -> tuple[Message | None, list[Violation]]:
    """The message, or the declared violations; any other exception fails the test."""
    try:
        return adapter.parse(raw, default_dictionary()), []
    except InvalidInput as exc:
        return None, exc.violations


def violations(info: pytest.ExceptionInfo[InvalidInput]) -> list[tuple[str, str]]:
    return [(v.field, v.rule) for v in info.value.violations]


def everything_said(error: Exception) -> str:
    text = str(error) + repr(error.args)
    if isinstance(error, InvalidInput):
        text += json.dumps([v.as_dict() for v in error.violations]) + error.detail
    return text


class TestFormats:
    def test_each_format_has_its_name_content_type_and_schema(self) -> None:
        adapters = [make() for make in ADAPTERS]
        assert [a.name for a in adapters] == [
            "social-care-referral",
            "social-care-referral-outcome",
            "social-care-cp-plan",
            "social-care-looked-after",
        ]
        for adapter in adapters:
            assert isinstance(adapter, Adapter)
            assert adapter.content_types == (f"application/vnd.gateway.{adapter.name}+json",)
            assert adapter.media_type == adapter.content_types[0]
            schema = load(f"{adapter.name}.schema.json")
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            assert schema["additionalProperties"] is False

    def test_documented_code_lists_match_the_schemas(self) -> None:
        referral = load("social-care-referral.schema.json")
        assert referral["properties"]["referral_source"]["enum"] == list(REFERRAL_SOURCES)
        looked_after = load("social-care-looked-after.schema.json")
        codes = looked_after["properties"]["episode"]["properties"]["legal_status"]["enum"]
        assert codes == list(LEGAL_STATUSES)
        assert {"C1", "C2", "E1", "J1", "L2", "V2", "V4"} <= set(codes)

    def test_every_schema_string_is_bounded(self) -> None:
        def unbounded(node: Any, path: str) -> list[str]:
            found: list[str] = []
            if isinstance(node, dict):
                if node.get("type") == "string" and "maxLength" not in node:
                    found.append(path)
                if node.get("type") == "array" and "maxItems" not in node:
                    found.append(path)
                for key, value in node.items():
                    found += unbounded(value, f"{path}/{key}")
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    found += unbounded(value, f"{path}/{i}")
            return found

        for make in ADAPTERS:
            assert unbounded(load(f"{make().name}.schema.json"), "") == []


class TestGolden:
    @pytest.mark.parametrize("stem", sorted(CASES))
    def test_native_file_gives_the_expected_canonical_message(self, stem: str) -> None:
        expected = json.loads((GOLDEN / f"{stem}.canonical.json").read_text())
        message = CASES[stem].parse((GOLDEN / f"{stem}.json").read_bytes(), default_dictionary())
        assert message.as_dict() == expected

    @pytest.mark.parametrize("stem", sorted(CASES))
    def test_parse_never_sets_the_gateways_fields(self, stem: str) -> None:
        message = parse(CASES[stem], native(stem))
        env = message.envelope
        assert (env.message_id, env.source, env.received_at) == ("", "", "")

    def test_the_referral_purpose_comes_from_the_document(self) -> None:
        doc = native("referral")
        doc["purpose"] = "child-in-need"
        assert parse(REFERRAL, doc).envelope.purpose == "child-in-need"

    def test_a_deployment_without_the_event_type_refuses_in_canonical_terms(self) -> None:
        dictionary = replace(default_dictionary(), event_types={})
        with pytest.raises(InvalidInput) as info:
            CP_PLAN.parse(encode(native("cp-plan-started")), dictionary)
        assert violations(info) == [("canonical:/envelope/event_type", "known-event-type")]

    def test_a_partial_name_stays_partial(self) -> None:
        doc = _set(native("cp-plan-ended"), "child/family_name", ...)
        message = parse(CP_PLAN, doc)
        assert json.loads(CP_PLAN.render(message))["child"]["given_name"] == "Alex"
        assert "family_name" not in json.loads(CP_PLAN.render(message))["child"]
        assert CP_PLAN.parse(CP_PLAN.render(message), default_dictionary()) == message
        doc = _set(native("cp-plan-ended"), "child/given_name", ...)
        family_only = parse(CP_PLAN, doc)
        assert family_only.people[0].name == Name(None, "Example")
        assert CP_PLAN.parse(CP_PLAN.render(family_only), default_dictionary()) == family_only

    def test_markers_come_only_from_true_flags(self) -> None:
        doc = _set(native("cp-plan-started"), "child/confidential_address", False)
        doc = _set(doc, "child/do_not_contact_family", False)
        assert parse(CP_PLAN, doc).people[0].markers == frozenset()
        doc = _set(doc, "child/do_not_contact_family", True)
        assert parse(CP_PLAN, doc).people[0].markers == frozenset({"do-not-contact-family"})

    def test_status_selects_the_event_type(self) -> None:
        assert parse(CP_PLAN, native("cp-plan-started")).envelope.event_type == "social-care.cp-plan-started"
        assert parse(CP_PLAN, native("cp-plan-ended")).envelope.event_type == "social-care.cp-plan-ended"
        ended = parse(LOOKED_AFTER, native("looked-after-ended"))
        assert ended.envelope.event_type == "social-care.looked-after-ended"

    def test_the_referrer_is_the_outcomes_named_recipient(self) -> None:
        message = parse(OUTCOME, native("referral-outcome"))
        assert message.envelope.recipients == ("school-riverside-primary",)
        (item,) = message.items
        assert (item.category, item.data["outcome"]) == ("event.outcome", "early-help")


class TestRoundTrip:
    @pytest.mark.parametrize("stem", sorted(CASES))
    def test_parse_render_parse_gives_the_same_message(self, stem: str) -> None:
        adapter = CASES[stem]
        message = parse(adapter, native(stem))
        rendered = adapter.render(delivered(message))
        assert adapter.parse(rendered, default_dictionary()) == message

    @pytest.mark.parametrize("stem", sorted(CASES))
    def test_render_carries_the_gateways_envelope_fields(self, stem: str) -> None:
        adapter = CASES[stem]
        out = json.loads(adapter.render(delivered(parse(adapter, native(stem)))))
        assert out["gateway"] == {
            "message_id": "01JDEMO0000000000000000000",
            "source": "csc-northshire",
            "received_at": "2026-11-19T10:00:01+00:00",
        }

    @pytest.mark.parametrize(
        ("stem", "keep"),
        [
            ("referral-outcome", {"reference", "decided_at", "outcome", "child"}),
            ("referral", {"reference", "referred_at", "purpose", "child", "referral_source"}),
            ("referral", {"reference", "referred_at", "purpose", "child"}),
        ],
    )
    def test_a_minimal_document_round_trips(self, stem: str, keep: set[str]) -> None:
        adapter = CASES[stem]
        doc = {k: v for k, v in native(stem).items() if k in keep}
        doc["child"] = {"birth_date": "2017-08-08"}
        message = parse(adapter, doc)
        assert json.loads(adapter.render(message)) == doc
        assert adapter.parse(adapter.render(message), default_dictionary()) == message

    def test_spaced_nhs_number_is_stored_compact_and_rendered_compact(self) -> None:
        message = parse(REFERRAL, native("referral"))
        assert message.people[0].identifiers[0] == Identifier("nhs-number", "9990100012")
        assert json.loads(REFERRAL.render(message))["child"]["nhs_number"] == "9990100012"


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with the value at a /-separated path replaced (``...`` deletes)."""
    out = copy.deepcopy(doc)
    *parents, last = path.strip("/").split("/")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


REJECTIONS = [
    # (golden stem, path, new value or ... to delete, expected field, expected rule)
    ("referral", "reference", ..., "/", "required"),
    ("referral", "child", ..., "/", "required"),
    ("referral", "colour", "blue", "/", "additionalProperties"),
    ("referral", "referred_at", "2026-11-18T15:05:00", "/referred_at", "format"),
    ("referral", "referred_at", "18/11/2026 15:05", "/referred_at", "pattern"),
    ("referral", "purpose", "early-help", "/purpose", "enum"),
    ("referral", "referral_source", "11", "/referral_source", "enum"),
    ("referral", "narrative", "x" * 20001, "/narrative", "maxLength"),
    ("referral", "household", [{"role": "parent"}] * 21, "/household", "maxItems"),
    ("referral", "household/0/role", "child", "/household/0/role", "enum"),
    ("referral", "child/nhs_number", "9990100013", "/child/nhs_number", "nhs-number-check-digit"),
    ("referral", "child/upn", "A801300001001", "/child/upn", "upn-check-letter"),
    ("referral", "household/1/nhs_number", "123", "/household/1/nhs_number", "nhs-number-check-digit"),
    ("referral", "child/birth_date", "2017-02-30", "/child/birth_date", "format"),
    ("referral", "child/sex", "f", "/child/sex", "enum"),
    ("referral", "child/la_child_id", " ", "/child/la_child_id", "pattern"),
    ("referral", "child/gateway", {}, "/child", "additionalProperties"),
    ("referral-outcome", "outcome", "closed", "/outcome", "enum"),
    ("referral-outcome", "decided_at", ..., "/", "required"),
    ("referral-outcome", "referrer/partner_id", "Riverside School", "/referrer/partner_id", "pattern"),
    ("referral-outcome", "named_worker/name", ..., "/named_worker", "required"),
    ("referral-outcome", "child/addresses", [], "/child", "additionalProperties"),
    ("referral-outcome", "child/sex", "male", "/child", "additionalProperties"),
    ("cp-plan-started", "status", "paused", "/status", "enum"),
    ("cp-plan-started", "plan/category_of_abuse", "domestic", "/plan/category_of_abuse", "enum"),
    ("cp-plan-started", "plan/end_date", "2026-12-01", "/plan/end_date", "no-end-date-when-started"),
    ("cp-plan-started", "responsible_authority", ..., "/", "required"),
    ("cp-plan-started", "responsible_authority/la_code", "99", "/responsible_authority/la_code", "pattern"),
    ("cp-plan-started", "child/nhs_number", "9990100038", "/child/nhs_number", "nhs-number-check-digit"),
    ("cp-plan-ended", "plan/end_date", ..., "/plan/end_date", "end-date-required"),
    ("cp-plan-ended", "plan/end_date", "2026-03-01", "/plan/end_date", "end-not-before-start"),
    ("cp-plan-ended", "plan/start_date", ..., "/plan", "required"),
    ("looked-after-started", "episode/legal_status", "Z9", "/episode/legal_status", "enum"),
    (
        "looked-after-started",
        "episode/end_date",
        "2026-12-01",
        "/episode/end_date",
        "no-end-date-when-started",
    ),
    ("looked-after-started", "child/upn", "C801300001003", "/child/upn", "upn-check-letter"),
    ("looked-after-ended", "episode/end_date", ..., "/episode/end_date", "end-date-required"),
    ("looked-after-ended", "episode/end_date", "2024-05-19", "/episode/end_date", "end-not-before-start"),
]


class TestRejections:
    @pytest.mark.parametrize(("stem", "path", "value", "field", "rule"), REJECTIONS)
    def test_each_documented_rejection_names_the_native_field_and_rule(
        self, stem: str, path: str, value: Any, field: str, rule: str
    ) -> None:
        adapter = CASES[stem]
        with pytest.raises(InvalidInput) as info:
            parse(adapter, _set(native(stem), path, value))
        assert (field, rule) in violations(info)
        assert info.value.adapter == adapter.name

    @pytest.mark.parametrize(
        ("raw", "rule"),
        [
            (b"{not json", "json-syntax"),
            (b"\xff\xfe{}", "utf-8"),
            (b"[" * 40 + b"]" * 40, "max-depth"),
            (b"[]", "type"),
        ],
    )
    @pytest.mark.parametrize("adapter", [make() for make in ADAPTERS], ids=lambda a: a.name)
    def test_bytes_that_are_not_a_document(self, adapter: Any, raw: bytes, rule: str) -> None:
        with pytest.raises(InvalidInput) as info:
            adapter.parse(raw, default_dictionary())
        assert rule in [r for _, r in violations(info)]

    def test_every_identifier_problem_is_reported_at_once(self) -> None:
        doc = _set(native("referral"), "child/nhs_number", "9990100013")
        doc = _set(doc, "household/0/upn", "A801300001001")
        with pytest.raises(InvalidInput) as info:
            parse(REFERRAL, doc)
        assert violations(info) == [
            ("/child/nhs_number", "nhs-number-check-digit"),
            ("/household/0/upn", "upn-check-letter"),
        ]

    def test_a_gateway_block_sent_by_a_partner_is_ignored(self) -> None:
        doc = native("cp-plan-started")
        doc["gateway"] = {"message_id": "forged", "source": "someone-else", "received_at": "yesterday"}
        assert parse(CP_PLAN, doc) == parse(CP_PLAN, native("cp-plan-started"))


CANARY_FIELDS = [
    ("referral", "child/nhs_number", f"{CANARY}1"),
    ("referral", "child/upn", CANARY),
    ("referral", "child/birth_date", CANARY),
    ("referral", "child/sex", CANARY),
    ("referral", "purpose", CANARY),
    ("referral", "referred_at", f"2026-11-18T{CANARY}"),
    ("referral", "referral_source", CANARY),
    ("referral", "household/0/role", CANARY),
    ("referral", "concern_summary", CANARY * 200),
    ("referral-outcome", "outcome", CANARY),
    ("referral-outcome", "referrer/partner_id", CANARY),
    ("cp-plan-started", "plan/category_of_abuse", CANARY),
    ("cp-plan-started", "responsible_authority/la_code", CANARY),
    ("cp-plan-started", "child/addresses", [{"lines": [CANARY * 20]}]),
    ("looked-after-started", "episode/legal_status", CANARY),
    ("looked-after-ended", "episode/end_date", "2024-01-01"),  # before start: a semantic rule
]


class TestNoValueInErrors:
    @pytest.mark.parametrize(("stem", "path", "value"), CANARY_FIELDS)
    def test_no_error_quotes_the_value(self, stem: str, path: str, value: Any) -> None:
        with pytest.raises(InvalidInput) as info:
            parse(CASES[stem], _set(native(stem), path, value))
        text = everything_said(info.value)
        assert CANARY not in text
        assert "2024-01-01" not in text

    def test_a_failed_check_digit_is_not_quoted(self) -> None:
        with pytest.raises(InvalidInput) as info:
            parse(CP_PLAN, _set(native("cp-plan-started"), "child/nhs_number", "9990100038"))
        assert "9990100038" not in everything_said(info.value)

    def test_syntax_errors_give_a_position_only(self) -> None:
        with pytest.raises(InvalidInput) as info:
            REFERRAL.parse(b'{"reference": ' + CANARY.encode(), default_dictionary())
        assert CANARY not in everything_said(info.value)


class TestRenderRedacted:
    """Redaction runs before rendering: any category may be gone, the render copes and
    writes nothing it was not given."""

    def test_without_addresses_and_contacts_none_are_written(self) -> None:
        message = parse(REFERRAL, native("referral"))
        bare = replace(message, people=tuple(replace(p, addresses=(), contacts=()) for p in message.people))
        out = json.loads(REFERRAL.render(bare))
        assert "addresses" not in out["child"]
        assert all("contacts" not in member for member in out["household"])
        assert REFERRAL.parse(REFERRAL.render(bare), default_dictionary()) == bare

    def test_a_child_reduced_to_ref_and_role_renders_as_an_empty_child(self) -> None:
        message = parse(CP_PLAN, native("cp-plan-started"))
        stripped = replace(message, people=(Person(ref="child-1", role="child"),))
        out = json.loads(CP_PLAN.render(stripped))
        assert out["child"] == {}
        assert CP_PLAN.parse(CP_PLAN.render(stripped), default_dictionary()) == stripped

    def test_without_summary_and_narrative_only_the_referral_facts_remain(self) -> None:
        message = parse(REFERRAL, native("referral"))
        out = json.loads(REFERRAL.render(replace(message, items=())))
        assert not {"concern_summary", "narrative", "referral_source", "referrer_organisation"} & set(out)
        assert out["reference"] == "NSC-DEMO-REF-0042"

    def test_household_members_the_recipient_may_not_see_are_absent(self) -> None:
        message = parse(REFERRAL, native("referral"))
        only_child = replace(message, people=message.people[:1])
        assert "household" not in json.loads(REFERRAL.render(only_child))

    def test_the_outcome_never_carries_more_than_minimal_identity(self) -> None:
        message = parse(OUTCOME, native("referral-outcome"))
        child = replace(
            message.people[0],
            sex="female",
            addresses=(Address(("1 Example Street",), "ZZ99 1ZZ"),),
            contacts=(Contact("phone", "07700 900123"),),
            markers=frozenset({"confidential-address"}),
        )
        out = json.loads(OUTCOME.render(replace(message, people=(child,))))
        assert set(out["child"]) == {"nhs_number", "given_name", "family_name", "birth_date"}

    def test_the_referrer_survives_redaction_of_the_envelope_recipients(self) -> None:
        message = parse(OUTCOME, native("referral-outcome"))
        out = json.loads(OUTCOME.render(delivered(message)))
        assert out["referrer"]["partner_id"] == "school-riverside-primary"
        assert "recipients" not in out

    def test_identifiers_of_other_systems_and_other_roles_are_not_carried(self) -> None:
        message = parse(REFERRAL, native("referral"))
        child = replace(message.people[0], identifiers=(Identifier("police-reference", "NP-DEMO-1"),))
        officer = Person(ref="pro-1", role="professional", name=Name("Demo", "Officer"))
        out = json.loads(REFERRAL.render(replace(message, people=(child, officer))))
        assert out["child"] == {
            k: v
            for k, v in native("referral")["child"].items()
            if k not in {"nhs_number", "upn", "la_child_id"}
        }
        assert "household" not in out

    @pytest.mark.parametrize(
        ("stem", "category"),
        [
            ("cp-plan-started", "social-care.status"),
            ("looked-after-ended", "social-care.status"),
            ("referral-outcome", "event.outcome"),
        ],
    )
    def test_without_its_defining_item_a_notice_is_not_renderable(self, stem: str, category: str) -> None:
        adapter = CASES[stem]
        message = parse(adapter, native(stem))
        gone = replace(message, items=tuple(i for i in message.items if i.category != category))
        with pytest.raises(NotRenderable) as info:
            adapter.render(gone)
        assert message.envelope.event_type in info.value.detail
        assert "Testcase" not in everything_said(info.value)

    @pytest.mark.parametrize("stem", sorted(CASES))
    def test_without_a_child_nothing_is_rendered(self, stem: str) -> None:
        adapter = CASES[stem]
        message = parse(adapter, native(stem))
        with pytest.raises(NotRenderable):
            adapter.render(replace(message, people=()))

    def test_another_event_type_is_not_renderable(self) -> None:
        message = parse(CP_PLAN, native("cp-plan-started"))
        with pytest.raises(NotRenderable, match="social-care-looked-after"):
            LOOKED_AFTER.render(message)

    def test_a_purpose_the_format_cannot_carry_is_not_renderable(self) -> None:
        message = parse(REFERRAL, native("referral")).with_envelope(purpose="early-help")
        with pytest.raises(NotRenderable):
            REFERRAL.render(message)

    def test_an_inconsistent_plan_from_elsewhere_is_not_rendered(self) -> None:
        message = parse(CP_PLAN, native("cp-plan-started"))
        # A cp-plan-ended message whose plan has no end date: the format would refuse it.
        ended = message.with_envelope(event_type="social-care.cp-plan-ended")
        with pytest.raises(NotRenderable):
            CP_PLAN.render(ended)


# --- fuzzing --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
plausible = st.sampled_from(
    [
        "9990000018",
        "999 000 0026",
        "9990000019",
        "N801300001001",
        "2020-01-01",
        "2026-11-20",
        "2026-11-20T10:00:00+00:00",
        "neglect",
        "started",
        "ended",
        "C2",
        "999",
        "parent",
        "early-help",
        "safeguarding",
        True,
        "",
        "x" * 300,
    ]
)
# Half the mutations are plausible values, so the round-trip branch is exercised too.
mutation_values = st.one_of(plausible, plausible, json_values, st.just(...))
PATHS = {
    "referral": ["reference", "referred_at", "purpose", "narrative", "child", "child/nhs_number", "child/upn",
                 "child/birth_date", "household", "household/0/role", "household/1/sex", "extra"],
    "referral-outcome": ["outcome", "decided_at", "referrer", "referrer/partner_id", "named_worker",
                         "child", "child/birth_date", "message_to_referrer", "extra"],
    "cp-plan-ended": ["status", "occurred_at", "plan", "plan/start_date", "plan/end_date",
                      "plan/category_of_abuse", "responsible_authority/la_code", "child/nhs_number", "extra"],
    "looked-after-started": ["status", "episode", "episode/legal_status", "episode/end_date",
                             "episode/start_date", "child", "child/upn", "extra"],
}  # fmt: skip


class TestFuzz:
    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from([make() for make in ADAPTERS]), st.binary(max_size=300))
    def test_any_bytes_give_a_message_or_a_declared_error(self, adapter: Any, raw: bytes) -> None:
        result, problems = parse_or_problems(adapter, raw)
        assert (result is None) == bool(problems)

    @settings(max_examples=200, deadline=None)
    @given(
        st.sampled_from(sorted(PATHS)),
        st.lists(st.tuples(st.integers(0, 20), mutation_values), min_size=1, max_size=3),
    )
    def test_mutated_documents_give_a_message_that_round_trips_or_a_declared_error(
        self, stem: str, mutations: list[tuple[int, Any]]
    ) -> None:
        adapter = CASES[stem]
        doc = native(stem)
        for index, value in mutations:
            path = PATHS[stem][index % len(PATHS[stem])]
            try:
                doc = _set(doc, path, value)
            except (KeyError, IndexError, TypeError, ValueError):
                continue  # the path no longer exists in the mutated document
        # The compiled fast check and jsonschema agree on the format's schema.
        schema = f"{adapter.name}.schema.json"
        assert fast_check(schema)(doc) == (not schema_violations(schema_validator(schema), doc))
        message, problems = parse_or_problems(adapter, encode(doc))
        assert all(v.rule and v.field for v in problems)
        if message is None:
            assert problems
        else:
            assert adapter.parse(adapter.render(delivered(message)), default_dictionary()) == message
