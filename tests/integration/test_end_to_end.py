"""The real flow end to end: police -> school (Operation Encompass) and social care, with
the example agreements, real receivers on loopback, and exactly what each received."""

from __future__ import annotations

import json

from gateway.testing import RecordingReceiver
from tests.conftest import RunningGateway
from tests.support import CSC, POLICE, SCHOOL, auth, body, sample_message


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
        async with gateway.http.get(gateway.url(accepted["status_url"]), headers=auth(POLICE)) as r:
            assert r.status == 200
            status = await r.json()
        await receiver.wait_for(lambda: len(receiver.received) == 2, 5)
        by_partner = {x["partner"]: x for x in status["recipients"]}
        assert by_partner[SCHOOL]["decision"] == "permit"
        assert by_partner[CSC]["decision"] == "permit"
        assert "payload" not in json.dumps(status)
