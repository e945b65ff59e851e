"""Folder drop: batch files from a watched folder, with the real gateway and receivers.

Files move to ``done/`` (with a receipt) or ``rejected/`` (with an error report); nothing is
deleted, nothing is processed twice, half-written files wait.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gateway.folder_drop import FolderDrop
from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.support import CSC, POLICE, SCHOOL, body, eventually, sample_message

CANARY = "Canary-Folder-Value-7Q"


async def drop_gateway(
    start_gateway: GatewayFactory, tmp_path: Path, poll_seconds: float = 0.05
) -> tuple[RunningGateway, Path]:
    """A gateway watching a police drop folder. ``poll_seconds=3600``: the served loop never
    looks during the test, so a test's own ``FolderDrop`` owns the timing."""
    folder = tmp_path / "drops" / "police"
    gw: RunningGateway = await start_gateway(
        partner_inbound={POLICE: {"folder_drop": {"path": str(folder), "format": "canonical-json"}}},
        settings_extra={"folder_drop": {"poll_seconds": poll_seconds, "max_file_bytes": 64 * 1024}},
    )
    return gw, folder


def watcher(gw: RunningGateway) -> FolderDrop:
    svc = gw.services
    return FolderDrop(
        svc.deployment.partners, svc.pipeline, svc.backend, svc.metrics, max_file_bytes=64 * 1024
    )


async def write(path: Path, data: bytes) -> None:
    await asyncio.to_thread(path.write_bytes, data)


async def exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


async def read_json(path: Path) -> Any:
    return json.loads(await asyncio.to_thread(path.read_text))


async def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in await asyncio.to_thread(lambda: list(folder.iterdir())))


class TestFolderDrop:
    async def test_a_dropped_file_is_accepted_delivered_and_moved_with_a_receipt(
        self, start_gateway: GatewayFactory, tmp_path: Path, receiver: RecordingReceiver
    ) -> None:
        # Given a police folder drop served by the running gateway
        _gw, folder = await drop_gateway(start_gateway, tmp_path)
        # When a notification is dropped there
        await write(folder / "incident-1.json", body(sample_message()))
        # Then it is moved to done/ with a receipt naming the message
        receipt_path = folder / "done" / "incident-1.json.receipt.json"
        await eventually(lambda: exists(receipt_path), 10)
        receipt = await read_json(receipt_path)
        assert [m["duplicate"] for m in receipt["messages"]] == [False]
        message_id = receipt["messages"][0]["message_id"]
        assert await listing(folder) == ["done", "rejected"]
        assert await exists(folder / "done" / "incident-1.json")
        # And the recipients get it like any other message
        await receiver.wait_for(lambda: bool(receiver.for_partner(SCHOOL) and receiver.for_partner(CSC)), 10)
        assert receiver.for_partner(SCHOOL)[0].webhook_id == message_id

    async def test_an_invalid_file_is_rejected_with_a_report_that_names_rules_not_values(
        self, start_gateway: GatewayFactory, tmp_path: Path
    ) -> None:
        gw, folder = await drop_gateway(start_gateway, tmp_path)
        doc = sample_message()
        doc["people"][0]["identifiers"][0]["value"] = "9990000019"  # wrong check digit
        doc["people"][0]["name"]["family"] = CANARY
        await write(folder / "bad.json", body(doc))

        report_path = folder / "rejected" / "bad.json.error.json"
        await eventually(lambda: exists(report_path), 10)
        report = await read_json(report_path)
        assert report["status"] == 422
        assert {v["rule"] for v in report["violations"]} == {"nhs-number-check-digit"}
        assert report["violations"][0]["field"] == "/people/0/identifiers/0/value"
        assert CANARY not in json.dumps(report)
        assert await exists(folder / "rejected" / "bad.json")
        # Counted for operators, like an HTTP rejection
        async with gw.http.get(gw.url("/metrics")) as r:
            metrics = await r.text()
        labels = 'rule="nhs-number-check-digit",source="police-northshire",status="422"'
        assert f"gateway_messages_rejected_total{{{labels}}} 1.0" in metrics

    async def test_the_same_file_twice_creates_nothing_new(
        self, start_gateway: GatewayFactory, tmp_path: Path
    ) -> None:
        # A crash between the accept and the move leaves the file in place: processing it
        # again must find the messages already stored. Dropping the same bytes again is that.
        _gw, folder = await drop_gateway(start_gateway, tmp_path)
        data = body(sample_message())
        await write(folder / "a.json", data)
        await eventually(lambda: exists(folder / "done" / "a.json.receipt.json"), 10)
        await write(folder / "a.json", data)
        await eventually(lambda: exists(folder / "done" / "a.json.1.receipt.json"), 10)

        first = await read_json(folder / "done" / "a.json.receipt.json")
        second = await read_json(folder / "done" / "a.json.1.receipt.json")
        assert second["messages"][0] == {"message_id": first["messages"][0]["message_id"], "duplicate": True}
        assert await listing(folder / "done") == [
            "a.json",
            "a.json.1",
            "a.json.1.receipt.json",
            "a.json.receipt.json",
        ]

    async def test_temporary_names_and_growing_files_wait(
        self, start_gateway: GatewayFactory, tmp_path: Path
    ) -> None:
        gw, folder = await drop_gateway(start_gateway, tmp_path, poll_seconds=3600)
        drop = watcher(gw)
        data = body(sample_message())
        await write(folder / "incoming.json.part", data)
        await write(folder / ".hidden.json", data)
        assert await drop.poll() == []
        assert await drop.poll() == []
        # A complete name is taken at the second look, once its size held still
        await asyncio.to_thread((folder / "incoming.json.part").rename, folder / "incoming.json")
        assert await drop.poll() == []
        outcomes = await drop.poll()
        assert [(o.name, o.result, len(o.message_ids)) for o in outcomes] == [("incoming.json", "done", 1)]
        assert await listing(folder) == [".hidden.json", "done", "rejected"]

    async def test_an_oversized_file_is_rejected_at_first_sight(
        self, start_gateway: GatewayFactory, tmp_path: Path
    ) -> None:
        gw, folder = await drop_gateway(start_gateway, tmp_path, poll_seconds=3600)
        await write(folder / "huge.json", b" " * (64 * 1024 + 1))
        outcomes = await watcher(gw).poll()
        assert [(o.name, o.result) for o in outcomes] == [("huge.json", "rejected")]
        report = await read_json(folder / "rejected" / "huge.json.error.json")
        assert report["status"] == 413
        assert [v["rule"] for v in report["violations"]] == ["max-file-bytes"]

    async def test_a_file_for_a_format_that_is_not_a_batch_must_hold_one_message(
        self, start_gateway: GatewayFactory, tmp_path: Path
    ) -> None:
        gw, folder = await drop_gateway(start_gateway, tmp_path, poll_seconds=3600)
        drop = watcher(gw)
        await write(folder / "list.json", json.dumps([sample_message()]).encode())
        assert await drop.poll() == []
        outcomes = await drop.poll()
        assert [(o.name, o.result) for o in outcomes] == [("list.json", "rejected")]
        report = await read_json(folder / "rejected" / "list.json.error.json")
        assert report["violations"][0]["rule"] == "type"
