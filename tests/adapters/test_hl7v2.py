"""The HL7 v2 ADT adapter: golden files, round trips, every documented rejection, hostile
input, and errors that never quote a value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import NotRenderable
from adapters.hl7v2 import (
    CONTENT_TYPES,
    MAX_BODY_BYTES,
    MAX_FIELD_CHARS,
    MEDIA_TYPE,
    NAME,
    Hl7v2Adapter,
    UnsupportedHl7Message,
    read_header,
)
from canonical import InvalidInput, Message, default_dictionary
from canonical.model import Address, Contact, Identifier, Item, Name, Person
from tests.support import EXAMPLE, sample_message, valid_nhs_numbers

GOLDEN = Path(__file__).parent / "golden" / "hl7v2"
ADAPTER = Hl7v2Adapter()
DICTIONARY = default_dictionary()
# Values that appear in the golden files and must never appear in an error.
PERSONAL = ("Testcase", "Example Street", "ZZ99", "9990001014", "Toni", "07700", "Sam")

RENDERED = {
    "a04-ed-attendance": "A04",
    "a01-admission": "A01",
    "a03-discharge": "A03",
    "a08-patient-update": "A08",
}


def golden(name: str) -> bytes:
    return (GOLDEN / f"{name}.hl7").read_bytes()


def a04() -> str:
    return golden("a04-ed-attendance").decode()


def parse(raw: bytes | str) -> Message:
    return ADAPTER.parse(raw.encode() if isinstance(raw, str) else raw, DICTIONARY)


def rejection(raw: bytes | str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse(raw)
    return info.value


def replace_field(text: str, segment: str, number: int, value: str) -> str:
    """``text`` with field ``number`` of the first ``segment`` set to ``value`` (test helper)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(segment + "|"):
            fields = line.split("|")
            index = number if segment != "MSH" else number - 1
            fields += [""] * (index + 1 - len(fields))
            fields[index] = value
            lines[i] = "|".join(fields)
            break
    else:  # pragma: no cover - a test asked for a segment the sample lacks
        raise AssertionError(segment)
    return "\n".join(lines) + "\n"


def without(text: str, segment: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith(segment + "|")) + "\n"


def assert_no_personal_data(exc: InvalidInput, *extra: str) -> None:
    text = " ".join([str(exc), exc.detail, json.dumps([v.as_dict() for v in exc.violations]), repr(exc.args)])
    for value in (*PERSONAL, *extra):
        assert value not in text


def delivered(message: Message) -> Message:
    """A parsed message as the gateway hands it to a renderer: ids and times assigned."""
    return message.with_envelope(
        message_id="msg_01JDEMO0000000000000000001",
        source="ed-northshire-general",
        received_at="2026-11-22T01:15:03.250+00:00",
    )


class TestAdapterShape:
    def test_name_content_types_and_media_type(self) -> None:
        assert ADAPTER.name == NAME == "hl7v2"
        assert CONTENT_TYPES == ("application/hl7-v2", "x-application/hl7-v2+er7")
        assert ADAPTER.media_type == MEDIA_TYPE == "application/hl7-v2"

    def test_unsupported_is_a_distinguishable_invalid_input(self) -> None:
        exc = rejection(replace_field(a04(), "MSH", 9, "ORU^R01^ORU_R01"))
        assert isinstance(exc, UnsupportedHl7Message)
        assert exc.adapter == NAME
        content = rejection(replace_field(a04(), "PID", 8, "X"))
        assert not isinstance(content, UnsupportedHl7Message)


class TestGoldenFiles:
    @pytest.mark.parametrize(
        "name",
        ["a01-admission", "a03-discharge", "a04-ed-attendance", "a08-patient-update", "a40-patient-merge"],
    )
    def test_parse_gives_the_expected_canonical_message(self, name: str) -> None:
        expected = json.loads((GOLDEN / f"{name}.json").read_text())
        assert parse(golden(name)).as_dict() == expected

    @pytest.mark.parametrize("terminator", ["\r", "\r\n", "\n"])
    def test_segment_terminators_are_equivalent(self, terminator: str) -> None:
        raw = a04().replace("\n", terminator)
        assert parse(raw) == parse(golden("a04-ed-attendance"))

    def test_ed_attendance_is_for_safeguarding_and_carries_no_invented_cp_status(self) -> None:
        msg = parse(golden("a04-ed-attendance"))
        assert msg.envelope.event_type == "health.ed-attendance"
        assert msg.envelope.purpose == "safeguarding"
        assert msg.envelope.sender_reference == "NGH-ED-7781"
        assert "social-care.status" not in msg.categories()
        assert (msg.envelope.message_id, msg.envelope.source, msg.envelope.received_at) == ("", "", "")

    def test_hospital_numbers_are_dropped_and_clinical_items_labelled_restricted(self) -> None:
        msg = parse(golden("a04-ed-attendance"))
        assert msg.children()[0].identifiers == (Identifier("nhs-number", "9990001014"),)
        clinical = [i for i in msg.items if i.category == "health.clinical"]
        assert [i.labels for i in clinical] == [frozenset({"R"})]

    def test_protection_indicator_marks_a_confidential_address(self) -> None:
        child = parse(golden("a01-admission")).children()[0]
        assert child.has_confidential_address

    def test_time_without_offset_takes_msh7_offset(self) -> None:
        raw = replace_field(a04(), "MSH", 7, "20260701120000+0100")
        raw = replace_field(raw, "EVN", 2, "202607011155")
        assert parse(raw).envelope.occurred_at == "2026-07-01T11:55:00+01:00"

    def test_evn2_missing_falls_back_to_msh7(self) -> None:
        raw = without(a04(), "EVN")
        assert parse(raw).envelope.occurred_at == "2026-11-21T23:05:00+00:00"

    def test_negative_offsets_under_an_hour_keep_their_sign(self) -> None:
        raw = replace_field(a04(), "EVN", 2, "202611212305-0030")
        assert parse(raw).envelope.occurred_at == "2026-11-21T23:05:00-00:30"

    def test_latin1_declared_in_msh18_is_read(self) -> None:
        raw = replace_field(a04(), "MSH", 18, "8859/1")
        raw = raw.replace("Testcase^Sam", "Testcase^Zoë")
        assert parse(raw.encode("latin-1")).children()[0].name == Name("Zoë", "Testcase")

    def test_escaped_separators_are_unescaped(self) -> None:
        raw = a04().replace("Testcase^Sam", "Test\\T\\case^Sam\\S\\Jo")
        assert parse(raw).children()[0].name == Name("Sam^Jo", "Test&case")

    def test_z_segments_and_unmapped_fields_are_ignored(self) -> None:
        msg = parse(golden("a01-admission"))
        assert "local extension" not in json.dumps(msg.as_dict())

    def test_a04_of_an_emergency_patient_only(self) -> None:
        msg = parse(golden("a04-ed-attendance"))
        attendance = next(i for i in msg.items if i.category == "health.attendance")
        assert attendance.data["patient_class"] == "emergency"


class TestRoundTrip:
    @pytest.mark.parametrize("name", sorted(RENDERED))
    def test_parse_render_parse_is_identity(self, name: str) -> None:
        msg = delivered(parse(golden(name)))
        rendered = ADAPTER.render(msg)
        assert f"ADT^{RENDERED[name]}".encode() in rendered
        again = parse(rendered)
        # MSH-10 is the gateway's message id: it becomes the recipient's sender reference.
        expected = msg.with_envelope(
            message_id="", source="", received_at="", sender_reference=msg.envelope.message_id
        )
        assert again == expected

    def test_header_carries_gateway_id_application_and_times(self) -> None:
        rendered = ADAPTER.render(delivered(parse(golden("a04-ed-attendance")))).decode()
        msh, evn = rendered.split("\r")[:2]
        fields = msh.split("|")
        assert fields[2] == "MASH-GATEWAY"
        assert fields[4] == fields[5] == ""  # receiving application/facility: per recipient, unknown here
        assert fields[6] == "20261122011503.2500+0000"  # received_at
        assert fields[9] == "msg_01JDEMO0000000000000000001"
        assert evn.split("|")[7] == "ed-northshire-general"

    @given(
        st.text(
            alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"))
            | st.sampled_from("|^~\\&"),
            min_size=1,
            max_size=40,
        )
        .map(str.strip)
        .filter(bool)
    )
    @settings(max_examples=200, deadline=None)
    def test_any_text_survives_escaping(self, text: str) -> None:
        nhs = valid_nhs_numbers(1)[0]
        msg = Message.from_dict(
            {
                "envelope": {
                    "event_type": "health.admission",
                    "occurred_at": "2026-11-22T09:25:00+00:00",
                    "purpose": "direct-care",
                    "message_id": "msg_1",
                    "received_at": "2026-11-22T09:25:01+00:00",
                },
                "people": [
                    Person(
                        "child-1",
                        "child",
                        (Identifier("nhs-number", nhs),),
                        Name(text, text),
                        addresses=(Address((text,), "ZZ99 9ZZ", "home"),),
                        contacts=(Contact("phone", text),),
                    ).as_dict()
                ],
                "items": [],
            }
        )
        again = parse(ADAPTER.render(msg))
        assert again.people == msg.people


class TestRender:
    def minimal(self, event_type: str = "health.ed-attendance", **person: Any) -> Message:
        return Message.from_dict(
            {
                "envelope": {
                    "event_type": event_type,
                    "occurred_at": "2026-11-22T01:15:00+00:00",
                    "purpose": "safeguarding",
                    "message_id": "msg_2",
                    "source": "ed-northshire-general",
                    "received_at": "2026-11-22T01:15:01+00:00",
                },
                "people": [{"ref": "child-1", "role": "child", **person}],
                "items": [],
            }
        )

    @pytest.mark.parametrize(
        "event_type",
        [
            "health.patient-merge",
            "police.domestic-abuse-incident",
            "social-care.cp-plan-started",
            "health.referral",
        ],
    )
    def test_other_events_are_not_renderable(self, event_type: str) -> None:
        with pytest.raises(NotRenderable) as info:
            ADAPTER.render(self.minimal(event_type))
        assert event_type in str(info.value)

    def test_police_message_is_not_renderable(self) -> None:
        with pytest.raises(NotRenderable):
            ADAPTER.render(Message.from_dict(sample_message()))

    def test_redacted_message_renders_only_what_it_carries(self) -> None:
        rendered = ADAPTER.render(self.minimal()).decode()
        segments = {s.split("|")[0]: s for s in rendered.split("\r") if s}
        assert set(segments) == {"MSH", "EVN", "PID", "PV1"}
        assert segments["PID"] == "PID|1"
        assert segments["PV1"] == "PV1|1|E"  # ED is the event type itself; nothing else is invented
        assert parse(rendered).people == (Person("child-1", "child"),)

    def test_without_attendance_an_admission_has_unknown_class(self) -> None:
        rendered = ADAPTER.render(self.minimal("health.admission")).decode()
        assert "\rPV1|1|U\r" in rendered
        assert parse(rendered).items == ()

    def test_a_time_that_is_not_iso_is_left_out_not_guessed(self) -> None:
        msg = self.minimal()
        attendance = Item(
            "health.attendance", "ed-attendance", {"setting": "ED", "arrived_at": "last night"}, ("child-1",)
        )
        rendered = ADAPTER.render(Message(msg.envelope, msg.people, (attendance,))).decode()
        pv1 = next(s for s in rendered.split("\r") if s.startswith("PV1"))
        assert pv1 == "PV1|1|E|^^^^^^^^ED"

    def test_no_address_means_no_pid11(self) -> None:
        full = parse(golden("a04-ed-attendance"))
        child = full.children()[0]
        redacted = Message(
            envelope=delivered(full).envelope,
            people=(Person(child.ref, child.role, child.identifiers, child.name),),
            items=(),
        )
        pid = next(s for s in ADAPTER.render(redacted).decode().split("\r") if s.startswith("PID"))
        assert "ZZ99" not in pid
        assert len(pid.split("|")) <= 6

    def test_example_ed_attendance_renders(self) -> None:
        doc = json.loads((EXAMPLE / "messages" / "ed-attendance.json").read_text())
        msg = Message.from_dict(doc).with_envelope(message_id="msg_3", recipients=())
        rendered = ADAPTER.render(msg)
        again = parse(rendered)
        assert again.children()[0].identifiers == msg.children()[0].identifiers
        # Items ADT has no place for (a CP-IS flag, a mental-health note) are not written.
        assert {i.category for i in again.items} == {"health.attendance"}
        assert b"Demo mental health" not in rendered


class TestRejections:
    @pytest.mark.parametrize(
        ("mutate", "where", "rule", "unsupported"),
        [
            (
                lambda t: replace_field(t, "MSH", 9, "ORU^R01^ORU_R01"),
                "MSH-9",
                "hl7-unsupported-message",
                True,
            ),
            (
                lambda t: replace_field(t, "MSH", 9, "ADT^A05^ADT_A05"),
                "MSH-9",
                "hl7-unsupported-message",
                True,
            ),
            (lambda t: replace_field(t, "PV1", 2, "O"), "PV1-2", "hl7-unsupported-message", True),
            (lambda t: replace_field(t, "MSH", 11, "T"), "MSH-11", "hl7-unsupported-message", True),
            (lambda t: replace_field(t, "MSH", 12, "3.0"), "MSH-12", "hl7-unsupported-message", True),
            (lambda t: replace_field(t, "MSH", 11, ""), "MSH-11", "hl7-required-field", False),
            (lambda t: replace_field(t, "MSH", 12, ""), "MSH-12", "hl7-required-field", False),
            (lambda t: replace_field(t, "MSH", 10, ""), "MSH-10", "hl7-required-field", False),
            (lambda t: replace_field(t, "MSH", 7, ""), "MSH-7", "hl7-required-field", False),
            (lambda t: replace_field(t, "MSH", 7, "2026-11-21"), "MSH-7", "hl7-datatype", False),
            (lambda t: replace_field(t, "MSH", 18, "UNICODE UTF-16"), "MSH-18", "hl7-character-set", False),
            (lambda t: without(t, "PID"), "PID", "hl7-required-segment", False),
            (lambda t: without(t, "PV1"), "PV1", "hl7-required-segment", False),
            (lambda t: t + t.splitlines()[2] + "\n", "PID[2]", "hl7-segment-repeated", False),
            (
                lambda t: replace_field(t, "PID", 3, "9990001015^^^NHS^NH"),
                "PID-3[1].1",
                "nhs-number-check-digit",
                False,
            ),
            (
                lambda t: replace_field(t, "PID", 3, "RX1^^^ZZZ98^MR~9990001015^^^NHS^NH"),
                "PID-3[2].1",
                "nhs-number-check-digit",
                False,
            ),
            (lambda t: replace_field(t, "PID", 3, "^^^NHS^NH"), "PID-3[1].1", "hl7-required-field", False),
            (lambda t: replace_field(t, "PID", 7, "2019-06-30"), "PID-7", "hl7-datatype", False),
            (lambda t: replace_field(t, "PID", 7, "20191340"), "PID-7", "hl7-datatype", False),
            (lambda t: replace_field(t, "PID", 8, "X"), "PID-8", "hl7-code", False),
            (lambda t: replace_field(t, "PV1", 2, ""), "PV1-2", "hl7-required-field", False),
            (lambda t: replace_field(t, "PV1", 2, "Z"), "PV1-2", "hl7-code", False),
            (lambda t: replace_field(t, "PV1", 44, "20261399230500+0000"), "PV1-44", "hl7-datatype", False),
            (lambda t: replace_field(t, "PV1", 45, "20261122021000+2500"), "PV1-45", "hl7-datatype", False),
            (lambda t: replace_field(t, "PID", 5, "Test\\Zcase\\^Sam"), "PID-5", "hl7-escape", False),
            (lambda t: replace_field(t, "PID", 5, "Test\\Hcase^Sam"), "PID-5", "hl7-escape", False),
            (lambda t: replace_field(t, "PID", 5, "Test\\X00\\case^Sam"), "PID-5", "hl7-escape", False),
            (lambda t: replace_field(t, "PID", 5, "Test\\.sp99999999\\^Sam"), "PID-5", "hl7-escape", False),
            (
                lambda t: replace_field(t, "PID", 5, "X" * (MAX_FIELD_CHARS + 1)),
                "PID-5",
                "hl7-field-too-long",
                False,
            ),
            (
                lambda t: replace_field(t, "PID", 5, "~".join(["A^B"] * 51)),
                "PID-5",
                "hl7-too-many-repetitions",
                False,
            ),
            (lambda t: t + "NK1|1|A^B\n" * 50, "NK1[50]", "hl7-too-many-segments", False),
            (lambda t: t + "ZXX|1\n" * 500, "message", "hl7-too-many-segments", False),
            (lambda t: t + t, "MSH[8]", "hl7-syntax", False),
            (lambda t: t.replace("\nPID|", "\npid|"), "segment 3", "hl7-syntax", False),
            (lambda t: t.replace("\nPV1|", "\nPV1 "), "segment 6", "hl7-syntax", False),
            (lambda t: t.replace("MSH|^~\\&|", "MSH|^~|"), "MSH-2", "hl7-syntax", False),
            (lambda t: t.replace("MSH|^~\\&|", "MSH|^^\\&|"), "MSH-2", "hl7-syntax", False),
            (lambda t: t.split("\n", 1)[1], "MSH", "hl7-required-segment", False),
            (lambda t: t[:6], "MSH", "hl7-required-segment", False),
            (lambda t: t[:12], "MSH-9", "hl7-required-field", False),
            (lambda t: replace_field(t, "MSH", 9, "ADT"), "MSH-9", "hl7-required-field", False),
            (lambda t: "", "MSH", "hl7-required-segment", False),
        ],
    )
    def test_documented_rejection(self, mutate: Any, where: str, rule: str, unsupported: bool) -> None:
        exc = rejection(mutate(a04()))
        assert (exc.violations[0].field, exc.violations[0].rule) == (where, rule)
        assert isinstance(exc, UnsupportedHl7Message) is unsupported
        assert exc.adapter == NAME
        assert_no_personal_data(exc)

    def test_time_without_any_offset_is_refused(self) -> None:
        raw = replace_field(a04(), "MSH", 7, "20261121230500")
        raw = replace_field(raw, "EVN", 2, "20261121230500")
        exc = rejection(raw)
        assert (exc.violations[0].field, exc.violations[0].rule) == ("EVN-2", "hl7-timezone")

    def test_a40_requires_mrg_with_an_nhs_number(self) -> None:
        merge = golden("a40-patient-merge").decode()
        exc = rejection(without(merge, "MRG"))
        assert (exc.violations[0].field, exc.violations[0].rule) == ("MRG", "hl7-required-segment")
        exc = rejection(replace_field(merge, "MRG", 1, "RX000002^^^ZZZ98^MR"))
        assert (exc.violations[0].field, exc.violations[0].rule) == ("MRG-1", "hl7-required-field")

    def test_a40_with_two_merges_is_unsupported(self) -> None:
        merge = golden("a40-patient-merge").decode()
        exc = rejection(merge + merge.splitlines()[-1] + "\n")
        assert isinstance(exc, UnsupportedHl7Message)

    def test_canonical_limits_are_reported_as_canonical_fields(self) -> None:
        exc = rejection(replace_field(a04(), "PID", 5, "Testcase^" + "S" * 300))
        assert exc.violations[0].field.startswith("canonical:/people/0/name")
        assert_no_personal_data(exc, "S" * 300)


class TestHostileInput:
    def test_latin1_bytes_without_declaration(self) -> None:
        raw = a04().replace("Testcase^Sam", "Testcase^Zoë").encode("latin-1")
        exc = rejection(raw)
        assert (exc.violations[0].field, exc.violations[0].rule) == ("MSH-18", "hl7-encoding")
        assert_no_personal_data(exc, "Zo")

    @pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
    def test_utf16(self, codec: str) -> None:
        exc = rejection(a04().encode(codec))
        assert exc.violations[0].rule == "hl7-encoding"

    def test_control_characters(self) -> None:
        exc = rejection(a04().replace("Sam", "S\x07am"))
        assert exc.violations[0].rule == "hl7-encoding"

    def test_huge_body(self) -> None:
        exc = rejection(a04().encode() + b"ZXX|" + b"A" * MAX_BODY_BYTES)
        assert exc.violations[0].rule == "hl7-too-large"

    @pytest.mark.parametrize(
        ("cut", "where"),
        [(3, "MSH"), (9, "MSH-9"), (40, "MSH-9"), (120, "PID"), (300, "PV1")],
    )
    def test_truncated_messages_end_in_a_declared_error(self, cut: int, where: str) -> None:
        exc = rejection(golden("a04-ed-attendance")[:cut])
        assert exc.violations[0].field == where
        assert_no_personal_data(exc)

    def test_truncation_after_the_required_segments_is_not_detectable_in_er7(self) -> None:
        # ER7 has no end marker: a cut inside the last segment still reads. MLLP's frame end
        # (0x1C 0x0D) is what detects a truncated transmission (tests/integration/test_mllp.py).
        raw = golden("a04-ed-attendance")
        assert parse(raw[: raw.index(b"PV2")]).envelope.event_type == "health.ed-attendance"

    def test_segment_soup(self) -> None:
        soup = "MSH|^~\\&|A|B|||20261121230500+0000||ADT^A04|1|P|2.5\nPV1|1|E\nPID\nPV1\nEVN|||\n"
        exc = rejection(soup)
        assert (exc.violations[0].field, exc.violations[0].rule) == ("PV1[2]", "hl7-segment-repeated")

    @given(st.binary(max_size=400))
    @settings(max_examples=200, deadline=None)
    def test_fuzz_arbitrary_bytes(self, raw: bytes) -> None:
        self.value_or_declared_error(raw)

    @given(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=1000),
                st.sampled_from(list("|^~\\&\r\n#XA9\x00é")) | st.just(""),
            ),
            max_size=6,
        )
    )
    @settings(max_examples=200, deadline=None)
    def test_fuzz_mutated_golden_file(self, edits: list[tuple[int, str]]) -> None:
        text = a04()
        for offset, char in edits:
            position = offset % (len(text) + 1)
            text = text[:position] + char + text[position + 1 :]
        self.value_or_declared_error(text.encode())

    @given(
        st.lists(
            st.sampled_from(
                [
                    "MSH|^~\\&|A|ZZZ98|||20261121230500+0000||ADT^A04|1|P|2.5",
                    "PID|1",
                    "PV1|1|E",
                    "EVN||20261121",
                    "NK1|1",
                    "MRG|1",
                    "PV2|||^x",
                    "DG1|1||^y",
                    "ZZZ|\\X41\\",
                    "PD1|||||||||||Y",
                ]
            )
            | st.text(alphabet="|^~\\&ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.\r", max_size=30),
            max_size=8,
        )
    )
    @settings(max_examples=200, deadline=None)
    def test_fuzz_segment_soup(self, lines: list[str]) -> None:
        self.value_or_declared_error("\r".join(lines).encode())

    def value_or_declared_error(self, raw: bytes) -> None:
        violations: list[Any] = []
        try:
            msg = ADAPTER.parse(raw, DICTIONARY)
        except InvalidInput as exc:
            violations = exc.violations
            assert violations, "an InvalidInput names at least one violation"
        else:
            assert msg.envelope.event_type.startswith("health.")
        assert all(v.rule and v.field for v in violations)


class TestReadHeader:
    def test_sender_and_control_id(self) -> None:
        header = read_header(golden("a04-ed-attendance"))
        assert (header.sending_facility, header.control_id, header.message_type, header.trigger) == (
            "ZZZ98",
            "NGH-ED-7781",
            "ADT",
            "A04",
        )
        assert header.sending_application == "NGH-PAS"

    def test_header_of_an_unsupported_type_is_still_read(self) -> None:
        header = read_header(replace_field(a04(), "MSH", 9, "ORU^R01").encode())
        assert (header.message_type, header.trigger) == ("ORU", "R01")

    @pytest.mark.parametrize(
        ("raw", "where", "rule"),
        [
            (b"PID|1", "MSH", "hl7-required-segment"),
            (b"MSH|^~\\&|A|B|||20261121||ADT^A04||P|2.5", "MSH-10", "hl7-required-field"),
            (b"MSH|^~\\&|A|B\\Q\\|||20261121||ADT^A04|1|P|2.5", "MSH-4", "hl7-escape"),
        ],
    )
    def test_errors(self, raw: bytes, where: str, rule: str) -> None:
        with pytest.raises(InvalidInput) as info:
            read_header(raw)
        assert (info.value.violations[0].field, info.value.violations[0].rule) == (where, rule)


class TestBenchCases:
    def test_bench_bodies_parse_and_render(self) -> None:
        from bench.adapter_cases.hl7v2 import CASES

        (case,) = CASES
        typical, large = parse(case.typical), parse(case.large)
        assert len(typical.people) == 2
        assert len(large.people) == 50  # the child and 49 NK1: the model's limit
        assert large.children()[0].identifiers == (Identifier("nhs-number", "9990001014"),)
        assert parse(ADAPTER.render(delivered(large))).people == large.people


class TestCpIsFlag:
    """The local ZCP segment: an emergency department that sees a child's CP-IS flag names
    the responsible authority, whose social care is then told of the attendance."""

    ZCP = "ZCP|CPP|999|20260901"

    def with_zcp(self, zcp: str | None = None) -> str:
        return a04() + (zcp or self.ZCP) + "\n"

    def test_the_flag_is_an_item_and_names_the_authority(self) -> None:
        msg = parse(self.with_zcp())
        flags = [i for i in msg.items if i.category == "social-care.status"]
        assert [(i.type, i.data) for i in flags] == [
            (
                "cp-is-flag",
                {"status": "child-protection-plan", "responsible_la_code": "999", "start_date": "2026-09-01"},
            )
        ]
        assert msg.envelope.recipients == ("la-code.999",)

    def test_without_a_zcp_an_attendance_names_no_one(self) -> None:
        assert parse(a04()).envelope.recipients == ()

    def test_looked_after_and_no_start_date(self) -> None:
        (flag,) = [i for i in parse(self.with_zcp("ZCP|LAC|999")).items if i.category == "social-care.status"]
        assert flag.data == {"status": "looked-after", "responsible_la_code": "999"}

    @pytest.mark.parametrize(
        ("zcp", "field", "rule"),
        [
            ("ZCP|XYZ|999", "ZCP-1", "hl7-code"),
            ("ZCP|CPP|99", "ZCP-2", "hl7-datatype"),
            ("ZCP|CPP|", "ZCP-2", "hl7-datatype"),
            ("ZCP|CPP|999|2026-09-01", "ZCP-3", "hl7-datatype"),
        ],
    )
    def test_a_bad_flag_is_refused_naming_the_field(self, zcp: str, field: str, rule: str) -> None:
        error = rejection(self.with_zcp(zcp))
        assert [(v.field, v.rule) for v in error.violations] == [(field, rule)]

    def test_round_trip_writes_the_segment_back(self) -> None:
        msg = parse(self.with_zcp())
        out = ADAPTER.render(msg)
        assert b"\rZCP|CPP|999|20260901" in out
        assert parse(out).items == msg.items

    def test_a_redacted_flag_is_not_written(self) -> None:
        msg = parse(self.with_zcp())
        reduced = Message(
            msg.envelope, msg.people, tuple(i for i in msg.items if i.category != "social-care.status")
        )
        assert b"ZCP" not in ADAPTER.render(reduced)
