"""Cross-format flows end to end: each agency sends in its own format over its own transport,
the real gateway decides per recipient, and each real recipient gets, in its own format,
exactly what its agreement allows.

Inputs are the adapters' golden files (synthetic people, test-range numbers). Webhook
partners (the school, children's social care) are real aiohttp receivers on loopback; pull
partners read their inbox over HTTP; HL7 goes over MLLP with python-hl7's own client.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import hl7
from hl7.mllp import open_hl7_connection

from adapters import default_registry
from canonical import default_dictionary
from gateway.mllp import MLLP_PORT
from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.support import CSC, SCHOOL, eventually

GOLDEN = Path(__file__).resolve().parents[1] / "adapters" / "golden"
WAIT = 15.0
ED = "ed-northshire-general"
HILLSIDE = "school-hillside-academy"
LA_INCLUSION = "la-northshire-inclusion"
VIRTUAL_SCHOOL = "virtual-school-northshire"
TOKENS = {
    "police-northshire": "demo-police-token",
    "police-southmoor": "demo-southmoor-token",
    "health-visiting-northshire": "demo-hv-token",
    SCHOOL: "demo-school-token",
    CSC: "demo-csc-token",
    ED: "demo-ed-token",
    HILLSIDE: "demo-hillside-token",
    LA_INCLUSION: "demo-la-token",
    VIRTUAL_SCHOOL: "demo-vsh-token",
}


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


async def start(start_gateway: GatewayFactory) -> RunningGateway:
    gw: RunningGateway = await start_gateway(settings_extra={"folder_drop": {"poll_seconds": 0.05}})
    return gw


async def send(gw: RunningGateway, sender: str, content_type: str, data: bytes) -> str:
    headers = {"Authorization": f"Bearer {TOKENS[sender]}", "Content-Type": content_type}
    async with gw.http.post(gw.url("/v1/messages"), data=data, headers=headers) as r:
        assert r.status == 202, await r.text()
        message_id: str = (await r.json())["message_id"]
    return message_id


async def inbox(gw: RunningGateway, partner: str, count: int) -> list[dict[str, Any]]:
    """Pull ``partner``'s inbox, acknowledging each delivery (the next one of the same child
    is handed out only then), until ``count`` arrived; return them in arrival order."""
    got: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {TOKENS[partner]}"}

    async def pulled() -> bool:
        async with gw.http.get(gw.url("/v1/inbox?limit=50"), headers=headers) as r:
            assert r.status == 200, await r.text()
            items = (await r.json())["items"]
        for item in items:
            async with gw.http.post(gw.url(f"/v1/inbox/{item['delivery_id']}/ack"), headers=headers) as r:
                assert r.status == 200, await r.text()
        got.extend(items)
        return len(got) >= count

    await eventually(pulled, WAIT)
    return got


def categories(doc: dict[str, Any]) -> set[str]:
    return {i["category"] for i in doc["items"]}


async def exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


class TestHealthToSocialCare:
    async def test_hl7_ed_attendance_of_a_child_on_a_plan_reaches_social_care_without_clinical_detail(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        # Given the emergency department's A04 for a child whose CP-IS flag it saw (ZCP)
        gw = await start(start_gateway)
        a04 = golden("hl7v2/a04-ed-attendance.hl7").decode().replace("\n", "\r") + "ZCP|CPP|999|20260901\r"
        # When it is sent over MLLP with the library's own client
        reader, writer = await open_hl7_connection("127.0.0.1", gw.app[MLLP_PORT])
        try:
            writer.writemessage(hl7.parse(a04))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readmessage(), WAIT)
        finally:
            writer.close()
            await writer.wait_closed()
        assert str(ack.segment("MSA")[1]) == "AA", str(ack)
        # Then the responsible authority's social care gets it in its JSON
        await receiver.wait_for(lambda: bool(receiver.for_partner(CSC)), WAIT)
        delivery = receiver.for_partner(CSC)[0]
        doc = delivery.payload
        assert categories(doc) == {"health.attendance"}
        assert [p["role"] for p in doc["people"]] == ["child"]
        assert doc["people"][0]["identifiers"] == [{"system": "nhs-number", "value": "9990001014"}]
        assert doc["items"][0]["data"]["setting"] == "Emergency department, Northshire General (demo)"
        # ... and no clinical detail, no contact details, no one else
        for absent in ("Injury", "INJ", "Toni", "07700", "Example Street", "cp-is-flag"):
            assert absent not in delivery.body.decode(), absent

    async def test_fhir_referral_reaches_social_care(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start(start_gateway)
        message_id = await send(
            gw,
            "health-visiting-northshire",
            "application/fhir+json",
            golden("fhir-r4/referral-to-social-care.fhir.json"),
        )
        await receiver.wait_for(lambda: bool(receiver.for_partner(CSC)), WAIT)
        delivery = receiver.for_partner(CSC)[0]
        assert delivery.webhook_id == message_id
        expected = json.loads(golden("fhir-r4/referral-to-social-care.canonical.json"))
        assert categories(delivery.payload) == categories(expected) == {"event.summary", "event.narrative"}
        assert delivery.payload["items"] == expected["items"]
        assert delivery.payload["envelope"]["flags"] == {"risk_of_significant_harm": True}


class TestPoliceFormats:
    async def test_ppn_reaches_social_care_with_the_risk_assessment_but_no_refuge_address(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start(start_gateway)
        await send(
            gw,
            "police-northshire",
            "application/vnd.gateway.police-ppn+json",
            golden("police/ppn.native.json"),
        )
        await receiver.wait_for(lambda: bool(receiver.for_partner(CSC)), WAIT)
        delivery = receiver.for_partner(CSC)[0]
        doc = delivery.payload
        # The fuller set of the MASH agreement; offender history is not in it
        assert categories(doc) == {"event.summary", "event.narrative", "police.risk-assessment"}
        people = {p["ref"]: p for p in doc["people"]}
        assert set(people) == {"child-1", "child-2", "adult-1", "adult-2"}  # not the officer
        # Refuge: the victim and the children carry the marker; their addresses never travel
        assert "ZZ99 9ZZ" not in delivery.body.decode()
        assert people["adult-2"]["addresses"][0]["postcode"] == "ZZ99 8ZZ"
        assert doc["envelope"]["flags"]["risk_of_significant_harm"] is True
        # Nothing goes to the school: no agreement covers a PPN to it, and it was not named
        assert receiver.for_partner(SCHOOL) == []

    async def test_a_force_with_other_field_names_is_configured_not_coded(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        # Southmoor's PPN has its own field names; its mapping file makes it the same message
        gw = await start(start_gateway)
        await send(
            gw,
            "police-southmoor",
            "application/vnd.gateway.police-ppn+json",
            golden("police/southmoor-ppn.native.json"),
        )
        await send(
            gw,
            "police-northshire",
            "application/vnd.gateway.police-ppn+json",
            golden("police/ppn.native.json"),
        )
        await receiver.wait_for(lambda: len(receiver.for_partner(CSC)) == 2, WAIT)
        southmoor, northshire = (r.payload for r in receiver.for_partner(CSC))
        assert southmoor["envelope"]["source"] == "police-southmoor"
        assert southmoor["people"] == northshire["people"]
        assert southmoor["items"] == northshire["items"]

    async def test_encompass_notification_gives_the_school_the_minimum(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start(start_gateway)
        native = json.loads(golden("police/encompass.native.json"))
        # (The golden file says "do not inform the family", which keeps it from a school:
        # the parent-facing role. This notification does not.)
        native["do_not_inform_family"] = False
        await send(
            gw,
            "police-northshire",
            "application/vnd.gateway.police-encompass+json",
            json.dumps(native).encode(),
        )
        await receiver.wait_for(lambda: bool(receiver.for_partner(SCHOOL)), WAIT)
        delivery = receiver.for_partner(SCHOOL)[0]
        assert categories(delivery.payload) == {"event.summary"}
        assert [p["role"] for p in delivery.payload["people"]] == ["child"]
        body = delivery.body.decode()
        withheld = _strings(native["incident"]["circumstances"]) + _strings(
            native["incident"]["childs_voice"]
        )
        assert len(withheld) == 2
        for value in withheld:
            assert value not in body


class TestEducationFormats:
    async def test_suspension_reaches_the_local_authority_social_worker_and_virtual_school(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start(start_gateway)
        message_id = await send(
            gw,
            SCHOOL,
            "application/vnd.gateway.education-exclusion+json",
            golden("education/suspension.json"),
        )
        # The local authority by route; social care and the virtual school head by name
        (la,) = await inbox(gw, LA_INCLUSION, 1)
        (vsh,) = await inbox(gw, VIRTUAL_SCHOOL, 1)
        await receiver.wait_for(lambda: bool(receiver.for_partner(CSC)), WAIT)
        for payload in (la["payload"], vsh["payload"], receiver.for_partner(CSC)[0].payload):
            assert payload["envelope"]["message_id"] == message_id
            assert "education.exclusion" in categories(payload)
            assert categories(payload) <= {"education.exclusion", "social-care.status"}
            assert "education.sen" not in categories(payload)
            assert "education.child-protection-file" not in categories(payload)

    async def test_ctf_dropped_by_one_school_arrives_at_the_next_as_ctf(
        self, start_gateway: GatewayFactory, tmp_path: Path
    ) -> None:
        # Given Riverside's MIS drops a CTF whose destination is Hillside (URN 999002)
        gw = await start(start_gateway)
        folder = gw.config_dir / "drops" / SCHOOL
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread((folder / "ctf-out.xml").write_bytes, golden("ctf/pupil-transfer.xml"))
        await eventually(lambda: exists(folder / "done" / "ctf-out.xml.receipt.json"), WAIT)
        # Then Hillside's inbox holds it, in CTF XML, with what a transfer carries
        (item,) = await inbox(gw, HILLSIDE, 1)
        assert item["media_type"] == "application/vnd.gateway.ctf+xml"
        xml = base64.b64decode(item["payload_base64"]).decode()
        expected = json.loads(golden("ctf/pupil-transfer.canonical.json"))
        upn = expected["people"][0]["identifiers"][0]["value"]
        assert f"<UPN>{upn}</UPN>" in xml
        assert "<DestSchool>" in xml
        assert "<URN>999002</URN>" in xml
        # The CTF agreement releases SEN history, attendance and looked-after status
        for element in ("<SENhistory>", "<Attendance>", "<LookedAfter>", "<Contacts>"):
            assert element in xml, element
        # And the transfer is the pupil's record, parsed back it is the same message
        again = default_registry().by_name["ctf-xml"].parse(xml.encode(), default_dictionary())
        assert categories(again.as_dict()) == categories(expected)


class TestSocialCareBatch:
    async def test_cin_census_return_becomes_plan_flags_for_unscheduled_care(
        self, start_gateway: GatewayFactory
    ) -> None:
        # Given children's social care drops its CIN census return (3 children, 3 plan events)
        gw = await start(start_gateway)
        folder = gw.config_dir / "drops" / CSC
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread((folder / "cin.xml").write_bytes, golden("cin-census/return-3-children.xml"))
        receipt_path = folder / "done" / "cin.xml.receipt.json"
        await eventually(lambda: exists(receipt_path), WAIT)
        receipt = json.loads(await asyncio.to_thread(receipt_path.read_text))
        expected = json.loads(golden("cin-census/return-3-children.canonical.json"))
        assert len(receipt["messages"]) == len(expected)
        # Then the emergency department gets each flag, as FHIR, with no census detail
        items = await inbox(gw, ED, len(expected))
        assert {i["message_id"] for i in items} == {m["message_id"] for m in receipt["messages"]}
        # In order per child: a child's plan start arrives before its end
        arrived = [i["message_id"] for i in items]
        started, ended = receipt["messages"][0]["message_id"], receipt["messages"][1]["message_id"]
        assert arrived.index(started) < arrived.index(ended)
        for item in items:
            assert item["media_type"].startswith("application/fhir+json")
            bundle = item["payload"]
            assert bundle["resourceType"] == "Bundle"
            kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
            assert "Patient" in kinds
            text = json.dumps(bundle)
            for absent in ("Ethnicity", "Disabilit", "AssessmentFactors"):
                assert absent not in text


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if len(value) > 8 else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
