"""The education JSON adapters (suspension/exclusion and attendance concern): golden files,
every documented rejection, render of what a redacted message carries, round trips and
bounded fuzzing. All data is synthetic."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import Adapter, NotRenderable
from adapters.education import (
    ATTENDANCE_MEDIA_TYPE,
    EXCLUSION_MEDIA_TYPE,
    AttendanceConcernAdapter,
    ExclusionAdapter,
)
from canonical import InvalidInput, Message, Person, default_dictionary

GOLDEN = Path(__file__).parent / "golden" / "education"
EXAMPLES = Path(__file__).parents[2] / "deploy" / "example" / "messages"
T = TypeVar("T")

AnyAdapter = ExclusionAdapter | AttendanceConcernAdapter
CASES: list[tuple[str, AnyAdapter]] = [
    ("suspension", ExclusionAdapter()),
    ("permanent-exclusion", ExclusionAdapter()),
    ("attendance-concern", AttendanceConcernAdapter()),
]


def native(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def rejection(adapter: AnyAdapter, body: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        adapter.parse(body, default_dictionary())
    assert info.value.adapter == adapter.name
    return info.value


def shown(exc: InvalidInput) -> str:
    return json.dumps([v.as_dict() for v in exc.violations]) + exc.detail + str(exc)


def changed(name: str, change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = native(name)
    change(doc)
    return encode(doc)


def without(message: Message, category: str) -> Message:
    people = tuple(
        Person(ref=p.ref, role=p.role, addresses=p.addresses, contacts=p.contacts)
        if category == "identity.core"
        else Person(
            ref=p.ref,
            role=p.role,
            identifiers=p.identifiers,
            name=p.name,
            birth_date=p.birth_date,
            sex=p.sex,
            addresses=() if category == "identity.address" else p.addresses,
            contacts=p.contacts,
        )
        for p in message.people
    )
    items = tuple(i for i in message.items if i.category != category)
    return Message(envelope=message.envelope, people=people, items=items)


class TestProtocol:
    def test_each_format_claims_only_its_own_content_type(self) -> None:
        assert isinstance(ExclusionAdapter(), Adapter)
        assert isinstance(AttendanceConcernAdapter(), Adapter)
        assert ExclusionAdapter().content_types == (EXCLUSION_MEDIA_TYPE,)
        assert AttendanceConcernAdapter().content_types == (ATTENDANCE_MEDIA_TYPE,)


class TestGolden:
    @pytest.mark.parametrize(("name", "adapter"), CASES, ids=[c[0] for c in CASES])
    def test_native_file_gives_the_expected_canonical_message(self, name: str, adapter: AnyAdapter) -> None:
        expected = json.loads((GOLDEN / f"{name}.canonical.json").read_text())
        message = adapter.parse((GOLDEN / f"{name}.json").read_bytes(), default_dictionary())
        assert message.as_dict() == expected
        assert (message.envelope.message_id, message.envelope.source, message.envelope.received_at) == (
            "",
            "",
            "",
        )

    def test_attendance_purpose_defaults_to_safeguarding_and_may_be_child_in_need(self) -> None:
        adapter = AttendanceConcernAdapter()
        assert adapter.parse(encode(native("attendance-concern")), default_dictionary()).envelope.purpose == (
            "safeguarding"
        )
        body = changed("attendance-concern", lambda d: d.update(purpose="child-in-need"))
        assert adapter.parse(body, default_dictionary()).envelope.purpose == "child-in-need"

    def test_a_gateway_block_from_a_sender_is_ignored(self) -> None:
        body = changed("suspension", lambda d: d.update(gateway={"message_id": "msg_FORGED", "source": "x"}))
        envelope = ExclusionAdapter().parse(body, default_dictionary()).envelope
        assert (envelope.message_id, envelope.source) == ("", "")


class TestRejections:
    @pytest.mark.parametrize(
        ("raw", "rule"),
        [
            (b"{not json", "json-syntax"),
            (b"\xff\xfe\x00", "utf-8"),
            (b"[" * 40 + b"]" * 40, "max-depth"),
            (b"[]", "type"),
            (b"{}", "required"),
        ],
    )
    @pytest.mark.parametrize("adapter", [ExclusionAdapter(), AttendanceConcernAdapter()], ids=["exc", "att"])
    def test_bad_json(self, adapter: AnyAdapter, raw: bytes, rule: str) -> None:
        assert rule in {v.rule for v in rejection(adapter, raw).violations}

    @pytest.mark.parametrize(
        ("change", "field", "rule"),
        [
            # There is no place for SEN information or child protection file content.
            (lambda d: d.update(sen={"status": "CANARY"}), "/", "additionalProperties"),
            (lambda d: d["exclusion"].update(diagnosis="CANARY"), "/exclusion", "additionalProperties"),
            (lambda d: d["pupil"].update(cp_file="CANARY"), "/pupil", "additionalProperties"),
            (lambda d: d.update(kind="CANARY"), "/kind", "enum"),
            (lambda d: d.update(decided_at="2026-11-19T12:00:00"), "/decided_at", "format"),
            (lambda d: d.update(decided_at="CANARY"), "/decided_at", "format"),
            (lambda d: d["exclusion"].update(reason="CANARY"), "/exclusion/reason", "enum"),
            (lambda d: d["exclusion"].update(days=45.5), "/exclusion/days", "maximum"),
            (lambda d: d["exclusion"].update(days=0), "/exclusion/days", "minimum"),
            (lambda d: d["exclusion"].update(days=1.25), "/exclusion/days", "half-days"),
            (lambda d: d["exclusion"].update(days="CANARY"), "/exclusion/days", "type"),
            (lambda d: d["exclusion"].update(start_date="2026-02-30"), "/exclusion/start_date", "format"),
            (lambda d: d["exclusion"].update(school_urn="CANARY"), "/exclusion/school_urn", "pattern"),
            (lambda d: d["pupil"].update(upn="C801200005001"), "/pupil/upn", "upn-check-letter"),
            (lambda d: d["pupil"].update(upn="CANARY"), "/pupil/upn", "minLength"),
            (
                lambda d: d["pupil"].update(nhs_number="9990000019"),
                "/pupil/nhs_number",
                "nhs-number-check-digit",
            ),
            (lambda d: d["pupil"].update(sex="CANARY"), "/pupil/sex", "enum"),
            (lambda d: d["pupil"].update(given_name="CANARY" * 40), "/pupil/given_name", "maxLength"),
            (lambda d: d["pupil"].pop("family_name"), "/pupil/family_name", "required"),
            (lambda d: d["pupil"].pop("birth_date"), "/pupil/birth_date", "required"),
            (lambda d: [d["pupil"].pop(k) for k in ("upn", "nhs_number")], "/pupil", "pupil-identifier"),
            (lambda d: d.pop("exclusion"), "/exclusion", "required"),
            (lambda d: d["exclusion"].pop("reason"), "/exclusion/reason", "required"),
            (lambda d: d["exclusion"].pop("start_date"), "/exclusion/start_date", "required"),
            (lambda d: d["exclusion"].pop("days"), "/exclusion/days", "days-for-suspension"),
            (lambda d: d["social_care"].update(looked_after="CANARY"), "/social_care/looked_after", "type"),
            (lambda d: d.update(recipients=["CANARY"]), "/recipients/0", "pattern"),
            (lambda d: d.update(recipients=["a"] * 11), "/recipients", "maxItems"),
            (lambda d: d.update(notification_id="C" * 101), "/notification_id", "maxLength"),
        ],
    )
    def test_each_documented_exclusion_rule(
        self, change: Callable[[dict[str, Any]], Any], field: str, rule: str
    ) -> None:
        error = rejection(ExclusionAdapter(), changed("suspension", change))
        assert (field, rule) in {(v.field, v.rule) for v in error.violations}
        assert "CANARY" not in shown(error)

    def test_a_permanent_exclusion_has_no_length(self) -> None:
        body = changed("permanent-exclusion", lambda d: d["exclusion"].update(days=4))
        error = rejection(ExclusionAdapter(), body)
        assert [(v.field, v.rule) for v in error.violations] == [
            ("/exclusion/days", "no-days-for-permanent-exclusion")
        ]

    @pytest.mark.parametrize(
        ("change", "field", "rule"),
        [
            (lambda d: d.update(purpose="CANARY"), "/purpose", "enum"),
            (lambda d: d.update(raised_at="CANARY"), "/raised_at", "format"),
            (lambda d: d.update(risk_of_significant_harm="CANARY"), "/risk_of_significant_harm", "type"),
            (lambda d: d.update(concern="C" * 4001), "/concern", "maxLength"),
            (lambda d: d["home_address"].update(lines=[]), "/home_address/lines", "minItems"),
            (
                lambda d: d["home_address"].update(postcode="CANARY-ZZ99"),
                "/home_address/postcode",
                "maxLength",
            ),
            (
                lambda d: d["attendance"].update(attendance_percent=101),
                "/attendance/attendance_percent",
                "maximum",
            ),
            (lambda d: d["attendance"].update(sessions_missed=-1), "/attendance/sessions_missed", "minimum"),
            (
                lambda d: d["attendance"].update(sessions_missed=111),
                "/attendance/sessions_missed",
                "sessions-missed-le-possible",
            ),
            (lambda d: d["attendance"].pop("sessions_missed"), "/attendance/sessions_missed", "required"),
            (
                lambda d: d["attendance"].update(period_end="2026-09-02"),
                "/attendance/period_end",
                "period-order",
            ),
            (lambda d: d["attendance"].pop("period_start"), "/attendance/period_start", "required"),
            (
                lambda d: [d["attendance"].pop(k) for k in ("attendance_percent", "sessions_possible")],
                "/attendance",
                "attendance-figures",
            ),
            (lambda d: d.pop("attendance"), "/attendance", "required"),
            (lambda d: d["attendance"].update(note="CANARY"), "/attendance", "additionalProperties"),
            (lambda d: d["pupil"].update(upn="C801200005003"), "/pupil/upn", "upn-check-letter"),
        ],
    )
    def test_each_documented_attendance_rule(
        self, change: Callable[[dict[str, Any]], Any], field: str, rule: str
    ) -> None:
        error = rejection(AttendanceConcernAdapter(), changed("attendance-concern", change))
        assert (field, rule) in {(v.field, v.rule) for v in error.violations}
        assert "CANARY" not in shown(error)

    @pytest.mark.parametrize(("name", "adapter"), CASES, ids=[c[0] for c in CASES])
    def test_canary_in_every_value_is_never_quoted(self, name: str, adapter: AnyAdapter) -> None:
        def canaries(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: canaries(v) for k, v in value.items()}
            if isinstance(value, list):
                return [canaries(v) for v in value]
            return "CANARY-9" if isinstance(value, str) else value

        error = rejection(adapter, encode(canaries(native(name))))
        assert len(error.violations) > 3
        assert "CANARY" not in shown(error)

    def test_nan_is_refused_before_it_reaches_the_schema_bounds(self) -> None:
        body = encode(native("attendance-concern")).replace(b"44.5", b"NaN")
        error = rejection(AttendanceConcernAdapter(), body)
        assert [(v.field, v.rule) for v in error.violations] == [("/", "finite-number")]

    def test_syntax_error_gives_position_not_content(self) -> None:
        error = rejection(ExclusionAdapter(), b'{"pupil": {"given_name": CANARY}}')
        assert "line 1" in shown(error)
        assert "CANARY" not in shown(error)


class TestRender:
    @pytest.mark.parametrize(("name", "adapter"), CASES, ids=[c[0] for c in CASES])
    def test_round_trip(self, name: str, adapter: AnyAdapter) -> None:
        message = adapter.parse(encode(native(name)), default_dictionary()).with_envelope(recipients=())
        assert adapter.parse(adapter.render(message), default_dictionary()) == message

    @pytest.mark.parametrize(("name", "adapter"), CASES, ids=[c[0] for c in CASES])
    def test_gateway_fields_are_carried_and_recipients_never(self, name: str, adapter: AnyAdapter) -> None:
        message = adapter.parse(encode(native(name)), default_dictionary())
        stamped = message.with_envelope(
            recipients=("csc-northshire",),
            message_id="msg_01TEST",
            source="school-riverside-primary",
            received_at="2026-11-19T12:00:01+00:00",
        )
        out = json.loads(adapter.render(stamped))
        assert out["gateway"] == {
            "message_id": "msg_01TEST",
            "source": "school-riverside-primary",
            "received_at": "2026-11-19T12:00:01+00:00",
        }
        assert "recipients" not in out
        assert adapter.parse(encode(out), default_dictionary()) == message.with_envelope(recipients=())

    @pytest.mark.parametrize(
        ("name", "adapter", "category", "key"),
        [
            ("suspension", ExclusionAdapter(), "education.exclusion", "exclusion"),
            ("suspension", ExclusionAdapter(), "social-care.status", "social_care"),
            ("attendance-concern", AttendanceConcernAdapter(), "education.attendance", "attendance"),
            ("attendance-concern", AttendanceConcernAdapter(), "event.narrative", "concern"),
            ("attendance-concern", AttendanceConcernAdapter(), "identity.address", "home_address"),
        ],
    )
    def test_an_absent_category_is_an_absent_property(
        self, name: str, adapter: AnyAdapter, category: str, key: str
    ) -> None:
        message = adapter.parse(encode(native(name)), default_dictionary())
        assert key in json.loads(adapter.render(message))
        assert key not in json.loads(adapter.render(without(message, category)))

    def test_withheld_identity_leaves_an_empty_pupil(self) -> None:
        message = ExclusionAdapter().parse(encode(native("suspension")), default_dictionary())
        out = json.loads(ExclusionAdapter().render(without(message, "identity.core")))
        assert out["pupil"] == {}

    def test_scenario_4_sen_and_child_protection_file_have_no_place(self) -> None:
        # Given the example suspension as another format carried it, with its SEN diagnosis
        # and DSL chronology, and a DfE reason code
        doc = json.loads((EXAMPLES / "suspension.json").read_text())
        doc["items"][0]["data"]["reason_code"] = "PA"
        out = ExclusionAdapter().render(Message.from_dict(doc)).decode()
        # Then the exclusion travels and none of the SEN or child protection content does
        assert "diagnosis" not in out
        assert "Demo child protection" not in out
        assert "EHC" not in out
        rendered = json.loads(out)
        assert rendered["exclusion"] == {"start_date": "2026-11-20", "days": 2, "reason": "PA"}
        assert rendered["social_care"] == {"looked_after": True}
        assert "recipients" not in rendered

    def test_a_reason_that_is_not_a_dfe_code_is_not_renderable(self) -> None:
        doc = json.loads((EXAMPLES / "suspension.json").read_text())
        doc["items"][0]["data"]["reason_code"] = "PA (demo)"
        with pytest.raises(NotRenderable) as info:
            ExclusionAdapter().render(Message.from_dict(doc))
        assert "/exclusion/reason: enum" in str(info.value)
        assert "demo" not in str(info.value)

    @pytest.mark.parametrize(
        ("adapter", "example"),
        [
            (ExclusionAdapter(), "domestic-abuse-incident.json"),
            (AttendanceConcernAdapter(), "suspension.json"),
        ],
    )
    def test_another_event_type_is_not_renderable(self, adapter: AnyAdapter, example: str) -> None:
        message = Message.from_dict(json.loads((EXAMPLES / example).read_text()))
        with pytest.raises(NotRenderable):
            adapter.render(message)

    @pytest.mark.parametrize(("name", "adapter"), CASES, ids=[c[0] for c in CASES])
    def test_not_exactly_one_child_is_not_renderable(self, name: str, adapter: AnyAdapter) -> None:
        message = adapter.parse(encode(native(name)), default_dictionary())
        for people in ((), (message.people[0], message.people[0])):
            with pytest.raises(NotRenderable):
                adapter.render(Message(envelope=message.envelope, people=people, items=message.items))

    def test_a_value_the_format_cannot_hold_is_not_rendered_and_not_quoted(self) -> None:
        message = AttendanceConcernAdapter().parse(encode(native("attendance-concern")), default_dictionary())
        odd = message.with_envelope(purpose="marac")
        with pytest.raises(NotRenderable) as info:
            AttendanceConcernAdapter().render(odd)
        assert "/purpose" in str(info.value)
        assert "marac" not in str(info.value)


def outcome(call: Callable[[], T]) -> T | InvalidInput:
    try:
        return call()
    except InvalidInput as exc:
        return exc


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.extend(paths(value, (*prefix, i)))
    return out


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(doc)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


class TestFuzz:
    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(CASES), st.binary(max_size=500))
    def test_any_bytes_end_in_a_message_or_a_declared_error(
        self, case: tuple[str, AnyAdapter], body: bytes
    ) -> None:
        result = outcome(lambda: case[1].parse(body, default_dictionary()))
        assert isinstance(result, Message) or result.violations

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(CASES), st.data())
    def test_any_field_replaced_ends_in_a_round_trip_or_a_declared_error(
        self, case: tuple[str, AnyAdapter], data: st.DataObject
    ) -> None:
        name, adapter = case
        doc = native(name)
        path = data.draw(st.sampled_from(paths(doc)))
        body = encode(replaced(doc, path, data.draw(json_values)))
        result = outcome(lambda: adapter.parse(body, default_dictionary()))
        if isinstance(result, InvalidInput):
            assert result.violations
        else:
            message = result.with_envelope(recipients=())
            assert adapter.parse(adapter.render(message), default_dictionary()) == message
