"""No personal data in logs or in the database file: messages full of unique canary
strings go through the whole pipeline (accepted, rejected, delivered, failed, retried,
dead-lettered), in canonical JSON and in the native formats over every transport (HL7 v2
over MLLP, FHIR over HTTP, CTF by folder drop); no canary may appear in the logs, in an
error report or in clear text on disk."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hl7.mllp import open_hl7_connection

from gateway.logging import configure_logging
from gateway.mllp import MLLP_PORT
from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory
from tests.support import CSC, POLICE, SCHOOL, auth, body, eventually, read_all, sample_message


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging("debug", stream=buf)
    yield buf
    structlog.reset_defaults()
    logging.basicConfig(force=True)


def canary_message(n: int) -> tuple[dict[str, Any], list[str]]:
    """The sample message with every free-text value replaced by a unique canary."""
    doc = sample_message()
    canaries: list[str] = []

    def c(prefix: str) -> str:
        value = f"CANARY{n:03d}{prefix}{len(canaries):03d}"
        canaries.append(value)
        return value

    for person in doc["people"]:
        person["name"] = {"given": c("G"), "family": c("F")}
        for a in person.get("addresses", []):
            a["lines"] = [c("L"), c("L")]
            a["postcode"] = c("P")[:10]
            canaries[-1] = a["postcode"]
        for contact in person.get("contacts", []):
            contact["value"] = c("T")
    doc["people"][2]["identifiers"] = [{"system": "police-reference", "value": c("R")}]
    for item in doc["items"]:
        item["data"] = {k: (c("D") if isinstance(v, str) else v) for k, v in item["data"].items()}
    doc["envelope"]["sender_reference"] = c("S")
    return doc, canaries


class TestNoPersonalData:
    async def test_canaries_never_reach_logs_or_disk(
        self, captured_logs: io.StringIO, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        # Given a gateway whose CSC endpoint fails permanently (so errors, retries and dead
        # letters are logged too) while the school's works
        gw = await start_gateway(delivery={"max_attempts": 2})
        receiver.set_behaviour(CSC, status=500)
        sent: list[str] = []
        for n in range(10):
            doc, canaries = canary_message(n)
            sent += canaries
            async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
                assert r.status == 202, await r.text()
        # and a rejected message full of canaries
        bad, bad_canaries = canary_message(99)
        bad["people"][0]["birth_date"] = bad_canaries[0]
        async with gw.http.post(gw.url("/v1/messages"), data=body(bad), headers=auth(POLICE)) as r:
            assert r.status == 422
        sent += bad_canaries

        # When everything has been delivered to the school and dead-lettered for CSC
        await receiver.wait_for(lambda: len(receiver.unique(SCHOOL)) == 10, 15)

        async def all_dead() -> bool:
            return len(await gw.services.backend.dead_letters(CSC, 100)) == 10

        await eventually(all_dead, 15)

        # Then the canaries did travel (positive control: the school saw the child's name) ...
        school_text = b"".join(r.body for r in receiver.for_partner(SCHOOL)).decode()
        assert sum(c in school_text for c in sent) >= 10
        # ... but no canary is in the logs or anywhere in the database files
        logs = captured_logs.getvalue()
        assert "message.accepted" in logs
        assert "delivery.failed" in logs
        assert [c for c in sent if c in logs] == []
        data_dir = gw.services.deployment.settings.db_path.parent
        disk = await asyncio.to_thread(read_all, Path(data_dir), "gateway.db*")
        assert b"police-northshire" in disk  # positive control: metadata is there in clear
        assert [c for c in sent if c.encode() in disk] == []


GOLDEN = Path(__file__).resolve().parents[1] / "adapters" / "golden"


def with_canaries(raw: bytes, names: dict[str, str]) -> bytes:
    text = raw.decode()
    for name, canary in names.items():
        assert name in text, name  # the substitution really happens
        text = text.replace(name, canary)
    return text.encode()


class TestNoPersonalDataInNativeFormats:
    async def test_canaries_in_every_transport_never_reach_the_logs(
        self, captured_logs: io.StringIO, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start_gateway(settings_extra={"folder_drop": {"poll_seconds": 0.05}})
        sent: list[str] = []

        def names(prefix: str, *found: str) -> dict[str, str]:
            out = {n: f"CANARY{prefix}{i:02d}" for i, n in enumerate(found)}
            sent.extend(out.values())
            return out

        # HL7 v2 over MLLP: one accepted, one refused for a wrong NHS check digit
        # (ZCP: the child is on a plan, so the attendance goes to social care)
        a04 = (GOLDEN / "hl7v2" / "a04-ed-attendance.hl7").read_bytes().replace(
            b"\n", b"\r"
        ) + b"ZCP|CPP|999\r"
        good = with_canaries(a04, names("H", "Testcase", "Example Street", "07700 900011"))
        bad = with_canaries(a04.replace(b"9990001014", b"9990001015"), names("X", "Testcase", "Toni"))
        reader, writer = await open_hl7_connection("127.0.0.1", gw.app[MLLP_PORT])
        try:
            acks = []
            for frame in (good, bad):
                writer.writeblock(frame)
                await writer.drain()
                acks.append(str((await asyncio.wait_for(reader.readmessage(), 10)).segment("MSA")[1]))
        finally:
            writer.close()
            await writer.wait_closed()
        assert acks == ["AA", "AE"]
        # FHIR over HTTP: one accepted, one refused by the library's validation
        fhir = (GOLDEN / "fhir-r4" / "referral-to-social-care.fhir.json").read_bytes()
        headers = {**auth("health-visiting-northshire"), "Content-Type": "application/fhir+json"}
        for data, status in (
            (with_canaries(fhir, names("F", "Example", "Alex")), 202),
            (with_canaries(fhir, names("B", "2024-02-29", "Jordan")), 422),
        ):
            async with gw.http.post(gw.url("/v1/messages"), data=data, headers=headers) as r:
                assert r.status == status, await r.text()
        # A CTF dropped in a folder, and one refused for a wrong UPN check letter
        ctf = (GOLDEN / "ctf" / "pupil-transfer.xml").read_bytes()
        folder = gw.config_dir / "drops" / SCHOOL
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        good_ctf = with_canaries(ctf, names("C", "Testcase", "Casey"))
        await asyncio.to_thread((folder / "good.xml").write_bytes, good_ctf)
        upn = ctf.decode().split("<UPN>")[1].split("</UPN>")[0]
        wrong = ("A" if upn[0] != "A" else "B") + upn[1:]
        bad_ctf = with_canaries(ctf.replace(upn.encode(), wrong.encode()), names("D", "Minder"))
        await asyncio.to_thread((folder / "bad.xml").write_bytes, bad_ctf)

        async def filed() -> bool:
            return await asyncio.to_thread(
                lambda: (folder / "done" / "good.xml").exists() and (folder / "rejected" / "bad.xml").exists()
            )

        await eventually(filed, 15)
        await receiver.wait_for(lambda: len(receiver.for_partner(CSC)) >= 2, 15)

        # Positive control: the accepted canaries travelled to social care
        csc_text = b"".join(r.body for r in receiver.for_partner(CSC)).decode()
        assert any(c in csc_text for c in sent)
        logs = captured_logs.getvalue()
        for event in ("mllp.", "message.accepted", "folder_drop.rejected"):
            assert event in logs, event
        assert [c for c in sent if c in logs] == []
        report = await asyncio.to_thread((folder / "rejected" / "bad.xml.error.json").read_text)
        assert [c for c in sent if c in report] == []
