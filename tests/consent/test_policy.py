"""Compiling policy: schema errors and broken references name the file, path and rule;
the version is a content hash; routing gives candidates, never permissions."""

from __future__ import annotations

import pytest

from canonical import Message, default_dictionary
from consent import (
    PolicyError,
    PolicySnapshot,
    candidates,
    compile_policy,
    resolve_named_recipients,
    unknown_named_recipients,
)
from tests.consent.builders import CSC, SCHOOL, SENDER, agreement, documents, policy
from tests.support import sample_message


def problems(docs: dict[str, object]) -> set[tuple[str, str, str]]:
    with pytest.raises(PolicyError) as info:
        compile_policy(docs, default_dictionary())
    return {(f, v.field, v.rule) for f, v in info.value.problems}


class TestCompile:
    def test_version_is_a_stable_content_hash(self) -> None:
        assert policy(agreement()).version == policy(agreement()).version
        assert policy(agreement()).version != policy(agreement(title="Other")).version

    def test_schema_error_names_file_path_and_rule(self) -> None:
        bad = agreement()
        del bad["lawful_basis"]
        assert ("agreements.yaml", "/agreements/0", "required") in problems(documents(bad))

    @pytest.mark.parametrize(
        ("flow", "path", "rule"),
        [
            ({"to": ["ghost"]}, "/agreements/0/flows/0/to/0", "known-partner"),
            ({"categories": ["gossip"]}, "/agreements/0/flows/0/categories/0", "known-category"),
            ({"event_types": ["x.y"]}, "/agreements/0/flows/0/event_types/0", "known-event-type"),
            ({"purposes": ["fun"]}, "/agreements/0/flows/0/purposes/0", "known-purpose"),
            ({"person_roles": ["pet"]}, "/agreements/0/flows/0/person_roles/0", "known-role"),
        ],
    )
    def test_unknown_references_are_errors(self, flow: dict[str, object], path: str, rule: str) -> None:
        assert ("agreements.yaml", path, rule) in problems(documents(agreement(flow=flow)))

    def test_duplicate_ids_and_reversed_dates(self) -> None:
        found = problems(documents(agreement(), agreement(valid_until="2025-01-01")))
        assert ("agreements.yaml", "/agreements/1/id", "unique-id") in found
        assert ("agreements.yaml", "/agreements/1/valid_until", "valid-range") in found

    def test_missing_file(self) -> None:
        docs = documents(agreement())
        del docs["routes.yaml"]
        assert ("routes.yaml", "/", "file-required") in problems(docs)

    def test_route_to_unknown_partner(self) -> None:
        docs = documents(
            agreement(), routes=[{"event_types": ["police.domestic-abuse-incident"], "to": ["ghost"]}]
        )
        assert ("routes.yaml", "/routes/0/to/0", "known-partner") in problems(docs)


class TestRouting:
    def test_candidates_are_routes_then_named_without_the_sender(self) -> None:
        doc = sample_message()
        doc["envelope"].update(source=SENDER, recipients=[SCHOOL, CSC, SENDER])
        msg = Message.from_dict(doc)
        assert candidates(msg, policy(agreement())) == (CSC, SCHOOL)

    def test_route_limited_to_senders(self) -> None:
        routes = [{"event_types": ["police.domestic-abuse-incident"], "from": [CSC], "to": [SCHOOL]}]
        doc = sample_message()
        doc["envelope"].update(source=SENDER, recipients=[])
        assert candidates(Message.from_dict(doc), policy(agreement(), routes=routes)) == ()

    def test_unknown_named_recipients(self) -> None:
        doc = sample_message()
        doc["envelope"].update(source=SENDER, recipients=["ghost", CSC])
        assert unknown_named_recipients(Message.from_dict(doc), policy(agreement())) == ("ghost",)


class TestRecipientReferences:
    """A sender may name a recipient by school URN or ODS code instead of partner id."""

    @staticmethod
    def snapshot() -> PolicySnapshot:
        docs = documents(agreement())
        by_id = {p["id"]: p for p in docs["partners.yaml"]["partners"]}
        by_id[SCHOOL]["identifiers"] = {"school_urn": "999001", "la_code": "999"}
        by_id[CSC]["identifiers"] = {"ods_code": "ZZZ91", "la_code": "999"}
        by_id[SENDER]["identifiers"] = {"ods_code": "ZZZ92", "la_code": "999"}
        return compile_policy(docs, default_dictionary())

    def named(self, *recipients: str) -> Message:
        doc = sample_message()
        doc["envelope"].update(source=SENDER, recipients=list(recipients))
        return Message.from_dict(doc)

    def test_references_become_partner_ids(self) -> None:
        msg = resolve_named_recipients(
            self.named("school-urn.999001", "ods-code.zzz91", SCHOOL), self.snapshot()
        )
        assert msg.envelope.recipients == (SCHOOL, CSC)

    def test_an_la_code_names_that_authority_s_social_care_only(self) -> None:
        # The sender and social care share LA code 999; only one of them is social care.
        msg = resolve_named_recipients(self.named("la-code.999"), self.snapshot())
        assert msg.envelope.recipients == (CSC,)

    @pytest.mark.parametrize(
        "reference",
        ["school-urn.000000", "la-code.998", "fax.999001", "school-urn.", "ods-code.zzz9"],
    )
    def test_unknown_or_unsupported_references_stay_and_are_refused(self, reference: str) -> None:
        policy_ = self.snapshot()
        msg = resolve_named_recipients(self.named(reference), policy_)
        assert msg.envelope.recipients == (reference,)
        assert unknown_named_recipients(msg, policy_) == (reference,)

    def test_a_message_without_references_is_returned_as_it_is(self) -> None:
        msg = self.named(SCHOOL)
        assert resolve_named_recipients(msg, self.snapshot()) is msg
