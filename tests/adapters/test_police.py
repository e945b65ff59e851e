"""Police formats (Operation Encompass, PPN, MARAC): golden files, round trips, every
documented rejection (naming the pointer and the rule, never the value), rendering of
redacted messages, per-force field mapping, and bounded fuzzing of each parser."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import AdapterOptionsError, ConfigurableAdapter, NotRenderable
from adapters.police import EncompassAdapter, MaracAdapter, PpnAdapter
from adapters.police.base import PoliceJsonAdapter
from adapters.registry import AdapterRegistry
from bench.adapter_cases.police import CASES as BENCH_CASES
from canonical import InvalidInput, Item, Message, default_dictionary
from canonical.validate import schema_validator

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "police"
EXAMPLES = ROOT / "deploy" / "example" / "messages"
SOUTHMOOR_MAPPING = ROOT / "deploy" / "example" / "mappings" / "fictional-force-ppn.yaml"
DICTIONARY = default_dictionary()

FORMATS: dict[str, PoliceJsonAdapter] = {
    "encompass": EncompassAdapter(),
    "ppn": PpnAdapter(),
    "marac": MaracAdapter(),
}
BY_FORMAT = {adapter.name: adapter for adapter in FORMATS.values()}


def native(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / f"{name}.native.json").read_text())
    return doc


def expected(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / f"{name}.canonical.json").read_text())
    return doc


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def southmoor() -> PoliceJsonAdapter:
    return PpnAdapter().configure({"field_mapping": yaml.safe_load(SOUTHMOOR_MAPPING.read_text())})


def refusal(adapter: PoliceJsonAdapter, body: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        adapter.parse(body, DICTIONARY)
    assert info.value.adapter == adapter.name
    return info.value


def without_category(message: Message, category: str) -> Message:
    """What redaction leaves when ``category`` is withheld (people keep identity.core)."""
    if category == "identity.address":
        return replace(message, people=tuple(replace(p, addresses=()) for p in message.people))
    if category == "identity.contact":
        return replace(message, people=tuple(replace(p, contacts=()) for p in message.people))
    return replace(message, items=tuple(i for i in message.items if i.category != category))


def _witnesses(message: Message, category: str) -> set[str]:
    """Distinctive strings (8+ characters) that only the withheld category holds (the
    incident time is also the envelope's occurred_at, which every recipient gets)."""
    if category == "identity.address":
        found = {x for p in message.people for a in p.addresses for x in (*a.lines, a.postcode or "")}
    elif category == "identity.contact":
        found = {c.value for p in message.people for c in p.contacts}
    else:
        found = {
            x
            for i in message.items
            if i.category == category
            for v in i.data.values()
            for x in (v if isinstance(v, list) else [v])
            if isinstance(x, str)
        }
    return {w for w in found if len(w) >= 8} - {message.envelope.occurred_at}


def _leaves(node: Any, path: str = "") -> set[tuple[str, str]]:
    if isinstance(node, dict):
        return {leaf for k, v in node.items() for leaf in _leaves(v, f"{path}/{k}")}
    if isinstance(node, list):
        return {leaf for i, v in enumerate(node) for leaf in _leaves(v, f"{path}/{i}")}
    return {(path, json.dumps(node))}


class TestGoldenFiles:
    @pytest.mark.parametrize("name", list(FORMATS))
    def test_native_parses_to_the_expected_canonical_message(self, name: str) -> None:
        message = FORMATS[name].parse(raw(native(name)), DICTIONARY)
        assert message.as_dict() == expected(name)

    def test_encompass_names_the_school_as_recipient_and_uses_the_encompass_purpose(self) -> None:
        env = FORMATS["encompass"].parse(raw(native("encompass")), DICTIONARY).envelope
        assert env.recipients == ("school-riverside-primary",)
        assert (env.event_type, env.purpose) == ("police.domestic-abuse-incident", "operation-encompass")

    def test_a_refuge_or_confidential_address_marks_the_person(self) -> None:
        people = {p.ref: p for p in FORMATS["ppn"].parse(raw(native("ppn")), DICTIONARY).people}
        assert people["child-1"].has_confidential_address  # use: refuge
        assert people["child-2"].has_confidential_address  # confidential_address: true
        assert people["adult-1"].has_confidential_address  # address confidential: true
        assert not people["adult-2"].has_confidential_address
        assert people["child-1"].addresses[0].use == "temporary"

    def test_marac_safe_contacts_are_the_victims_contacts(self) -> None:
        message = FORMATS["marac"].parse(raw(native("marac")), DICTIONARY)
        victim = next(p for p in message.people if p.role == "victim")
        assert [c.value for c in victim.contacts] == ["07700 900009"]
        assert "identity.contact" in victim.categories()

    @pytest.mark.parametrize(
        ("grade", "explicit", "flagged", "stored"),
        [
            ("high", None, True, "high"),
            ("red", None, True, "high"),
            ("amber", None, False, "medium"),
            ("medium", True, True, "medium"),
            ("green", False, False, "standard"),
        ],
    )
    def test_grade_sets_risk_of_significant_harm_only_when_high_or_explicit(
        self, grade: str, explicit: bool | None, flagged: bool, stored: str
    ) -> None:
        doc = native("ppn")
        doc["risk_assessment"]["grade"] = grade
        if explicit is not None:
            doc["risk_of_significant_harm"] = explicit
        message = FORMATS["ppn"].parse(raw(doc), DICTIONARY)
        assert message.envelope.flags.risk_of_significant_harm is flagged
        risk = next(i for i in message.items if i.category == "police.risk-assessment")
        assert risk.data["grading"] == stored

    def test_a_grade_inconsistent_with_the_dash_score_is_kept_as_sent(self) -> None:
        doc = native("ppn")
        doc["risk_assessment"] = {
            "grade": "standard",
            "dash": {"answers": ["yes"] * 20 + ["no"] * 4, "score": 20},
        }
        risk = next(
            i
            for i in FORMATS["ppn"].parse(raw(doc), DICTIONARY).items
            if i.category == "police.risk-assessment"
        )
        assert (risk.data["grading"], risk.data["dash_score"]) == ("standard", 20)

    def test_a_dash_score_is_computed_from_the_answers_when_not_sent(self) -> None:
        doc = native("ppn")
        doc["risk_assessment"]["dash"] = {"answers": ["yes"] * 3 + ["not-known"] * 21}
        risk = next(
            i
            for i in FORMATS["ppn"].parse(raw(doc), DICTIONARY).items
            if i.category == "police.risk-assessment"
        )
        assert risk.data["dash_score"] == 3


class TestRoundTrip:
    @pytest.mark.parametrize("name", list(FORMATS))
    def test_parse_render_parse_gives_the_same_message(self, name: str) -> None:
        adapter = FORMATS[name]
        message = adapter.parse(raw(native(name)), DICTIONARY)
        # Named recipients are never rendered (a recipient must not learn whom else was named).
        assert adapter.parse(adapter.render(message), DICTIONARY) == message.with_envelope(recipients=())

    @pytest.mark.parametrize("name", list(FORMATS))
    def test_the_gateways_fields_are_rendered_and_ignored_on_input(self, name: str) -> None:
        adapter = FORMATS[name]
        parsed = adapter.parse(raw(native(name)), DICTIONARY).with_envelope(recipients=())
        stamped = parsed.with_envelope(
            message_id="01JDEMO0000000000000000000",
            source="police-northshire",
            received_at="2026-11-21T21:45:00+00:00",
        )
        rendered = json.loads(adapter.render(stamped))
        assert rendered["gateway"] == {
            "message_id": "01JDEMO0000000000000000000",
            "source": "police-northshire",
            "received_at": "2026-11-21T21:45:00+00:00",
        }
        assert "school" not in rendered
        assert adapter.parse(adapter.render(stamped), DICTIONARY) == parsed

    @pytest.mark.parametrize("name", list(FORMATS))
    def test_rendered_documents_satisfy_our_schema(self, name: str) -> None:
        adapter = FORMATS[name]
        rendered = json.loads(adapter.render(adapter.parse(raw(native(name)), DICTIONARY)))
        assert list(schema_validator(adapter.schema).iter_errors(rendered)) == []


class TestRender:
    CATEGORIES = (
        "identity.address",
        "identity.contact",
        "event.summary",
        "event.narrative",
        "police.risk-assessment",
        "police.offender-history",
    )

    @pytest.mark.parametrize("name", list(FORMATS))
    @pytest.mark.parametrize("category", CATEGORIES)
    def test_a_withheld_category_is_omitted_and_nothing_is_invented(self, name: str, category: str) -> None:
        adapter = FORMATS[name]
        full = adapter.parse(raw(native(name)), DICTIONARY)
        redacted = without_category(full, category)
        text = adapter.render(redacted)
        for witness in _witnesses(full, category):
            assert witness not in text.decode()
        # Nothing invented: every value rendered for the redacted message is in the full rendering.
        assert _leaves(json.loads(text)) <= _leaves(json.loads(adapter.render(full)))
        try:
            again: Message | InvalidInput = adapter.parse(text, DICTIONARY)
        except InvalidInput as exc:
            again = exc
        if isinstance(again, InvalidInput):
            # Only a section the schema requires of a sender (e.g. the PPN grade) may be missing.
            assert {v.rule for v in again.violations} == {"required"}
        else:
            assert again == redacted.with_envelope(recipients=())

    @pytest.mark.parametrize("name", ["ppn", "marac"])
    def test_offending_history_without_text_is_not_rendered(self, name: str) -> None:
        message = FORMATS[name].parse(raw(native(name)), DICTIONARY)
        items = tuple(
            replace(i, data={"text": 42}) if i.category == "police.offender-history" else i
            for i in message.items
        )
        assert "offender_history" not in json.loads(FORMATS[name].render(replace(message, items=items)))

    @pytest.mark.parametrize("name", list(FORMATS))
    def test_an_empty_message_renders_the_envelope_only(self, name: str) -> None:
        adapter = FORMATS[name]
        message = adapter.parse(raw(native(name)), DICTIONARY)
        rendered = json.loads(adapter.render(replace(message, people=(), items=())))
        assert set(rendered) <= {
            "police_reference", "ppn_reference", "marac_reference", "incident", "incident_date_time",
            "referred_at", "people", "risk_of_significant_harm", "do_not_inform_family",
        }  # fmt: skip

    @pytest.mark.parametrize(
        ("adapter", "example"),
        [
            (EncompassAdapter(), "domestic-abuse-incident.json"),
            (PpnAdapter(), "ppn-high-risk.json"),
            (MaracAdapter(), "marac-referral.json"),
        ],
    )
    def test_the_example_canonical_messages_render_to_documents_we_accept(
        self, adapter: PoliceJsonAdapter, example: str
    ) -> None:
        message = Message.from_dict(json.loads((EXAMPLES / example).read_text()))
        reparsed = adapter.parse(adapter.render(message), DICTIONARY)
        assert reparsed.envelope.sender_reference == message.envelope.sender_reference
        assert {p.ref for p in reparsed.people} <= {p.ref for p in message.people} | {
            "child",
            "officer",
            "referrer",
        }

    def test_encompass_never_carries_the_victims_address_or_the_risk_assessment(self) -> None:
        message = Message.from_dict(json.loads((EXAMPLES / "domestic-abuse-incident.json").read_text()))
        text = EncompassAdapter().render(message).decode()
        assert "Refuge" not in text
        assert "ZZ99" not in text
        assert "Jordan" not in text  # the victim
        assert "Casey" not in text  # the alleged perpetrator
        assert "grading" not in text
        assert "score" not in text

    @pytest.mark.parametrize("name", list(FORMATS))
    def test_another_event_type_is_not_renderable(self, name: str) -> None:
        message = (
            FORMATS[name]
            .parse(raw(native(name)), DICTIONARY)
            .with_envelope(event_type="health.ed-attendance")
        )
        with pytest.raises(NotRenderable) as info:
            FORMATS[name].render(message)
        assert "health.ed-attendance" in info.value.detail

    def test_encompass_refuses_two_children(self) -> None:
        message = FORMATS["encompass"].parse(raw(native("encompass")), DICTIONARY)
        two = replace(message, people=(*message.people, replace(message.people[0], ref="child-2")))
        with pytest.raises(NotRenderable):
            FORMATS["encompass"].render(two)

    def test_marac_refuses_two_victims(self) -> None:
        message = FORMATS["marac"].parse(raw(native("marac")), DICTIONARY)
        two = replace(message, people=(*message.people, replace(message.people[0], ref="victim-2")))
        with pytest.raises(NotRenderable):
            FORMATS["marac"].render(two)

    @pytest.mark.parametrize("name", list(FORMATS))
    def test_a_second_item_of_a_single_place_category_is_refused_not_merged(self, name: str) -> None:
        message = FORMATS[name].parse(raw(native(name)), DICTIONARY)
        extra = Item("event.narrative", "officer-narrative", {"text": "second"})
        with pytest.raises(NotRenderable) as info:
            FORMATS[name].render(replace(message, items=(*message.items, extra)))
        assert "second" not in info.value.detail


def _set(doc: dict[str, Any], pointer: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = pointer.strip("/").split("/")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


def _drop(doc: dict[str, Any], pointer: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = pointer.strip("/").split("/")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return doc


CANARY = "CANARY-7f3a"
BAD_NHS = "9990000019"  # test range, wrong check digit
BAD_UPN = "A801200005001"  # wrong check letter (B is right)
Mutation = Callable[[dict[str, Any]], dict[str, Any]]

REJECTIONS: list[tuple[str, Mutation, str, str]] = [
    # (format, mutation of the golden native document, pointer, rule)
    ("ppn", lambda d: _drop(d, "/ppn_reference"), "/", "required"),
    ("ppn", lambda d: _set(d, "/risk_assessment/grade", "purple"), "/risk_assessment/grade", "enum"),
    ("ppn", lambda d: _drop(d, "/risk_assessment/grade"), "/risk_assessment", "required"),
    (
        "ppn",
        lambda d: _set(d, "/risk_assessment/dash/answers", ["yes"] * 23),
        "/risk_assessment/dash/answers",
        "minItems",
    ),
    (
        "ppn",
        lambda d: _set(d, "/risk_assessment/dash/answers", ["no"] * 25),
        "/risk_assessment/dash/answers",
        "maxItems",
    ),
    (
        "ppn",
        lambda d: _set(d, "/risk_assessment/dash/answers/3", "perhaps"),
        "/risk_assessment/dash/answers/3",
        "enum",
    ),
    (
        "ppn",
        lambda d: _set(d, "/risk_assessment/dash/score", 14),
        "/risk_assessment/dash/score",
        "dash-score",
    ),
    ("ppn", lambda d: _set(d, "/risk_assessment/dash/score", 25), "/risk_assessment/dash/score", "maximum"),
    (
        "ppn",
        lambda d: _set(d, "/people/0/nhs_number", BAD_NHS),
        "/people/0/nhs_number",
        "nhs-number-check-digit",
    ),
    ("ppn", lambda d: _set(d, "/people/1/upn", BAD_UPN), "/people/1/upn", "upn-check-letter"),
    ("ppn", lambda d: _set(d, "/narrative", "x" * 20001), "/narrative", "maxLength"),
    ("ppn", lambda d: _set(d, "/people/0/family_name", "x" * 201), "/people/0/family_name", "maxLength"),
    ("ppn", lambda d: _set(d, "/people", d["people"] * 6), "/people", "maxItems"),
    ("ppn", lambda d: _set(d, "/people/0/role", "neighbour"), "/people/0/role", "enum"),
    ("ppn", lambda d: _set(d, "/people/0/id", "Child One"), "/people/0/id", "pattern"),
    ("ppn", lambda d: _set(d, "/people/1/id", "child-1"), "/people/1/id", "unique-id"),
    ("ppn", lambda d: _set(d, "/people/0/id", "officer"), "/officer", "unique-id"),
    ("ppn", lambda d: _set(d, "/people", d["people"][2:]), "/people", "has-child"),
    (
        "ppn",
        lambda d: _set(d, "/offender_history/0/person", "nobody"),
        "/offender_history/0/person",
        "known-person-id",
    ),
    ("ppn", lambda d: _set(d, "/incident_date_time", "2026-11-20T18:00:00"), "/incident_date_time", "format"),
    ("ppn", lambda d: _set(d, "/people/0/date_of_birth", "2019-02-30"), "/people/0/date_of_birth", "format"),
    ("ppn", lambda d: _set(d, "/people/0/addresses/0/use", "squat"), "/people/0/addresses/0/use", "enum"),
    ("ppn", lambda d: _set(d, "/unexpected", 1), "/", "additionalProperties"),
    ("ppn", lambda d: _set(d, "/people/0/favourite", 1), "/people/0", "additionalProperties"),
    (
        "encompass",
        lambda d: _set(d, "/child/nhs_number", BAD_NHS),
        "/child/nhs_number",
        "nhs-number-check-digit",
    ),
    ("encompass", lambda d: _drop(d, "/child/date_of_birth"), "/child", "required"),
    ("encompass", lambda d: _drop(d, "/incident/child_present"), "/incident", "required"),
    ("encompass", lambda d: _set(d, "/school", "Riverside Primary"), "/school", "pattern"),
    ("encompass", lambda d: _set(d, "/incident/location_type", "moon"), "/incident/location_type", "enum"),
    (
        "encompass",
        lambda d: _set(d, "/incident/childs_voice", "x" * 4001),
        "/incident/childs_voice",
        "maxLength",
    ),
    ("encompass", lambda d: _set(d, "/child/addresses", []), "/child", "additionalProperties"),
    ("marac", lambda d: _set(d, "/children/0/id", "victim-1"), "/children/0/id", "unique-id"),
    (
        "marac",
        lambda d: _set(d, "/victim/nhs_number", BAD_NHS),
        "/victim/nhs_number",
        "nhs-number-check-digit",
    ),
    ("marac", lambda d: _set(d, "/victim/contacts", []), "/victim", "additionalProperties"),
    ("marac", lambda d: _set(d, "/risk_assessment/dash", {}), "/risk_assessment/dash", "anyOf"),
    (
        "marac",
        lambda d: _set(d, "/risk_assessment/referral_criteria", ["hunch"]),
        "/risk_assessment/referral_criteria/0",
        "enum",
    ),
    (
        "marac",
        lambda d: _set(d, "/offender_history/0/person", "referrer"),
        "/offender_history/0/person",
        "known-person-id",
    ),
    ("marac", lambda d: _drop(d, "/victim"), "/", "required"),
]


class TestRejections:
    @pytest.mark.parametrize(
        ("name", "mutate", "pointer", "rule"),
        REJECTIONS,
        ids=[f"{n}:{p}:{r}" for n, _, p, r in REJECTIONS],
    )
    def test_each_documented_rejection_names_the_pointer_and_rule(
        self, name: str, mutate: Mutation, pointer: str, rule: str
    ) -> None:
        error = refusal(FORMATS[name], raw(mutate(native(name))))
        assert (pointer, rule) in {(v.field, v.rule) for v in error.violations}

    @pytest.mark.parametrize("name", list(FORMATS))
    @pytest.mark.parametrize(
        ("body", "rule"),
        [
            (b"\xff\xfe{\x00}", "utf-8"),
            ("{}".encode("utf-16"), "utf-8"),
            (b'{"ppn_reference": "x",', "json-syntax"),
            (b"[" * 40 + b"]" * 40, "max-depth"),
            (b"[]", "type"),
            (b"null", "type"),
        ],
    )
    def test_bad_bytes_are_refused_with_a_declared_rule(self, name: str, body: bytes, rule: str) -> None:
        assert refusal(FORMATS[name], body).violations[0].rule == rule


NO_VALUE_CASES: list[tuple[str, Mutation]] = [
    ("ppn", lambda d: _set(d, "/people/0/nhs_number", f"{CANARY}99")),
    ("ppn", lambda d: _set(d, "/people/1/upn", f"{CANARY}1234")),
    ("ppn", lambda d: _set(d, "/people/0/family_name", CANARY * 40)),
    ("ppn", lambda d: _set(d, "/risk_assessment/grade", CANARY)),
    ("ppn", lambda d: _set(d, "/people/0/id", CANARY)),
    ("ppn", lambda d: _set(d, "/people/0/date_of_birth", CANARY)),
    ("ppn", lambda d: _set(d, "/incident_date_time", CANARY)),
    ("ppn", lambda d: _set(d, "/offender_history/0/person", CANARY.lower())),
    ("ppn", lambda d: _set(d, "/people/0/addresses/0/postcode", CANARY * 2)),
    ("ppn", lambda d: _set(d, "/risk_assessment/dash/answers/0", CANARY)),
    ("encompass", lambda d: _set(d, "/child/upn", CANARY)),
    ("encompass", lambda d: _set(d, "/school", CANARY)),
    ("encompass", lambda d: _set(d, "/incident/child_present", CANARY)),
    ("marac", lambda d: _set(d, "/victim/safe_contacts/0/type", CANARY)),
    ("marac", lambda d: _set(d, "/children/0/id", "victim-1") | {"summary": CANARY}),
]


class TestNoValueInErrors:
    """Canary strings in the values that break rules must never appear in what we raise."""

    @pytest.mark.parametrize(("name", "mutate"), NO_VALUE_CASES)
    def test_no_error_quotes_a_value(self, name: str, mutate: Mutation) -> None:
        error = refusal(FORMATS[name], raw(mutate(native(name))))
        assert error.violations
        seen = str(error) + repr(error) + error.detail + json.dumps([v.as_dict() for v in error.violations])
        assert CANARY not in seen
        assert CANARY.lower() not in seen

    def test_a_syntax_error_gives_the_position_only(self) -> None:
        error = refusal(FORMATS["ppn"], b'{"ppn_reference": ' + CANARY.encode() + b"}")
        assert CANARY not in json.dumps([v.as_dict() for v in error.violations]) + str(error)
        assert "line 1" in error.violations[0].message

    def test_a_mapped_document_error_quotes_no_value_either(self) -> None:
        doc = native("southmoor-ppn")
        doc["Subjects"][0]["NHSNo"] = f"{CANARY}1"
        doc["Subjects"][1]["DOB"] = CANARY
        doc["RiskAssessment"]["Grading"] = CANARY
        error = refusal(southmoor(), raw(doc))
        assert CANARY not in str(error) + json.dumps([v.as_dict() for v in error.violations])


class TestFieldMappedForce:
    def test_a_southmoor_ppn_parses_to_the_same_message_as_ours(self) -> None:
        theirs = southmoor().parse(raw(native("southmoor-ppn")), DICTIONARY)
        assert theirs == PpnAdapter().parse(raw(native("ppn")), DICTIONARY)
        assert theirs.as_dict() == expected("ppn")

    @pytest.mark.parametrize(
        ("mutate", "pointer", "rule"),
        [
            (lambda d: _set(d, "/Subjects/1/NHSNo", BAD_NHS), "/Subjects/1/NHSNo", "nhs-number-check-digit"),
            (lambda d: _set(d, "/RiskAssessment/Grading", "X"), "/RiskAssessment/Grading", "enum"),
            (
                lambda d: _set(d, "/RiskAssessment/DASH/Responses", ["Y"] * 23),
                "/RiskAssessment/DASH/Responses",
                "minItems",
            ),
            (
                lambda d: _set(d, "/RiskAssessment/DASH/TotalScore", 3),
                "/RiskAssessment/DASH/TotalScore",
                "dash-score",
            ),
            (
                lambda d: _set(d, "/Subjects/2/ContactMethods/0/Method", "PIGEON"),
                "/Subjects/2/ContactMethods/0/Method",
                "enum",
            ),
            (
                lambda d: _set(d, "/Subjects/0/DOB", "2019-03-11"),
                "/Subjects/0/DOB",
                "field-mapping-date-format",
            ),
            (lambda d: _set(d, "/Subjects/0/Nickname", "x"), "/Subjects/0", "additionalProperties"),
            (lambda d: _set(d, "/Subjects/1/PersonID", "child-1"), "/Subjects/1/PersonID", "unique-id"),
            (lambda d: _drop(d, "/PPNNumber"), "/", "required"),
        ],
    )
    def test_errors_name_the_forces_own_fields(self, mutate: Mutation, pointer: str, rule: str) -> None:
        error = refusal(southmoor(), raw(mutate(native("southmoor-ppn"))))
        assert (pointer, rule) in {(v.field, v.rule) for v in error.violations}

    def test_a_renamed_field_error_also_says_our_field(self) -> None:
        error = refusal(southmoor(), raw(_set(native("southmoor-ppn"), "/Subjects/1/NHSNo", BAD_NHS)))
        assert "/people/1/nhs_number" in error.violations[0].message

    def test_a_subject_without_a_type_defaults_to_household_member(self) -> None:
        doc = native("southmoor-ppn")
        del doc["Subjects"][3]["SubjectType"]
        message = southmoor().parse(raw(doc), DICTIONARY)
        assert message.people[3].role == "household-member"

    def test_a_configured_copy_leaves_the_default_adapter_unmapped(self) -> None:
        default = PpnAdapter()
        configured = southmoor()
        assert configured.mapping is not None
        assert default.mapping is None
        refusal(default, raw(native("southmoor-ppn")))


class TestConfigure:
    @pytest.mark.parametrize("adapter", list(FORMATS.values()))
    def test_each_adapter_is_configurable(self, adapter: PoliceJsonAdapter) -> None:
        assert isinstance(adapter, ConfigurableAdapter)
        assert adapter.configure({}).mapping is None

    def test_an_unknown_option_is_refused(self) -> None:
        with pytest.raises(AdapterOptionsError) as info:
            PpnAdapter().configure({"field_mappings": {}})
        assert "field_mappings" in info.value.detail

    def test_a_mapping_for_another_format_is_refused(self) -> None:
        with pytest.raises(AdapterOptionsError) as info:
            MaracAdapter().configure({"field_mapping": yaml.safe_load(SOUTHMOOR_MAPPING.read_text())})
        assert "(format-matches)" in info.value.detail

    def test_a_bad_mapping_names_the_path_and_rule(self) -> None:
        with pytest.raises(AdapterOptionsError) as info:
            PpnAdapter().configure({"field_mapping": {"renames": [{"from": "/a/*", "to": "/b"}]}})
        assert "/renames/0 (same-wildcards)" in info.value.detail

    def test_a_registry_configures_a_force_from_its_partner_options(self) -> None:
        registry = AdapterRegistry.of([EncompassAdapter(), PpnAdapter(), MaracAdapter()])
        options = {"police-ppn": {"field_mapping": yaml.safe_load(SOUTHMOOR_MAPPING.read_text())}}
        force = registry.configured(options)
        adapter = force.for_content_type("application/vnd.gateway.police-ppn+json; charset=utf-8")
        assert adapter is not None
        assert (
            adapter.parse(raw(native("southmoor-ppn")), DICTIONARY).envelope.sender_reference
            == "NS-PPN-DEMO-0456"
        )
        assert registry.by_name["police-ppn"] is not adapter


class TestSchemas:
    @pytest.mark.parametrize(
        "schema",
        [
            "police-encompass.schema.json",
            "police-ppn.schema.json",
            "police-marac.schema.json",
            "field-mapping.schema.json",
        ],
    )
    def test_every_input_has_a_size_limit_and_no_unknown_properties(self, schema: str) -> None:
        def walk(node: Any, where: str) -> list[str]:
            found: list[str] = []
            if isinstance(node, dict):
                types = node.get("type")
                types = types if isinstance(types, list) else [types]
                if "string" in types and "maxLength" not in node:
                    found.append(f"{where}: string without maxLength")
                if "array" in types and "maxItems" not in node:
                    found.append(f"{where}: array without maxItems")
                if (
                    "object" in types
                    and "properties" in node
                    and node.get("additionalProperties") is not False
                ):
                    found.append(f"{where}: object open to unknown properties")
                for key, value in node.items():
                    found += walk(value, f"{where}/{key}")
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    found += walk(value, f"{where}/{i}")
            return found

        assert walk(json.loads((ROOT / "schemas" / schema).read_text()), "") == []


_scalar = st.none() | st.booleans() | st.integers(-3, 30) | st.text(max_size=12)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=16,
)


def _leaf_paths(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaf_paths(v, (*path, i))]
    return [path]


def _replace_at(doc: Any, path: tuple[str | int, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


ADAPTERS = [*((n, a) for n, a in FORMATS.items()), ("southmoor-ppn", southmoor())]


class TestFuzz:
    @settings(max_examples=200, deadline=None)
    @given(which=st.sampled_from(ADAPTERS), body=st.binary(max_size=200))
    def test_any_bytes_end_in_a_message_or_a_declared_error(
        self, which: tuple[str, PoliceJsonAdapter], body: bytes
    ) -> None:
        _, adapter = which
        try:
            outcome: Message | InvalidInput = adapter.parse(body, DICTIONARY)
        except InvalidInput as exc:
            outcome = exc
        assert isinstance(outcome, Message) or outcome.violations

    @settings(max_examples=200, deadline=None)
    @given(which=st.sampled_from(ADAPTERS), data=st.data())
    def test_a_mutated_golden_document_is_parsed_and_round_trips_or_is_refused(
        self, which: tuple[str, PoliceJsonAdapter], data: st.DataObject
    ) -> None:
        name, adapter = which
        doc = native(name)
        for _ in range(data.draw(st.integers(1, 3))):
            path = data.draw(st.sampled_from(_leaf_paths(doc)))
            doc = _replace_at(doc, path, data.draw(_json))
        try:
            message: Message | InvalidInput = adapter.parse(raw(doc), DICTIONARY)
        except InvalidInput as exc:
            message = exc
        if isinstance(message, InvalidInput):
            assert message.violations
            return
        # Whatever we accept, we can render, and the rendering reads back the same.
        plain = PpnAdapter() if name == "southmoor-ppn" else adapter
        assert plain.parse(plain.render(message), DICTIONARY) == message.with_envelope(recipients=())


class TestBenchInputs:
    def test_the_benchmark_documents_parse_and_southmoors_match_ours(self) -> None:
        by_name = {case.name: case for case in BENCH_CASES}
        plain, mapped = by_name["police-ppn"], by_name["police-ppn (Southmoor field mapping)"]
        for size in ("typical", "large"):
            ours = plain.adapter.parse(getattr(plain, size), DICTIONARY)
            assert mapped.adapter.parse(getattr(mapped, size), DICTIONARY) == ours
        for case in BENCH_CASES:
            message = case.adapter.parse(case.large, DICTIONARY)
            unmapped = BY_FORMAT[case.adapter.name]  # renders use our field names, not the force's
            assert unmapped.parse(unmapped.render(message), DICTIONARY) == message.with_envelope(
                recipients=()
            )
        assert len(plain.adapter.parse(plain.large, DICTIONARY).people) == 11  # ten members and the officer
