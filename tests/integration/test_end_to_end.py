"""The real flow end to end: police -> school (Operation Encompass) and social care, with
the example agreements, real receivers on loopback, and exactly what each received."""

from __future__ import annotations

import json
from typing import Any

from gateway.testing import RecordingReceiver
from tests.conftest import RunningGateway
from tests.support import CSC, POLICE, SCHOOL, auth, body, eventually, sample_message


class TestDomesticAbuseNotification:
    async def test_school_gets_encompass_minimum_and_social_care_the_fuller_set(
        self, gateway: RunningGateway, receiver: RecordingReceiver
    ) -> None:
        # Given the police send a domestic-abuse notification naming the child's school
        doc = sample_message()
        async with gateway.http.post(gateway.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
            assert r.status == 202, await r.text()
            accepted = await r.json()
        message_id = accepted["message_id"]
        assert accepted["status_url"] == f"/v1/messages/{message_id}"

        # When the deliveries arrive
        await receiver.wait_for(lambda: bool(receiver.for_partner(SCHOOL) and receiver.for_partner(CSC)), 10)

        # Then the school's copy holds the child's identity and the incident summary only
        school = receiver.for_partner(SCHOOL)[0]
        assert school.webhook_id == message_id
        sdoc = school.payload
        assert [p["role"] for p in sdoc["people"]] == ["child"]
        assert "addresses" not in sdoc["people"][0]
        assert {i["category"] for i in sdoc["items"]} == {"event.summary"}
        raw = school.body.decode()
        for absent in (
            "Demo narrative",
            "childs_voice",
            "dash",
            "Refuge",
            "ZZ99",
            "Casey",
            "Jordan",
            "recipients",
        ):
            assert absent not in raw, absent

        # And social care gets narrative and risk assessment, but never the refuge address
        cdoc = receiver.for_partner(CSC)[0].payload
        assert {i["category"] for i in cdoc["items"]} == {
            "event.summary",
            "event.narrative",
            "police.risk-assessment",
        }
        roles = {p["ref"]: p for p in cdoc["people"]}
        assert set(roles) == {"child-1", "parent-1", "adult-2"}
        assert "addresses" not in roles["parent-1"]
        assert roles["child-1"]["addresses"][0]["postcode"] == "ZZ99 1ZZ"
        assert "Refuge" not in receiver.for_partner(CSC)[0].body.decode()
        assert receiver.rejected_signatures == 0

        # And the sender sees per-recipient status, without anyone's content
        status: dict[str, Any] = {}

        async def delivered() -> bool:
            nonlocal status
            async with gateway.http.get(gateway.url(accepted["status_url"]), headers=auth(POLICE)) as r:
                assert r.status == 200
                status = await r.json()
            return bool(status["status"] == "delivered")

        await eventually(delivered, 10)
        by_partner = {x["partner"]: x for x in status["recipients"]}
        assert {p: (x["decision"], x["delivery"]) for p, x in by_partner.items()} == {
            SCHOOL: ("permit", "delivered"),
            CSC: ("permit", "delivered"),
        }
        assert "Example" not in json.dumps(status)


class TestPullPartner:
    async def test_a_pull_partner_fetches_and_acknowledges(self, gateway: RunningGateway) -> None:
        # Given social care tells the police the outcome of their referral (police pull)
        doc = sample_message()
        doc["envelope"].update(
            event_type="social-care.referral-outcome", purpose="referral-feedback", recipients=[POLICE]
        )
        doc["items"] = [
            {
                "category": "event.outcome",
                "type": "outcome",
                "about": ["child-1"],
                "data": {"outcome": "accepted", "worker": "Duty social worker (demo)"},
            }
        ]
        async with gateway.http.post(gateway.url("/v1/messages"), data=body(doc), headers=auth(CSC)) as r:
            assert r.status == 202
            message_id = (await r.json())["message_id"]
        # When the police system pulls its inbox
        async with gateway.http.get(gateway.url("/v1/inbox?limit=10"), headers=auth(POLICE)) as r:
            assert r.status == 200
            items = (await r.json())["items"]
        assert [i["message_id"] for i in items] == [message_id]
        payload = items[0]["payload"]
        assert {i["category"] for i in payload["items"]} == {"event.outcome"}
        assert [p["role"] for p in payload["people"]] == ["child"]
        # Then a second pull does not return it again while leased, and an ack completes it
        async with gateway.http.get(gateway.url("/v1/inbox"), headers=auth(POLICE)) as r:
            assert (await r.json())["items"] == []
        ack = gateway.url(f"/v1/inbox/{items[0]['delivery_id']}/ack")
        async with gateway.http.post(ack, headers=auth(SCHOOL)) as r:
            assert r.status == 404  # not the school's delivery
        async with gateway.http.post(ack, headers=auth(POLICE)) as r:
            assert r.status == 200
        async with gateway.http.post(ack, headers=auth(POLICE)) as r:
            assert r.status == 404  # already acknowledged
        async with gateway.http.get(gateway.url(f"/v1/messages/{message_id}"), headers=auth(CSC)) as r:
            status = await r.json()
        assert status["status"] == "delivered"
        async with gateway.http.get(gateway.url("/v1/inbox?limit=0"), headers=auth(POLICE)) as r:
            assert r.status == 422
