"""The MLLP listener around a real gateway, driven by python-hl7's own MLLP client (never
ours): AA only after the durable commit, AE/AR with ERR, framing edge cases."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import hl7
import pytest
import yaml
from aiohttp import web
from hl7.mllp import open_hl7_connection

import gateway.app
from adapters import AdapterRegistry, default_registry
from adapters.hl7v2 import Hl7v2Adapter
from gateway.api.state import SERVICES, Services
from gateway.app import create_app
from gateway.config import load_deployment
from gateway.metrics import Metrics
from gateway.mllp import MLLP_PORT, MllpListener, serve_mllp
from gateway.pipeline import Accepted, Pipeline
from gateway.server import start_site
from gateway.store.base import Store
from gateway.testing import RecordingReceiver
from tests.support import eventually, valid_nhs_numbers, write_deployment

GOLDEN = Path(__file__).parent.parent / "adapters" / "golden" / "hl7v2"
ED = "ed-northshire-general"
ED_TOKEN = "demo-ed-token"
MAX_FRAME = 8192
IDLE_SECONDS = 2.0
VT, FS_CR = b"\x0b", b"\x1c\x0d"


@dataclass
class MllpGateway:
    app: web.Application
    base: str
    http: aiohttp.ClientSession
    db: Path

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def port(self) -> int:
        return self.app[MLLP_PORT]

    async def connect(self) -> tuple[Any, Any]:
        reader, writer = await open_hl7_connection("127.0.0.1", self.port)
        return reader, writer

    async def send(self, *bodies: bytes) -> list[Any]:
        """Each body in one frame on one connection, all written first; the ACKs in order."""
        reader, writer = await self.connect()
        try:
            for body in bodies:
                writer.writeblock(body)
            await writer.drain()
            async with asyncio.timeout(10):
                return [await reader.readmessage() for _ in bodies]
        finally:
            writer.close()
            await writer.wait_closed()

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            db = sqlite3.connect(self.db)
            try:
                return db.execute(sql, args).fetchall()
            finally:
                db.close()

        return await asyncio.to_thread(run)

    async def stored(self) -> int:
        rows = await self.query("SELECT count(*) FROM messages WHERE source = ?", ED)
        return int(rows[0][0])


@pytest.fixture
async def mllp(
    tmp_path: Path, receiver: RecordingReceiver, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MllpGateway]:
    # Given the example deployment, with the ED accepted over MLLP (MSH-4 = its ODS code ZZZ98)
    config = write_deployment(tmp_path / "deploy", receiver_base=f"http://127.0.0.1:{receiver.port}")
    partners = yaml.safe_load((config / "partners.yaml").read_text())
    for partner in partners["partners"]:
        if partner["id"] == ED:
            partner["inbound"] = {"mllp": True}
    (config / "partners.yaml").write_text(yaml.safe_dump(partners))
    settings = yaml.safe_load((config / "gateway.yaml").read_text())
    settings["mllp"] = {"port": 0, "max_message_bytes": MAX_FRAME, "idle_timeout_seconds": IDLE_SECONDS}
    (config / "gateway.yaml").write_text(yaml.safe_dump(settings))
    # Until the lead registers the HL7 v2 adapter, add it to this gateway's registry only.
    original = default_registry
    if "hl7v2" not in original().by_name:
        monkeypatch.setattr(
            gateway.app,
            "default_registry",
            lambda: AdapterRegistry.of([*original().by_name.values(), Hl7v2Adapter()]),
        )
    deployment = await asyncio.to_thread(load_deployment, config)
    app = await asyncio.to_thread(create_app, deployment)
    if serve_mllp not in app.cleanup_ctx:
        app.cleanup_ctx.append(serve_mllp)
    runner, port = await start_site(app, "127.0.0.1", 0)
    http = aiohttp.ClientSession()
    try:
        yield MllpGateway(app, f"http://127.0.0.1:{port}", http, deployment.settings.db_path)
    finally:
        await http.close()
        await runner.cleanup()


def a04(control_id: str = "NGH-ED-7781", nhs: str = "9990001014", facility: str = "ZZZ98") -> bytes:
    text = (GOLDEN / "a04-ed-attendance.hl7").read_text()
    text = text.replace("NGH-ED-7781", control_id).replace("9990001014", nhs)
    text = text.replace("|NGH-PAS|ZZZ98|", f"|NGH-PAS|{facility}|")
    return text.replace("\n", "\r").encode()


def msa(ack: Any) -> tuple[str, str, str]:
    seg = ack.segment("MSA")
    return str(seg(1)), str(seg(2)), str(seg(3)) if len(seg) > 3 else ""


def errors(ack: Any) -> list[dict[str, str]]:
    out = []
    for seg in ack:
        if str(seg[0]) == "ERR":
            out.append(
                {
                    "location": str(seg(2)),
                    "code": seg.extract_field(1, 3, 1, 1),
                    "rule": seg.extract_field(1, 5, 1, 1),
                    "message": seg.extract_field(1, 8),
                }
            )
    return out


async def rejected_audit(gw: MllpGateway) -> list[dict[str, Any]]:
    rows = await gw.query("SELECT partner, data FROM audit WHERE kind = 'message.rejected' ORDER BY seq")
    return [{"partner": partner, **json.loads(data)} for partner, data in rows]


class TestAccept:
    async def test_a04_is_acknowledged_aa_after_it_is_stored(self, mllp: MllpGateway) -> None:
        # When the ED sends an emergency registration with python-hl7's MLLP client
        (ack,) = await mllp.send(a04())
        # Then the ACK is AA for its MSH-10 and names the stored message
        code, control_id, text = msa(ack)
        assert (code, control_id) == ("AA", "NGH-ED-7781")
        assert str(ack.segment("MSH")(9)) == "ACK^A04^ACK"
        message_id = text.removeprefix("stored as ")
        headers = {"Authorization": f"Bearer {ED_TOKEN}"}
        async with mllp.http.get(f"{mllp.base}/v1/messages/{message_id}", headers=headers) as r:
            assert r.status == 200, await r.text()
            status = await r.json()
        assert status["event_type"] == "health.ed-attendance"
        assert await mllp.stored() == 1

    async def test_duplicate_control_id_is_aa_again_and_stored_once(self, mllp: MllpGateway) -> None:
        (first,) = await mllp.send(a04("NGH-DUP-1"))
        (second,) = await mllp.send(a04("NGH-DUP-1"))
        assert msa(first)[0] == msa(second)[0] == "AA"
        assert msa(first)[2] == msa(second)[2]  # the same gateway message id
        assert await mllp.stored() == 1

    async def test_several_messages_on_one_connection_are_acknowledged_in_order(
        self, mllp: MllpGateway
    ) -> None:
        numbers = valid_nhs_numbers(3, start=999_100_000)
        bodies = [a04(f"NGH-SEQ-{i}", nhs) for i, nhs in enumerate(numbers)]
        acks = await mllp.send(*bodies)
        assert [msa(a)[:2] for a in acks] == [("AA", f"NGH-SEQ-{i}") for i in range(3)]
        assert await mllp.stored() == 3

    async def test_bytes_before_the_start_byte_are_discarded(self, mllp: MllpGateway) -> None:
        reader, writer = await mllp.connect()
        writer.write(b"\r\nnoise" + VT + a04("NGH-NOISE") + FS_CR)
        await writer.drain()
        async with asyncio.timeout(10):
            ack = await reader.readmessage()
        writer.close()
        assert msa(ack)[:2] == ("AA", "NGH-NOISE")


class TestReject:
    async def test_content_error_is_ae_with_err_location_and_no_value(self, mllp: MllpGateway) -> None:
        bad = "9990001015"  # wrong check digit
        (ack,) = await mllp.send(a04("NGH-BAD-1", bad))
        assert msa(ack)[:2] == ("AE", "NGH-BAD-1")
        assert errors(ack) == [
            {
                "location": "PID^1^3^1^1",
                "code": "102",
                "rule": "nhs-number-check-digit",
                "message": "not a valid nhs-number (length, format or check character)",
            }
        ]
        raw = str(ack)
        for value in (bad, "Testcase", "ZZ99"):
            assert value not in raw
        assert await mllp.stored() == 0
        audit = await rejected_audit(mllp)
        assert audit[-1]["partner"] == ED
        assert audit[-1]["transport"] == "mllp"
        assert audit[-1]["rules"] == ["nhs-number-check-digit"]
        sample = mllp.services.metrics.registry.get_sample_value(
            "gateway_messages_rejected_total",
            {"source": ED, "status": "422", "rule": "nhs-number-check-digit"},
        )
        assert sample == 1

    async def test_unsupported_message_type_is_ar(self, mllp: MllpGateway) -> None:
        body = a04("NGH-ORU-1").replace(b"ADT^A04^ADT_A01", b"ORU^R01^ORU_R01")
        (ack,) = await mllp.send(body)
        assert msa(ack)[:2] == ("AR", "NGH-ORU-1")
        assert [(e["location"], e["code"], e["rule"]) for e in errors(ack)] == [
            ("MSH^1^9^1", "200", "hl7-unsupported-message")
        ]
        assert await mllp.stored() == 0

    async def test_unknown_sending_facility_is_ar(self, mllp: MllpGateway) -> None:
        (ack,) = await mllp.send(a04("NGH-WHO-1", facility="ZZZ01"))
        assert msa(ack)[:2] == ("AR", "NGH-WHO-1")
        assert [(e["location"], e["rule"]) for e in errors(ack)] == [("MSH^1^4^1", "mllp-known-sender")]
        audit = await rejected_audit(mllp)
        assert (audit[-1]["partner"], audit[-1]["rules"]) == ("unknown", ["mllp-known-sender"])
        assert await mllp.stored() == 0

    async def test_same_control_id_with_another_body_is_ae(self, mllp: MllpGateway) -> None:
        other = valid_nhs_numbers(1, start=999_200_000)[0]
        (first,) = await mllp.send(a04("NGH-REUSE-1"))
        (second,) = await mllp.send(a04("NGH-REUSE-1", other))
        assert msa(first)[0] == "AA"
        assert msa(second)[:2] == ("AE", "NGH-REUSE-1")
        assert [(e["code"], e["rule"]) for e in errors(second)] == [("205", "mllp-control-id-reused")]
        assert await mllp.stored() == 1

    async def test_our_failure_is_ar_retry_later_and_nothing_is_acknowledged(
        self, mllp: MllpGateway, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def store_down(*args: Any, **kwargs: Any) -> Any:
            raise OSError("disk unavailable")

        monkeypatch.setattr(mllp.services.pipeline, "ingest", store_down)
        (ack,) = await mllp.send(a04("NGH-DOWN-1"))
        code, control_id, text = msa(ack)
        assert (code, control_id) == ("AR", "NGH-DOWN-1")
        assert "retry later" in text
        assert [e["code"] for e in errors(ack)] == ["207"]

    async def test_unreadable_header_is_ae(self, mllp: MllpGateway) -> None:
        (ack,) = await mllp.send(b"PID|1||9990001014^^^NHS^NH")
        code, control_id, _ = msa(ack)
        assert (code, control_id) == ("AE", "")
        assert [(e["location"], e["rule"]) for e in errors(ack)] == [("MSH^1", "hl7-required-segment")]


class TestFraming:
    async def test_truncated_frame_stores_nothing_and_the_server_keeps_serving(
        self, mllp: MllpGateway
    ) -> None:
        # Given a sender whose connection drops in the middle of a frame
        _, writer = await mllp.connect()
        writer.write(VT + a04("NGH-CUT-1")[:200])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        # Then another connection is still served, and only its message is stored
        (ack,) = await mllp.send(a04("NGH-AFTER-CUT"))
        assert msa(ack)[:2] == ("AA", "NGH-AFTER-CUT")
        assert await mllp.stored() == 1
        rows = await mllp.query("SELECT count(*) FROM idempotency WHERE key = 'mllp:NGH-CUT-1'")
        assert rows[0][0] == 0

    async def test_oversized_frame_is_refused_and_the_connection_closed(self, mllp: MllpGateway) -> None:
        reader, writer = await mllp.connect()
        huge = a04("NGH-HUGE-1").replace(b"\rPV2|", b"\rZXX|" + b"A" * (MAX_FRAME + 100) + b"\rPV2|")
        writer.writeblock(huge)
        await writer.drain()
        async with asyncio.timeout(10):
            ack = await reader.readmessage()
            rest = await reader.read()
        writer.close()
        assert msa(ack)[0] == "AE"
        assert [e["rule"] for e in errors(ack)] == ["mllp-frame-too-large"]
        assert rest == b""  # closed by the gateway
        assert await mllp.stored() == 0

    async def test_idle_connection_is_closed(self, mllp: MllpGateway) -> None:
        reader, writer = await mllp.connect()
        async with asyncio.timeout(IDLE_SECONDS + 8):
            assert await reader.read() == b""
        writer.close()

    async def test_ack_is_a_valid_hl7_message(self, mllp: MllpGateway) -> None:
        reader, writer = await mllp.connect()
        writer.writeblock(a04("NGH-RAW-1"))
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.readblock()
        writer.close()
        ack = hl7.parse(raw.decode())
        assert str(ack.segment("MSH")(3)) == "MASH-GATEWAY"
        assert str(ack.segment("MSH")(7)).endswith("+0000")


class TestDurability:
    async def test_a_failed_commit_is_never_acknowledged_aa(
        self, mllp: MllpGateway, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given the store fails at the commit itself (the real pipeline runs up to it)
        async def commit_fails(*args: Any, **kwargs: Any) -> Any:
            raise OSError("disk full")

        monkeypatch.setattr(mllp.services.backend, "accept", commit_fails)
        (ack,) = await mllp.send(a04("NGH-COMMIT-1"))
        # Then the sender hears AR (retry later), and nothing is stored
        assert msa(ack)[0] == "AR"
        monkeypatch.undo()
        assert await mllp.stored() == 0

    async def test_a_resend_after_a_failed_commit_is_stored_once(
        self, mllp: MllpGateway, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        original = mllp.services.backend.accept
        calls: list[int] = []

        async def first_commit_fails(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise OSError("disk full")
            return await original(*args, **kwargs)

        monkeypatch.setattr(mllp.services.backend, "accept", first_commit_fails)
        first, second, third = await mllp.send(a04("NGH-RETRY-1"), a04("NGH-RETRY-1"), a04("NGH-RETRY-1"))
        assert [msa(a)[0] for a in (first, second, third)] == ["AR", "AA", "AA"]
        assert msa(second)[2] == msa(third)[2]

        async def stored_once() -> bool:
            return await mllp.stored() == 1

        await eventually(stored_once, timeout=5)


class TestShutdown:
    async def test_a_message_being_stored_gets_its_ack_and_idle_connections_close(self) -> None:
        # Given a listener whose store is slow, with one idle connection and one storing
        entered, release = asyncio.Event(), asyncio.Event()

        class SlowPipeline:
            async def ingest(self, *args: Any, **kwargs: Any) -> Accepted:
                entered.set()
                await release.wait()
                return Accepted("msg_01JSLOW", False, ())

        listener = MllpListener(
            pipeline=cast(Pipeline, SlowPipeline()),
            store=cast(Store, None),
            metrics=Metrics(),
            senders={"ZZZ98": ED},
            max_message_bytes=MAX_FRAME,
            idle_timeout_seconds=30,
        )
        server = await asyncio.start_server(listener.handle, "127.0.0.1", 0, limit=listener.stream_limit)
        port = server.sockets[0].getsockname()[1]
        idle_reader, idle_writer = await open_hl7_connection("127.0.0.1", port)
        reader, writer = await open_hl7_connection("127.0.0.1", port)
        writer.writeblock(a04("NGH-STOP-1"))
        await writer.drain()
        async with asyncio.timeout(10):
            await entered.wait()
        # When the gateway stops while the message is being stored
        server.close()
        stopping = asyncio.create_task(listener.stop())
        async with asyncio.timeout(10):
            assert await idle_reader.read() == b""  # the idle connection is closed at once
        release.set()
        async with asyncio.timeout(10):
            ack = await reader.readmessage()
            await stopping
            rest = await reader.read()
        # Then the storing connection got its AA before it was closed
        assert msa(ack) == ("AA", "NGH-STOP-1", "stored as msg_01JSLOW")
        assert rest == b""
        for w in (writer, idle_writer):
            w.close()
        await server.wait_closed()
