"""Consent-based sharing through the running gateway: recorded consent permits, unknown
consent holds for review (approve / reject / escalate), and a withdrawal cancels deliveries
already queued — the recipient never receives them, and the sender sees "withdrawn"."""

from __future__ import annotations

import json
from typing import Any

from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.support import CSC, EXAMPLE, SCHOOL, auth, eventually

IG = {"Authorization": "Bearer test-ig-lead-token"}
CHILD = {"system": "nhs-number", "value": "9990000026"}


def referral() -> bytes:
    return (EXAMPLE / "messages" / "early-help-referral.json").read_bytes()


async def record_consent(gw: RunningGateway, state: str, **extra: Any) -> dict[str, Any]:
    body = {
        "subject": CHILD,
        "purpose": "early-help",
        "scope": CSC,
        "state": state,
        "decided_by": "parent-with-parental-responsibility",
        **extra,
    }
    async with gw.http.post(gw.url("/v1/consents"), json=body, headers=IG) as r:
        assert r.status == 201, await r.text()
        result: dict[str, Any] = await r.json()
        return result


async def send(gw: RunningGateway) -> str:
    async with gw.http.post(gw.url("/v1/messages"), data=referral(), headers=auth(SCHOOL)) as r:
        assert r.status == 202, await r.text()
        message_id: str = (await r.json())["message_id"]
        return message_id


async def queued_with_consent(gw: RunningGateway, receiver: RecordingReceiver) -> tuple[dict[str, Any], str]:
    """Consent given, then a message queued (tried once) while social care answers 503."""
    given = await record_consent(gw, "given")
    receiver.set_behaviour(CSC, status=503)
    message_id = await send(gw)
    await receiver.wait_for(lambda: receiver.attempts.get(CSC, 0) >= 1, 10)
    return given, message_id


async def status(gw: RunningGateway, message_id: str) -> dict[str, Any]:
    async with gw.http.get(gw.url(f"/v1/messages/{message_id}"), headers=auth(SCHOOL)) as r:
        doc: dict[str, Any] = await r.json()
        return doc


class TestConsentGiven:
    async def test_consent_given_permits_and_withholds_what_the_agreement_does_not_name(
        self, gateway: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        await record_consent(gateway, "given", evidence_ref="EH-FORM-0001")
        message_id = await send(gateway)
        await receiver.wait_for(lambda: len(receiver.for_partner(CSC)) == 1, 10)
        doc = receiver.for_partner(CSC)[0].payload
        assert doc["envelope"]["message_id"] == message_id
        assert {i["category"] for i in doc["items"]} == {"event.summary", "education.attendance"}
        assert "SEN support" not in receiver.for_partner(CSC)[0].body.decode()


class TestWithdrawalWhileQueued:
    async def test_withdrawn_consent_cancels_the_queued_delivery(
        self, gateway: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        # Given consent was given and the message is queued while social care is down
        given, message_id = await queued_with_consent(gateway, receiver)

        # When the parent withdraws consent
        async with gateway.http.post(
            gateway.url(f"/v1/consents/{given['record_id']}/withdraw"),
            json={"reason": "parent withdrew consent by phone"},
            headers=IG,
        ) as r:
            assert r.status == 201
            withdrawal = await r.json()
        assert len(withdrawal["cancelled_deliveries"]) == 1

        # Then, even after social care recovers, the message is never delivered
        receiver.set_behaviour(CSC, status=200)
        later = await send(gateway)  # a new message after withdrawal is denied outright
        doc = await status(gateway, message_id)
        assert doc["recipients"][0]["delivery"] == "withdrawn"
        assert doc["status"] == "closed"
        new = await status(gateway, later)
        assert (new["recipients"][0]["decision"], new["recipients"][0]["rule"]) == ("deny", "consent-refused")
        assert [r for r in receiver.for_partner(CSC) if r.webhook_id == message_id] == []
        kinds = [r.kind async for r in gateway.services.backend.audit_records()]
        assert "delivery.withdrawn" in kinds

    async def test_a_bad_withdrawal_is_rejected_whole_and_changes_nothing(
        self, gateway: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        # Given consent was given and a message is queued while social care is down
        given, message_id = await queued_with_consent(gateway, receiver)
        records_before = len(await gateway.services.backend.all_consents())

        # When a withdrawal names a decider the registry does not know
        async with gateway.http.post(
            gateway.url(f"/v1/consents/{given['record_id']}/withdraw"),
            json={"reason": "by phone", "decided_by": "the-parent"},
            headers=IG,
        ) as r:
            assert r.status == 422
            problem = await r.json()
        assert [(e["field"], e["rule"]) for e in problem["errors"]] == [("/decided_by", "enum")]

        # Then nothing was stored or cancelled: the queued delivery still goes out
        assert len(await gateway.services.backend.all_consents()) == records_before
        receiver.set_behaviour(CSC, status=200)
        await receiver.wait_for(lambda: message_id in receiver.unique(CSC), 10)


class TestReview:
    async def test_unknown_consent_is_held_then_approved(
        self, gateway: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        message_id = await send(gateway)
        assert (await status(gateway, message_id))["status"] == "held"
        async with gateway.http.get(gateway.url("/v1/reviews"), headers=IG) as r:
            reviews = (await r.json())["reviews"]
        assert [(x["message_id"], x["review_role"]) for x in reviews] == [
            (message_id, "early-help-coordinator")
        ]
        assert reviews[0]["decision"]["rule"] == "consent-unknown"
        assert "Riley" not in json.dumps(reviews)
        url = gateway.url(f"/v1/reviews/{reviews[0]['delivery_id']}/approve")
        async with gateway.http.post(url, json={}, headers=IG) as r:
            assert r.status == 422  # a reason is required
        async with gateway.http.post(
            url,
            json={"reason": "verbal consent confirmed"},
            headers={"Authorization": "Bearer demo-operator-token"},
        ) as r:
            assert r.status == 403  # operators cannot approve disclosures
        async with gateway.http.post(url, json={"reason": "verbal consent confirmed"}, headers=IG) as r:
            assert r.status == 200
        await receiver.wait_for(lambda: len(receiver.for_partner(CSC)) == 1, 10)

    async def test_rejected_review_is_never_sent(
        self, gateway: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        message_id = await send(gateway)
        (held,) = await gateway.services.backend.held()
        async with gateway.http.post(
            gateway.url(f"/v1/reviews/{held.delivery_id}/reject"),
            json={"reason": "family declined"},
            headers=IG,
        ) as r:
            assert r.status == 200
        assert (await status(gateway, message_id))["recipients"][0]["delivery"] == "rejected"
        assert receiver.for_partner(CSC) == []

    async def test_deadline_escalates_and_never_shares(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start_gateway()
        message_id = await send(gw)
        backend = gw.services.backend
        await backend._writer.run(
            lambda c: c.execute("UPDATE deliveries SET review_deadline = 0 WHERE state='held'")
        )
        escalated = await backend.escalate_overdue()
        assert [h.message_id for h in escalated] == [message_id]
        assert await backend.escalate_overdue() == []  # once only
        (held,) = await backend.held()
        assert held.escalated
        assert (await status(gw, message_id))["status"] == "held"
        assert receiver.for_partner(CSC) == []


class TestConsentApi:
    async def test_bad_records_are_rejected_precisely(self, gateway: RunningGateway) -> None:
        cases = [
            ({"purpose": "early-help"}, "/", "required"),
            (
                {
                    "subject": CHILD,
                    "purpose": "fun",
                    "scope": CSC,
                    "state": "given",
                    "decided_by": "child-judged-competent",
                },
                "/purpose",
                "known-purpose",
            ),
            (
                {
                    "subject": CHILD,
                    "purpose": "early-help",
                    "scope": "ghost",
                    "state": "given",
                    "decided_by": "child-judged-competent",
                },
                "/scope",
                "known-partner",
            ),
            (
                {
                    "subject": CHILD,
                    "purpose": "early-help",
                    "scope": CSC,
                    "state": "maybe",
                    "decided_by": "child-judged-competent",
                },
                "/state",
                "enum",
            ),
        ]
        for body, field, rule in cases:
            async with gateway.http.post(gateway.url("/v1/consents"), json=body, headers=IG) as r:
                assert r.status == 422
                errors = (await r.json())["errors"]
            assert (field, rule) in [(e["field"], e["rule"]) for e in errors]
        async with gateway.http.post(gateway.url("/v1/consents"), json={}, headers=auth(SCHOOL)) as r:
            assert r.status == 403

    async def test_query_by_subject_never_echoes_the_identifier(self, gateway: RunningGateway) -> None:
        await record_consent(gateway, "refused", decided_by="child-judged-competent")
        async with gateway.http.get(gateway.url("/v1/consents"), params=CHILD, headers=IG) as r:
            text = await r.text()
        records = json.loads(text)["records"]
        assert [(x["state"], x["decided_by"]) for x in records] == [("refused", "child-judged-competent")]
        assert CHILD["value"] not in text


class TestPolicyReload:
    async def test_reload_swaps_atomically_and_keeps_the_old_one_if_invalid(
        self, gateway: RunningGateway
    ) -> None:
        before = gateway.services.policy.current.version
        path = gateway.config_dir / "agreements.yaml"
        good = path.read_text()
        path.write_text(good.replace("Operation Encompass notifications to schools", "Encompass (renamed)"))
        async with gateway.http.post(gateway.url("/v1/admin/policy/reload"), headers=IG) as r:
            assert r.status == 200
            after = (await r.json())["policy_version"]
        assert after != before
        assert gateway.services.policy.current.version == after
        path.write_text(good.replace("to: [csc-northshire]", "to: [ghost-partner]", 1))
        async with gateway.http.post(gateway.url("/v1/admin/policy/reload"), headers=IG) as r:
            assert r.status == 422
            problem = await r.json()
        assert any("known-partner" in e["message"] for e in problem["errors"])
        assert str(gateway.config_dir) not in json.dumps(problem)  # no server paths
        assert gateway.services.policy.current.version == after

    async def test_file_change_is_picked_up(self, start_gateway: GatewayFactory) -> None:
        gw = await start_gateway()
        before = gw.services.policy.current.version
        path = gw.config_dir / "routes.yaml"
        path.write_text(
            path.read_text() + "\n  - event_types: [police.marac-referral]\n    to: [csc-northshire]\n"
        )

        async def changed() -> bool:
            return bool(gw.services.policy.current.version != before)

        await eventually(changed, 15)
