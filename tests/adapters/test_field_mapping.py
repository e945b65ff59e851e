"""Field mapping: renames, value maps, dates and defaults reshape a partner's document;
errors point into the partner's document; a bad mapping document is refused at start-up
with the pointer inside the mapping and the rule."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import AdapterOptionsError
from adapters.field_mapping import FieldMapping, format_pointer, parse_pointer
from canonical import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
SOUTHMOOR = ROOT / "deploy" / "example" / "mappings" / "fictional-force-ppn.yaml"


def mapping(**parts: Any) -> FieldMapping:
    return FieldMapping.compile(parts)


def rename(source: str, target: str) -> dict[str, str]:
    return {"from": source, "to": target}


class TestPointers:
    @pytest.mark.parametrize(
        ("text", "path"),
        [("/a/b", ("a", "b")), ("/a~1b/c~0d", ("a/b", "c~d")), ("/*/0", ("*", "0")), ("", ())],
    )
    def test_parse_and_format_are_inverse(self, text: str, path: tuple[str, ...]) -> None:
        assert parse_pointer(text) == path
        assert format_pointer(path) == (text or "/")


class TestRenames:
    def test_a_top_level_field_is_renamed_and_the_rest_kept(self) -> None:
        m = mapping(renames=[rename("/PPNNumber", "/ppn_reference")])
        assert m.apply({"PPNNumber": "X-1", "summary": "s"}, "t") == {"ppn_reference": "X-1", "summary": "s"}

    def test_renames_apply_in_order_container_first_then_its_fields(self) -> None:
        m = mapping(
            renames=[
                rename("/Subjects", "/people"),
                rename("/people/*/Surname", "/people/*/family_name"),
                rename("/people/*/Phones", "/people/*/contacts"),
                rename("/people/*/contacts/*/No", "/people/*/contacts/*/value"),
            ]
        )
        doc = {"Subjects": [{"Surname": "A", "Phones": [{"No": "1"}, {"No": "2"}]}, {"Surname": "B"}]}
        assert m.apply(doc, "t") == {
            "people": [
                {"family_name": "A", "contacts": [{"value": "1"}, {"value": "2"}]},
                {"family_name": "B"},
            ]
        }

    def test_the_partners_document_is_not_changed(self) -> None:
        m = mapping(renames=[rename("/A/B", "/c")], values=[{"at": "/c", "map": {"x": "y"}}])
        doc = {"A": {"B": "x"}}
        before = copy.deepcopy(doc)
        m.apply(doc, "t")
        assert doc == before

    def test_an_object_emptied_by_the_moves_is_removed(self) -> None:
        m = mapping(renames=[rename("/Outer/Inner/Grade", "/risk_assessment/grade")])
        assert m.apply({"Outer": {"Inner": {"Grade": "H"}}}, "t") == {"risk_assessment": {"grade": "H"}}

    def test_an_object_with_fields_left_stays_for_the_schema_to_judge(self) -> None:
        m = mapping(renames=[rename("/Outer/Grade", "/grade")])
        assert m.apply({"Outer": {"Grade": "H", "Other": 1}}, "t") == {"grade": "H", "Outer": {"Other": 1}}

    def test_an_array_whose_elements_all_moved_out_is_removed(self) -> None:
        m = mapping(renames=[rename("/Subjects/*/Name", "/people/*/family_name")])
        assert m.apply({"Subjects": [{"Name": "A"}, {"Name": "B"}]}, "t") == {
            "people": [{"family_name": "A"}, {"family_name": "B"}]
        }

    def test_an_index_in_a_pattern_picks_one_element(self) -> None:
        m = mapping(renames=[rename("/Persons/0/Surname", "/victim/family_name")])
        assert m.apply({"Persons": [{"Surname": "A"}, {"Surname": "B"}]}, "t") == {
            "Persons": [{}, {"Surname": "B"}],
            "victim": {"family_name": "A"},
        }

    def test_a_target_index_appends_to_an_array(self) -> None:
        m = mapping(renames=[rename("/Tag", "/tags/0"), rename("/Child", "/people/0/given_name")])
        assert m.apply({"Tag": "t", "Child": "c"}, "t") == {"tags": ["t"], "people": [{"given_name": "c"}]}

    @pytest.mark.parametrize(
        ("document", "target"),
        [
            ({"Tag": "t", "tags": ["taken"]}, "/tags/0"),
            ({"Tag": "t", "tags": []}, "/tags/3"),
            ({"Tag": "t", "tags": [{}]}, "/tags/5/x"),
        ],
    )
    def test_a_taken_or_out_of_range_array_target_is_refused(self, document: Any, target: str) -> None:
        with pytest.raises(InvalidInput) as info:
            mapping(renames=[rename("/Tag", target)]).apply(document, "t")
        assert [(v.field, v.rule) for v in info.value.violations] == [("/Tag", "field-mapping-target")]

    def test_a_missing_source_is_not_an_error(self) -> None:
        m = mapping(renames=[rename("/Absent", "/present")])
        assert m.apply({"x": 1}, "t") == {"x": 1}

    def test_a_document_that_is_not_an_object_passes_through(self) -> None:
        m = mapping(renames=[rename("/A", "/b")])
        assert m.apply([1, 2], "t") == [1, 2]

    def test_a_target_already_present_is_refused_with_the_partners_pointer(self) -> None:
        m = mapping(renames=[rename("/Surname", "/family_name")])
        with pytest.raises(InvalidInput) as info:
            m.apply({"Surname": "CANARY-A", "family_name": "CANARY-B"}, "police-ppn")
        (violation,) = info.value.violations
        assert (violation.field, violation.rule) == ("/Surname", "field-mapping-target")
        assert "CANARY" not in json.dumps(violation.as_dict()) + str(info.value)
        assert info.value.adapter == "police-ppn"

    def test_a_target_through_a_scalar_is_refused(self) -> None:
        m = mapping(renames=[rename("/Grade", "/risk_assessment/grade")])
        with pytest.raises(InvalidInput) as info:
            m.apply({"Grade": "H", "risk_assessment": "CANARY"}, "t")
        assert info.value.violations[0].rule == "field-mapping-target"
        assert "CANARY" not in str(info.value.violations)


class TestValuesDatesDefaults:
    def test_a_value_in_the_map_is_replaced_by_any_scalar(self) -> None:
        m = mapping(values=[{"at": "/people/*/flag", "map": {"Y": True, "N": False}}])
        doc = {"people": [{"flag": "Y"}, {"flag": "N"}, {"flag": "maybe"}, {"flag": 1}]}
        assert m.apply(doc, "t") == {
            "people": [{"flag": True}, {"flag": False}, {"flag": "maybe"}, {"flag": 1}]
        }

    def test_a_wildcard_at_the_end_maps_each_array_element(self) -> None:
        m = mapping(values=[{"at": "/answers/*", "map": {"Y": "yes", "N": "no"}}])
        assert m.apply({"answers": ["Y", "N", "Y"]}, "t") == {"answers": ["yes", "no", "yes"]}

    def test_a_date_is_converted_to_iso(self) -> None:
        m = mapping(dates=[{"at": "/people/*/dob", "format": "%d/%m/%Y"}])
        assert m.apply({"people": [{"dob": "14/03/2017"}]}, "t") == {"people": [{"dob": "2017-03-14"}]}

    def test_a_date_not_in_the_format_names_the_partners_field_and_the_format_only(self) -> None:
        m = mapping(
            renames=[rename("/Subjects", "/people"), rename("/people/*/DOB", "/people/*/dob")],
            dates=[{"at": "/people/*/dob", "format": "%d/%m/%Y"}],
        )
        with pytest.raises(InvalidInput) as info:
            m.apply({"Subjects": [{"DOB": "14/03/2017"}, {"DOB": "CANARY-31/02/2017"}]}, "t")
        (violation,) = info.value.violations
        assert (violation.field, violation.rule) == ("/Subjects/1/DOB", "field-mapping-date-format")
        assert "%d/%m/%Y" in violation.message
        assert "CANARY" not in json.dumps(violation.as_dict())

    def test_a_default_fills_only_what_is_absent(self) -> None:
        m = mapping(
            defaults=[{"at": "/people/*/role", "value": "household-member"}, {"at": "/flag", "value": False}]
        )
        doc = {"people": [{"role": "child"}, {}]}
        assert m.apply(doc, "t") == {
            "people": [{"role": "child"}, {"role": "household-member"}],
            "flag": False,
        }

    def test_a_default_is_not_set_in_an_object_that_does_not_exist(self) -> None:
        m = mapping(defaults=[{"at": "/risk_assessment/grade", "value": "standard"}])
        assert m.apply({"x": 1}, "t") == {"x": 1}


class TestNativePointer:
    m = mapping(
        renames=[
            rename("/Subjects", "/people"),
            rename("/people/*/Surname", "/people/*/family_name"),
            rename("/RiskAssessment/DASH/Responses", "/risk_assessment/dash/answers"),
        ]
    )

    @pytest.mark.parametrize(
        ("ours", "theirs"),
        [
            ("/people/3/family_name", "/Subjects/3/Surname"),
            ("/people/3/given_name", "/Subjects/3/given_name"),
            ("/people", "/Subjects"),
            ("/risk_assessment/dash/answers/7", "/RiskAssessment/DASH/Responses/7"),
            ("/narrative", "/narrative"),
            ("/", "/"),
            ("canonical:/people/0/ref", "canonical:/people/0/ref"),
        ],
    )
    def test_runs_the_renames_backwards(self, ours: str, theirs: str) -> None:
        assert self.m.native_pointer(ours) == theirs


class TestCompile:
    def test_the_southmoor_example_compiles_into_an_immutable_mapping(self) -> None:
        m = FieldMapping.compile(yaml.safe_load(SOUTHMOOR.read_text()))
        assert m.format == "police-ppn"
        assert len(m.renames) > 20
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.format = "other"  # type: ignore[misc]
        with pytest.raises(TypeError):
            m.values[0].table["R"] = "x"  # type: ignore[index]

    @pytest.mark.parametrize(
        ("document", "where", "rule"),
        [
            ("not a mapping", "/", "type"),
            ({"renames": [], "extra": 1}, "/", "additionalProperties"),
            ({"renames": [{"from": "/a"}]}, "/renames/0", "required"),
            ({"renames": [rename("no-slash", "/b")]}, "/renames/0/from", "pattern"),
            ({"renames": [rename("/a", "/b/~2")]}, "/renames/0/to", "pattern"),
            ({"values": [{"at": "/a", "map": {"x": ["list"]}}]}, "/values/0/map/x", "type"),
            ({"renames": [{"from": "/a/*/b", "to": "/c"}]}, "/renames/0", "same-wildcards"),
            ({"renames": [{"from": "/a/*", "to": "/b/*"}]}, "/renames/0/from", "names-a-field"),
            ({"renames": [{"from": "/a/0", "to": "/b"}]}, "/renames/0/from", "names-a-field"),
            ({"renames": [{"from": "/a", "to": "/a/b"}]}, "/renames/0", "disjoint-paths"),
            ({"dates": [{"at": "/d", "format": "%Y"}]}, "/dates/0/format", "whole-date"),
            ({"dates": [{"at": "/d", "format": "%Y-%m-%dT%H:%M"}]}, "/dates/0/format", "date-directives"),
            ({"dates": [{"at": "/d", "format": "%d/%m/%Y/%d"}]}, "/dates/0/format", "round-trips"),
            ({"values": [{"at": "/a", "map": {True: "yes"}}]}, "/values/0/map", "string-keys"),
            ({"defaults": [{"at": "/a/*", "value": 1}]}, "/defaults/0/at", "names-a-field"),
            ({"renames": [rename("/a", "/b")] * 501}, "/renames", "maxItems"),
        ],
    )
    def test_a_bad_mapping_is_refused_with_its_pointer_and_rule(
        self, document: Any, where: str, rule: str
    ) -> None:
        with pytest.raises(AdapterOptionsError) as info:
            FieldMapping.compile(document)
        assert f"{where} ({rule})" in info.value.detail


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["Subjects", "Surname", "DOB", "people", "x", "RiskAssessment"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


_pointer = st.lists(st.sampled_from(["a", "b", "*", "0", "people", "x~1y"]), min_size=1, max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)


class TestFuzz:
    southmoor = FieldMapping.compile(yaml.safe_load(SOUTHMOOR.read_text()))

    @settings(max_examples=200, deadline=None)
    @given(document=_json)
    def test_any_document_is_reshaped_or_refused_and_never_changed(self, document: Any) -> None:
        before = copy.deepcopy(document)
        try:
            out = self.southmoor.apply(document, "police-ppn")
        except InvalidInput as exc:
            out = exc
        if isinstance(out, InvalidInput):
            assert out.violations
            assert all(v.field.startswith("/") for v in out.violations)
        else:
            assert out is not document or not isinstance(document, (dict, list))
        assert document == before

    @settings(max_examples=200, deadline=None)
    @given(
        document=st.dictionaries(
            st.sampled_from(["renames", "values", "dates", "defaults", "format"]),
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "from": _pointer,
                        "to": _pointer,
                        "at": _pointer,
                        "map": st.dictionaries(
                            st.text(max_size=3), st.none() | st.booleans() | st.text(max_size=3)
                        ),
                        "format": st.text(alphabet="%YmdbBHM/-x ", max_size=10),
                        "value": st.integers(),
                    },
                ),
                max_size=3,
            )
            | st.text(max_size=5),
            max_size=4,
        )
    )
    def test_any_mapping_document_compiles_or_is_refused_with_a_rule(self, document: Any) -> None:
        try:
            compiled: FieldMapping | AdapterOptionsError = FieldMapping.compile(document)
        except AdapterOptionsError as exc:
            compiled = exc
        if isinstance(compiled, AdapterOptionsError):
            assert compiled.detail.startswith("field_mapping /")
        else:
            try:
                applied: Any = compiled.apply({"a": [{"b": "x"}], "people": {"x/y": "1"}}, "t")
            except InvalidInput as exc:  # a date in the wrong format, a taken target
                applied = exc
            assert not isinstance(applied, InvalidInput) or applied.violations
