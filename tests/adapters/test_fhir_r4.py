"""The FHIR R4 adapter: golden files, every documented rejection (on the full and the light
path), no value in any error, round trips, what render writes and leaves out, and bounded
fuzzing that must end in a message or a declared ``InvalidInput``."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import AdapterRegistry
from adapters.base import Adapter, NotRenderable
from adapters.canonical_json import CanonicalJsonAdapter
from adapters.fhir import MEDIA_TYPE, FhirR4Adapter, codes
from adapters.fhir.library import fhir_path, validate_with_library
from canonical import InvalidInput, Message, Violation, default_dictionary
from tests.support import EXAMPLE, valid_nhs_numbers

GOLDEN = Path(__file__).parent / "golden" / "fhir-r4"
REJECTIONS = GOLDEN / "rejections"
EXPECTED_REJECTIONS: dict[str, dict[str, list[list[str]]]] = json.loads(
    (REJECTIONS / "expected.json").read_text()
)
FULL = FhirR4Adapter()
LIGHT = FhirR4Adapter(validate=False)
BOTH = pytest.mark.parametrize("adapter", [FULL, LIGHT], ids=["full", "light"])
GOLDEN_CASES = ["ed-attendance-cp-plan", "referral-to-social-care"]
EXAMPLES = sorted((EXAMPLE / "messages").glob("*.json"))


def native(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GOLDEN / f"{name}.fhir.json").read_text())
    return doc


def canonical(name: str) -> Message:
    return Message.from_dict(json.loads((GOLDEN / f"{name}.canonical.json").read_text()))


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def rejection(adapter: FhirR4Adapter, body: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        adapter.parse(body, default_dictionary())
    assert info.value.adapter == "fhir-r4"
    return info.value


def error_text(error: InvalidInput) -> str:
    return json.dumps([v.as_dict() for v in error.violations]) + str(error) + error.detail


def as_delivered(message: Message) -> Message:
    """What the gateway hands a renderer: its own envelope fields set."""
    return message.with_envelope(
        message_id="01JDEMO0FHIR0000000000000A",
        source="health-northshire-general",
        received_at="2026-11-22T00:00:01+00:00",
    )


def as_sent(message: Message) -> Message:
    """What parse gives back: no gateway fields, no named recipients (never rendered)."""
    return message.with_envelope(message_id="", source="", received_at="", recipients=())


def resources(body: bytes) -> list[dict[str, Any]]:
    return [e["resource"] for e in json.loads(body)["entry"]]


class TestAdapterShape:
    def test_it_is_an_adapter_with_the_registered_names(self) -> None:
        assert isinstance(FULL, Adapter)
        assert FULL.name == "fhir-r4"
        assert FULL.content_types == ("application/fhir+json",)
        assert FULL.media_type == MEDIA_TYPE == "application/fhir+json; fhirVersion=4.0"

    def test_a_registry_finds_it_by_content_type_with_parameters(self) -> None:
        registry = AdapterRegistry.of([CanonicalJsonAdapter(), FULL])
        assert registry.for_content_type("Application/FHIR+json; fhirVersion=4.0") is FULL
        assert registry.by_name["fhir-r4"] is FULL

    def test_full_validation_is_the_default(self) -> None:
        assert FhirR4Adapter().validate is True


class TestGolden:
    @BOTH
    @pytest.mark.parametrize("name", GOLDEN_CASES)
    def test_native_parses_to_the_expected_canonical(self, adapter: FhirR4Adapter, name: str) -> None:
        parsed = adapter.parse((GOLDEN / f"{name}.fhir.json").read_bytes(), default_dictionary())
        assert parsed.as_dict() == canonical(name).as_dict()
        assert parsed == canonical(name)

    def test_ed_attendance_carries_setting_and_times_and_the_plan_not_clinical_detail(self) -> None:
        msg = FULL.parse(encode(native("ed-attendance-cp-plan")), default_dictionary())
        assert [i.category for i in msg.items] == ["health.attendance", "social-care.status"]
        assert "health.clinical" not in msg.categories()
        assert b"Demo clinical detail" not in json.dumps(msg.as_dict()).encode()

    def test_hospital_numbers_are_dropped_and_nhs_numbers_compacted(self) -> None:
        child = FULL.parse(encode(native("ed-attendance-cp-plan")), default_dictionary()).children()[0]
        assert [(i.system, i.value) for i in child.identifiers] == [("nhs-number", "9990001014")]

    def test_referral_flags_risk_and_marks_the_confidential_address(self) -> None:
        msg = FULL.parse(encode(native("referral-to-social-care")), default_dictionary())
        assert msg.envelope.flags.risk_of_significant_harm is True
        assert msg.envelope.flags.do_not_inform_family is False  # valueBoolean false
        assert msg.children()[0].has_confidential_address
        assert {i.category: i.labels for i in msg.items} == {
            "event.summary": frozenset({"SDV"}),
            "event.narrative": frozenset({"SDV"}),
        }


# Every v3 RoleCode the adapter maps, with its display in the HL7 terminology (THO) code
# system http://terminology.hl7.org/CodeSystem/v3-RoleCode (RoleCode 2.2.0; the same codes
# and displays in the FHIR R4 4.0.1 value set of 2018-08-12), all of them active. The source
# of each line is listed in docs/formats/fhir-r4.md; change a code only with a source.
VERIFIED_V3_ROLES = [
    ("PRN", "parent", "parent"),
    ("MTH", "mother", "parent"),
    ("FTH", "father", "parent"),
    ("NPRN", "natural parent", "parent"),
    ("NMTH", "natural mother", "parent"),
    ("NFTH", "natural father", "parent"),
    ("STPPRN", "step parent", "parent"),
    ("STPMTH", "stepmother", "parent"),
    ("STPFTH", "stepfather", "parent"),
    ("ADOPTP", "adoptive parent", "parent"),
    ("ADOPTM", "adoptive mother", "parent"),
    ("ADOPTF", "adoptive father", "parent"),
    ("SIB", "sibling", "sibling"),
    ("BRO", "brother", "sibling"),
    ("SIS", "sister", "sibling"),
    ("NSIB", "natural sibling", "sibling"),
    ("NBRO", "natural brother", "sibling"),
    ("NSIS", "natural sister", "sibling"),
    ("HSIB", "half-sibling", "sibling"),
    ("HBRO", "half-brother", "sibling"),
    ("HSIS", "half-sister", "sibling"),
    ("STPSIB", "step sibling", "sibling"),
    ("GUARD", "guardian", "carer"),
    ("PRNFOST", "foster parent", "carer"),
    ("MTHFOST", "foster mother", "carer"),
    ("FTHFOST", "foster father", "carer"),
]


def _with_v3_role(code: str) -> bytes:
    """The ED golden Bundle with its RelatedPerson (entry 2) coded ``code`` in v3 RoleCode only."""
    doc = native("ed-attendance-cp-plan")
    doc["entry"][2]["resource"]["relationship"] = [{"coding": [{"system": codes.ROLE_CODE, "code": code}]}]
    return encode(doc)


class TestV3RoleCodes:
    def test_the_mapping_is_exactly_the_verified_table(self) -> None:
        assert dict(codes.ROLE_FROM_V3) == {code: role for code, _, role in VERIFIED_V3_ROLES}
        assert len({code for code, _, _ in VERIFIED_V3_ROLES}) == len(VERIFIED_V3_ROLES)

    def test_render_writes_only_verified_codes_of_the_same_meaning(self) -> None:
        meaning = {code: role for code, _, role in VERIFIED_V3_ROLES}
        assert {role: meaning[code] for role, code in codes.V3_FOR_ROLE.items()} == {
            "parent": "parent",
            "sibling": "sibling",
        }
        assert codes.V3_FOR_ROLE == {"parent": "PRN", "sibling": "SIB"}

    @BOTH
    @pytest.mark.parametrize(
        ("code", "display", "role"), VERIFIED_V3_ROLES, ids=[c[0] for c in VERIFIED_V3_ROLES]
    )
    def test_each_verified_code_gives_its_role(
        self, adapter: FhirR4Adapter, code: str, display: str, role: str
    ) -> None:
        message = adapter.parse(_with_v3_role(code), default_dictionary())
        assert [(p.ref, p.role) for p in message.people] == [("child-1", "child"), ("parent-1", role)]

    @pytest.mark.parametrize("code", ["GRMTH", "ECON", "MTHINLAW", "NOK", "prn"])
    def test_a_code_outside_the_table_is_refused_not_guessed(self, code: str) -> None:
        error = rejection(LIGHT, _with_v3_role(code))
        assert ("Bundle.entry[2].resource.relationship", "related-person-role") in {
            (v.field, v.rule) for v in error.violations
        }


def _rejection_cases(group: str) -> list[tuple[str, list[list[str]]]]:
    return sorted(EXPECTED_REJECTIONS[group].items())


class TestRejections:
    @BOTH
    @pytest.mark.parametrize(("file", "expected"), _rejection_cases("both"))
    def test_each_documented_rejection(
        self, adapter: FhirR4Adapter, file: str, expected: list[list[str]]
    ) -> None:
        error = rejection(adapter, (REJECTIONS / file).read_bytes())
        assert [[v.field, v.rule] for v in error.violations] == expected

    @pytest.mark.parametrize(("file", "expected"), _rejection_cases("full_only"))
    def test_library_validation_names_each_location(self, file: str, expected: list[list[str]]) -> None:
        error = rejection(FULL, (REJECTIONS / file).read_bytes())
        assert [[v.field, v.rule] for v in error.violations] == expected

    def test_the_light_path_still_refuses_what_it_maps(self) -> None:
        # The library-invalid file's bad birth date is a mapped element: the light path
        # refuses it too (through the canonical date format), the unknown element it ignores.
        error = rejection(LIGHT, (REJECTIONS / "library-invalid.json").read_bytes())
        assert [(v.field, v.rule) for v in error.violations] == [("canonical:/people/0/birth_date", "format")]

    def test_nested_resource_locations_come_from_the_library_loc(self) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][3]["resource"]["period"]["start"] = "not-a-time"
        doc["entry"][6]["resource"]["identifier"][0]["value"] = 12345
        error = rejection(FULL, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [
            ("Bundle.entry[3].resource.period.start", "fhir-invalid"),
            ("Bundle.entry[6].resource.identifier[0].value", "fhir-type"),
        ]

    def test_fhir_path_of_a_loc(self) -> None:
        assert fhir_path(("entry", 2, "resource", "birthDate")) == "Bundle.entry[2].resource.birthDate"
        assert fhir_path(()) == "Bundle"

    def test_an_unknown_contained_resource_type_is_declared_not_a_key_error(self) -> None:
        # fhir.resources raises KeyError here, not a validation error.
        doc = native("ed-attendance-cp-plan")
        doc["entry"][1]["resource"]["contained"] = [{"resourceType": "Nonsense"}]
        error = rejection(FULL, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [("Bundle", "fhir-resource-type")]

    def test_a_library_crash_on_a_wrong_json_type_is_declared(self) -> None:
        # Found by fuzzing: fhir_core raises AttributeError (outside pydantic) for a boolean
        # where a url is expected. The light path does not read this element.
        doc = native("ed-attendance-cp-plan")
        doc["entry"][0]["resource"]["source"]["endpoint"] = False
        error = rejection(FULL, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [("Bundle", "fhir-type")]
        assert LIGHT.parse(encode(doc), default_dictionary()) == canonical("ed-attendance-cp-plan")

    @BOTH
    def test_an_empty_message_has_no_header(self, adapter: FhirR4Adapter) -> None:
        error = rejection(adapter, encode({"resourceType": "Bundle", "type": "message"}))
        assert [(v.field, v.rule) for v in error.violations] == [
            ("Bundle.entry", "fhir-message-header-first")
        ]

    @BOTH
    def test_a_wrong_json_type_names_its_location(self, adapter: FhirR4Adapter) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][1]["resource"]["name"][0]["given"] = "Sam"
        error = rejection(adapter, encode(doc))
        assert error.violations[0].field == "Bundle.entry[1].resource.name[0].given"
        assert error.violations[0].rule == "fhir-type"

    @BOTH
    def test_a_partial_birth_date_is_refused(self, adapter: FhirR4Adapter) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][1]["resource"]["birthDate"] = "2019-06"  # valid FHIR, not a canonical date
        error = rejection(adapter, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [
            ("Bundle.entry[1].resource.birthDate", "full-date")
        ]

    @BOTH
    def test_a_bad_upn_check_letter_names_the_field(self, adapter: FhirR4Adapter) -> None:
        doc = native("ed-attendance-cp-plan")
        upn = {"system": f"{codes.OURS}/id/upn", "value": "A801200005001"}
        doc["entry"][1]["resource"]["identifier"].append(upn)
        error = rejection(adapter, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [
            ("Bundle.entry[1].resource.identifier[2].value", "upn-check-letter")
        ]

    @BOTH
    def test_two_people_with_one_id_are_refused(self, adapter: FhirR4Adapter) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][2]["resource"]["id"] = "child-1"
        error = rejection(adapter, encode(doc))
        assert ("Bundle.entry[2].resource.id", "fhir-unique-id") in {
            (v.field, v.rule) for v in error.violations
        }

    @BOTH
    def test_codes_of_our_systems_must_be_in_the_dictionary(self, adapter: FhirR4Adapter) -> None:
        message = Message.from_dict(json.loads(EXAMPLES[0].read_text()))
        doc = json.loads(adapter.render(as_delivered(message)))
        doc["entry"][2]["resource"]["relationship"][0]["coding"][0]["code"] = "uncle"
        carrier = next(
            e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Communication"
        )
        carrier["category"][0]["coding"][0]["code"] = "health.astrology"
        error = rejection(adapter, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [
            ("Bundle.entry[2].resource.relationship", "related-person-role"),
            ("Bundle.entry[4].resource.category", "fhir-code"),
        ]

    def test_library_violations_are_capped(self) -> None:
        doc = native("ed-attendance-cp-plan")
        bad = {"resourceType": "Encounter", "class": {"code": "EMER"}}  # status missing
        doc["entry"] += [{"resource": dict(bad)} for _ in range(30)]
        error = rejection(FULL, encode(doc))
        assert len(error.violations) == 20
        assert {v.rule for v in error.violations} == {"fhir-required"}

    def test_the_library_does_not_check_value_sets_so_the_mapping_does(self) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][1]["resource"]["gender"] = "fish"
        Bundle.model_validate(doc)  # the library accepts it
        error = rejection(FULL, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [
            ("Bundle.entry[1].resource.gender", "fhir-code")
        ]

    @BOTH
    def test_several_semantic_problems_are_reported_together(self, adapter: FhirR4Adapter) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][0]["resource"]["eventCoding"]["code"] = "health.unknown"
        doc["entry"][1]["resource"]["identifier"][0]["value"] = "9990001015"
        doc["entry"][1]["resource"]["gender"] = "fish"
        error = rejection(adapter, encode(doc))
        assert {v.rule for v in error.violations} == {
            "fhir-event-code",
            "nhs-number-check-digit",
            "fhir-code",
        }

    @BOTH
    def test_a_carrier_with_bad_base64_is_refused(self, adapter: FhirR4Adapter) -> None:
        body = adapter.render(as_delivered(Message.from_dict(json.loads(EXAMPLES[0].read_text()))))
        doc = json.loads(body)
        carrier = next(e for e in doc["entry"] if e["resource"]["resourceType"] == "Communication")
        carrier["resource"]["payload"][0]["contentAttachment"]["data"] = "!!!not base64!!!"
        error = rejection(adapter, encode(doc))
        assert error.violations[0].rule in {"base64", "fhir-invalid"}


def _carrier_body() -> dict[str, Any]:
    """The example incident rendered: entry 4 is an item carrier about the child."""
    message = Message.from_dict(json.loads(EXAMPLES[0].read_text()))
    doc: dict[str, Any] = json.loads(FULL.render(as_delivered(message)))
    return doc


def _attach(doc: dict[str, Any], raw: bytes) -> None:
    doc["entry"][4]["resource"]["payload"][0]["contentAttachment"]["data"] = base64.b64encode(raw).decode()


def _set(path: str, value: Any) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return mutate


DATA = "Bundle.entry[4].resource.payload[0].contentAttachment.data"
CARRIER_PROBLEMS = [
    ("bad-json", lambda d: _attach(d, b"{nope"), DATA, "json-syntax"),
    ("not-object", lambda d: _attach(d, b"[1, 2]"), DATA, "fhir-type"),
    ("no-topic", lambda d: d["entry"][4]["resource"].pop("topic"),
     "Bundle.entry[4].resource.topic", "fhir-required"),
    ("text-payload", _set("entry.4.resource.payload", [{"contentString": "Demo"}]),
     "Bundle.entry[4].resource.payload", "item-carrier-payload"),
    ("unknown-marker",
     _set("entry.2.resource.extension", [{"url": codes.EXT_PERSON_MARKER, "valueCode": "mystery"}]),
     "Bundle.entry[2].resource.extension[0].valueCode", "fhir-code"),
    ("flag-status", None, "Bundle.entry[4].resource.status", "fhir-code"),
]  # fmt: skip


class TestSmallerRejections:
    @pytest.mark.parametrize(
        ("name", "mutate", "field", "rule"), CARRIER_PROBLEMS, ids=[c[0] for c in CARRIER_PROBLEMS]
    )
    def test_rejection(self, name: str, mutate: Any, field: str, rule: str) -> None:
        if mutate is None:  # the flag case works on the ED golden file
            doc = native("ed-attendance-cp-plan")
            doc["entry"][4]["resource"]["status"] = "paused"
        else:
            doc = _carrier_body()
            mutate(doc)
        error = rejection(LIGHT, encode(doc))
        assert (field, rule) in {(v.field, v.rule) for v in error.violations}

    def test_notes_too_long_together(self) -> None:
        doc = native("referral-to-social-care")
        doc["entry"][3]["resource"]["note"] = [{"text": "n" * 15_000}, {"text": "m" * 15_000}]
        error = rejection(FULL, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [
            ("Bundle.entry[3].resource.note", "max-length")
        ]

    def test_a_reference_with_only_a_display_is_no_subject(self) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][3]["resource"]["subject"] = {"display": "Sam"}
        msg = FULL.parse(encode(doc), default_dictionary())
        assert msg.items[0].about == ()

    @pytest.mark.parametrize("name", ["Resource", "DomainResource", "HumanName", "Pat ient", "Pätient"])
    def test_abstract_and_datatype_names_are_no_resource_types(self, name: str) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][6]["resource"]["resourceType"] = name
        error = rejection(LIGHT, encode(doc))
        assert [(v.field, v.rule) for v in error.violations] == [
            ("Bundle.entry[6].resource.resourceType", "fhir-resource-type")
        ]


def _string_leaves(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _string_leaves(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _string_leaves(v, key)
    elif isinstance(value, str) and key not in {"resourceType", "system", "url", "type"} and len(value) >= 5:
        yield value


class TestNoValueInErrors:
    @BOTH
    @pytest.mark.parametrize(
        "file", sorted([*EXPECTED_REJECTIONS["both"], *EXPECTED_REJECTIONS["full_only"]])
    )
    def test_no_rejection_quotes_any_value_of_the_message(self, adapter: FhirR4Adapter, file: str) -> None:
        raw = (REJECTIONS / file).read_bytes()
        try:
            leaves = set(_string_leaves(json.loads(raw)))
        except UnicodeDecodeError:
            leaves = {"Testcase", "Example Street", "ZZ99 5ZZ"}
        with pytest.raises(InvalidInput) as info:
            adapter.parse(raw, default_dictionary())
        text = error_text(info.value)
        assert leaves
        assert not [leaf for leaf in leaves if leaf in text]

    @BOTH
    def test_canaries_in_every_checked_element_stay_out_of_errors(self, adapter: FhirR4Adapter) -> None:
        doc = native("ed-attendance-cp-plan")
        header, patient, parent, encounter, flag = (doc["entry"][i]["resource"] for i in range(5))
        header["eventCoding"]["code"] = "CANARY-event"
        header["reason"]["coding"][0]["code"] = "CANARY-purpose"
        patient["identifier"][0]["value"] = "CANARY9999"
        patient["gender"] = "CANARY-gender"
        patient["birthDate"] = "CANARY-date"
        parent["relationship"][0]["coding"][0]["code"] = "CANARY-role"
        encounter["class"]["code"] = "CANARY-class"
        flag["code"]["coding"][0]["code"] = "CANARY-flag"
        flag["subject"]["reference"] = "Patient/CANARY-ref"
        for body in (encode(doc), encode(doc).replace(b"CANARY-date", b"2019-06-30")):
            with pytest.raises(InvalidInput) as info:
                adapter.parse(body, default_dictionary())
            assert info.value.violations
            assert "CANARY" not in error_text(info.value)

    def test_library_errors_drop_the_input(self) -> None:
        doc = native("ed-attendance-cp-plan")
        doc["entry"][1]["resource"]["birthDate"] = "CANARY-birth"
        doc["entry"][1]["resource"]["multipleBirthBoolean"] = "CANARY-bool"
        doc["entry"][1]["resource"]["name"] = "CANARY-name"
        error = rejection(FULL, encode(doc))
        assert len(error.violations) == 3
        assert "CANARY" not in error_text(error)


class TestRoundTrip:
    @pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
    def test_every_example_message(self, path: Path) -> None:
        message = Message.from_dict(json.loads(path.read_text()))
        body = FULL.render(as_delivered(message))
        validate_with_library(json.loads(body))
        assert FULL.parse(body, default_dictionary()) == as_sent(message)
        assert LIGHT.parse(body, default_dictionary()) == as_sent(message)

    @pytest.mark.parametrize(
        ("name", "kinds"),
        [
            ("ed-attendance-cp-plan", ["MessageHeader", "Patient", "RelatedPerson", "Encounter", "Flag"]),
            ("referral-to-social-care", ["MessageHeader", "Patient", "RelatedPerson", "ServiceRequest"]),
        ],
    )
    def test_golden_messages_use_their_fhir_resources(self, name: str, kinds: list[str]) -> None:
        message = canonical(name)
        body = FULL.render(as_delivered(message))
        validate_with_library(json.loads(body))
        assert [r["resourceType"] for r in resources(body)] == kinds
        assert FULL.parse(body, default_dictionary()) == as_sent(message)

    def test_an_attendance_still_in_progress(self) -> None:
        doc = canonical("ed-attendance-cp-plan").as_dict()
        del doc["items"][0]["data"]["left_at"]
        message = Message.from_dict(doc)
        body = FULL.render(as_delivered(message))
        validate_with_library(json.loads(body))
        encounter = resources(body)[3]
        assert (encounter["status"], encounter["period"]) == (
            "unknown",
            {"start": "2026-11-21T23:05:00+00:00"},
        )
        assert FULL.parse(body, default_dictionary()) == as_sent(message)

    def test_a_note_with_other_labels_gets_its_own_service_request(self) -> None:
        doc = canonical("referral-to-social-care").as_dict()
        doc["items"][1]["labels"] = ["SDV", "R"]
        message = Message.from_dict(doc)
        body = FULL.render(as_delivered(message))
        assert [r["resourceType"] for r in resources(body)].count("ServiceRequest") == 2
        assert FULL.parse(body, default_dictionary()) == as_sent(message)

    @given(numbers=st.lists(st.sampled_from(valid_nhs_numbers(40)), min_size=1, max_size=5, unique=True))
    @settings(max_examples=50, deadline=None)
    def test_children_and_their_nhs_numbers(self, numbers: list[str]) -> None:
        doc = canonical("ed-attendance-cp-plan").as_dict()
        doc["people"] = [
            {"ref": f"child-{n}", "role": "child", "identifiers": [{"system": "nhs-number", "value": v}]}
            for n, v in enumerate(numbers)
        ]
        for item in doc["items"]:
            item["about"] = ["child-0"]
        message = Message.from_dict(doc)
        assert LIGHT.parse(LIGHT.render(as_delivered(message)), default_dictionary()) == as_sent(message)


class TestRender:
    def test_gateway_fields_have_their_places(self) -> None:
        body = FULL.render(as_delivered(canonical("ed-attendance-cp-plan")))
        bundle = json.loads(body)
        header = bundle["entry"][0]["resource"]
        assert bundle["id"] == header["id"] == "01JDEMO0FHIR0000000000000A"
        assert header["source"] == {
            "name": "health-northshire-general",
            "endpoint": "urn:mash-gateway:partner:health-northshire-general",
        }
        assert {"url": codes.EXT_RECEIVED_AT, "valueInstant": "2026-11-22T00:00:01+00:00"} in header[
            "extension"
        ]
        assert bundle["timestamp"] == "2026-11-21T23:05:00+00:00"
        assert bundle["identifier"]["value"] == "NGH-ED-DEMO-7781"

    def test_recipients_never_learn_whom_else_the_sender_named(self) -> None:
        message = canonical("ed-attendance-cp-plan")
        assert message.envelope.recipients
        body = FULL.render(as_delivered(message))
        assert b"destination" not in body
        assert b"csc-northshire" not in body

    def test_absent_categories_produce_no_resource_and_no_element(self) -> None:
        doc = canonical("ed-attendance-cp-plan").as_dict()
        doc["items"] = [i for i in doc["items"] if i["category"] != "health.attendance"]
        for person in doc["people"]:
            person.pop("addresses", None)
            person.pop("contacts", None)
        body = FULL.render(as_delivered(Message.from_dict(doc)))
        validate_with_library(json.loads(body))
        assert [r["resourceType"] for r in resources(body)] == [
            "MessageHeader",
            "Patient",
            "RelatedPerson",
            "Flag",
        ]
        assert b"address" not in body
        assert b"telecom" not in body
        assert b"Emergency department" not in body

    def test_a_message_with_only_an_envelope_renders(self) -> None:
        message = Message.from_dict(
            {**canonical("referral-to-social-care").as_dict(), "people": [], "items": []}
        )
        body = FULL.render(as_delivered(message))
        validate_with_library(json.loads(body))
        assert [r["resourceType"] for r in resources(body)] == ["MessageHeader"]
        assert FULL.parse(body, default_dictionary()) == as_sent(message)

    def test_markers_and_labels_become_security_labels(self) -> None:
        body = FULL.render(as_delivered(canonical("referral-to-social-care")))
        patient, carer, request = resources(body)[1:]
        assert patient["meta"]["security"] == [{"system": codes.CONFIDENTIALITY, "code": "R"}]
        assert carer["extension"] == [{"url": codes.EXT_PERSON_MARKER, "valueCode": "do-not-contact-family"}]
        assert request["meta"]["security"] == [{"system": codes.ACT_CODE, "code": "SDV"}]

    def test_labels_use_their_own_code_systems(self) -> None:
        doc = canonical("ed-attendance-cp-plan").as_dict()
        doc["items"][0]["labels"] = ["PSY", "V"]
        body = FULL.render(as_delivered(Message.from_dict(doc)))
        assert resources(body)[3]["meta"]["security"] == [
            {"system": codes.ACT_CODE, "code": "PSY"},
            {"system": codes.CONFIDENTIALITY, "code": "V"},
        ]

    def test_adults_without_a_child_are_not_renderable(self) -> None:
        doc = canonical("referral-to-social-care").as_dict()
        doc["people"] = [p for p in doc["people"] if p["role"] != "child"]
        doc["items"] = []
        with pytest.raises(NotRenderable) as info:
            FULL.render(as_delivered(Message.from_dict(doc)))
        assert "Jordan" not in str(info.value)

    def test_an_item_that_does_not_fit_its_resource_is_carried_whole(self) -> None:
        doc = canonical("ed-attendance-cp-plan").as_dict()
        doc["items"][0]["data"]["cp_plan_flag"] = True
        message = Message.from_dict(doc)
        body = FULL.render(as_delivered(message))
        kinds = [r["resourceType"] for r in resources(body)]
        assert kinds[3] == "Communication"
        carrier = resources(body)[3]
        data = carrier["payload"][0]["contentAttachment"]["data"]
        assert json.loads(base64.b64decode(data)) == doc["items"][0]["data"]
        assert FULL.parse(body, default_dictionary()) == as_sent(message)

    def test_a_ref_that_is_no_fhir_id_is_renamed_consistently(self) -> None:
        doc = canonical("ed-attendance-cp-plan").as_dict()
        doc["people"][0]["ref"] = "child_1"
        doc["people"][1]["ref"] = "person-0"  # the name the child would get: must not clash
        for item in doc["items"]:
            item["about"] = ["child_1"]
        body = FULL.render(as_delivered(Message.from_dict(doc)))
        validate_with_library(json.loads(body))
        parsed = FULL.parse(body, default_dictionary())
        assert [p.ref for p in parsed.people] == ["person-0-1", "person-0"]
        assert [i.about for i in parsed.items] == [("person-0-1",), ("person-0-1",)]

    def test_a_correspondence_address_and_a_message_without_source(self) -> None:
        doc = canonical("ed-attendance-cp-plan").as_dict()
        doc["people"][0]["addresses"].append({"use": "correspondence", "lines": ["PO Box 1 (demo)"]})
        message = Message.from_dict(doc)
        body = FULL.render(message)  # not from the gateway: no id, source or received time
        validate_with_library(json.loads(body))
        assert resources(body)[1]["address"][1] == {"type": "postal", "line": ["PO Box 1 (demo)"]}
        assert resources(body)[0]["source"] == {"endpoint": "urn:mash-gateway:partner"}
        assert FULL.parse(body, default_dictionary()) == as_sent(message)

    def test_rendering_is_deterministic(self) -> None:
        message = as_delivered(canonical("referral-to-social-care"))
        assert FULL.render(message) == FULL.render(message)

    def test_rendered_bundles_validate_with_the_library(self) -> None:
        body = FULL.render(as_delivered(canonical("referral-to-social-care")))
        bundle = Bundle.model_validate_json(body)
        assert bundle.type == "message"


class TestParseDetails:
    def test_purpose_defaults_to_safeguarding(self) -> None:
        doc = native("ed-attendance-cp-plan")
        del doc["entry"][0]["resource"]["reason"]
        assert FULL.parse(encode(doc), default_dictionary()).envelope.purpose == "safeguarding"

    def test_a_partners_communication_referral(self) -> None:
        doc = native("referral-to-social-care")
        doc["entry"][3]["resource"] = {
            "resourceType": "Communication",
            "status": "completed",
            "category": [{"text": "Safeguarding concern"}],
            "subject": {"reference": "Patient/hv-child-1"},
            "payload": [{"contentString": "Demo: concern raised at clinic."}],
        }
        msg = FULL.parse(encode(doc), default_dictionary())
        assert [(i.category, i.type, i.data) for i in msg.items] == [
            ("event.summary", "referral-summary", {"category": "Safeguarding concern"}),
            ("event.narrative", "referral-note", {"text": "Demo: concern raised at clinic."}),
        ]

    def test_sender_set_gateway_fields_are_ignored(self) -> None:
        msg = FULL.parse(encode(native("ed-attendance-cp-plan")), default_dictionary())
        assert (msg.envelope.message_id, msg.envelope.source, msg.envelope.received_at) == ("", "", "")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
SEEDS = [native(name) for name in GOLDEN_CASES]
SEED_PATHS = [[p for p in _paths(seed) if p] for seed in SEEDS]


@st.composite
def mutated_bundles(draw: st.DrawFn) -> bytes:
    n = draw(st.sampled_from(range(len(SEEDS))))
    doc = copy.deepcopy(SEEDS[n])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(SEED_PATHS[n]))
        parent: Any = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return encode(doc)


def _ends_in_a_value_or_a_declared_error(adapter: FhirR4Adapter, body: bytes) -> None:
    message: Message | None = None
    violations: list[Violation] = []
    try:
        message = adapter.parse(body, default_dictionary())
    except InvalidInput as exc:
        violations = exc.violations
    if message is None:
        assert violations
        assert all(v.field and v.rule for v in violations)
    else:
        # Whatever is accepted renders to a Bundle the library accepts.
        validate_with_library(json.loads(adapter.render(as_delivered(message))))


TOKENS = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
SCALARS = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=40)
ITEM_DATA = st.dictionaries(
    st.text(min_size=1, max_size=12), SCALARS | st.lists(SCALARS, max_size=3), max_size=4
)
FITTING = {
    "health.attendance": ["setting", "arrived_at", "left_at"],
    "social-care.status": ["status", "start", "end", "responsible_authority"],
    "event.summary": ["category", "reason"],
    "event.narrative": ["text"],
}
FITTING_TYPES = {
    "health.attendance": sorted(codes.ENCOUNTER_TYPES),
    "social-care.status": sorted(codes.FLAG_CODES),
    "event.summary": [codes.REFERRAL_SUMMARY],
    "event.narrative": [codes.REFERRAL_NOTE],
}
FITTING_VALUES = st.sampled_from(
    ["2026-11-21T23:05:00+00:00", "2026-09-01", "active", "inactive", "Demo text", " padded ", "x"]
)


@st.composite
def canonical_items(draw: st.DrawFn, refs: list[str]) -> dict[str, Any]:
    """Items that fit a FHIR resource (or nearly do) and items only a carrier can hold."""
    if draw(st.booleans()):
        category = draw(st.sampled_from(sorted(FITTING)))
        kind = draw(st.sampled_from([*FITTING_TYPES[category], "other-type"]))
        keys = draw(st.lists(st.sampled_from(FITTING[category]), unique=True, min_size=1))
        data: dict[str, Any] = {k: draw(FITTING_VALUES) for k in keys}
    else:
        category = draw(st.sampled_from(sorted(default_dictionary().categories)))
        kind = draw(TOKENS)
        data = draw(ITEM_DATA)
    item: dict[str, Any] = {"category": category, "type": kind, "data": data}
    about = draw(st.lists(st.sampled_from(refs), unique=True, max_size=2))
    if about:
        item["about"] = about
    labels = draw(st.lists(st.sampled_from(sorted(codes.LABEL_SYSTEMS)), unique=True, max_size=2))
    if labels:
        item["labels"] = labels
    return item


@st.composite
def canonical_messages(draw: st.DrawFn) -> Message:
    doc = canonical("referral-to-social-care").as_dict()
    if draw(st.booleans()):
        doc["people"] = doc["people"][:1]
    refs = [p["ref"] for p in doc["people"]]
    doc["items"] = draw(st.lists(canonical_items(refs), max_size=6))
    doc["envelope"]["flags"] = {"do_not_inform_family": True} if draw(st.booleans()) else {}
    return Message.from_dict(doc)


class TestRenderProperties:
    @given(message=canonical_messages())
    @settings(max_examples=200, deadline=None)
    def test_any_message_renders_to_valid_fhir_and_comes_back(self, message: Message) -> None:
        body = LIGHT.render(as_delivered(message))
        validate_with_library(json.loads(body))
        assert FULL.parse(body, default_dictionary()) == as_sent(message)


class TestFuzz:
    @BOTH
    @given(body=st.binary(max_size=400))
    @settings(max_examples=200, deadline=None)
    def test_arbitrary_bytes(self, adapter: FhirR4Adapter, body: bytes) -> None:
        _ends_in_a_value_or_a_declared_error(adapter, body)

    @BOTH
    @given(body=mutated_bundles())
    @settings(max_examples=200, deadline=None)
    def test_mutated_valid_bundles(self, adapter: FhirR4Adapter, body: bytes) -> None:
        _ends_in_a_value_or_a_declared_error(adapter, body)
