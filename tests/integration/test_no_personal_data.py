"""No personal data in logs or in the database file: messages full of unique canary
strings go through the whole pipeline (accepted, rejected, delivered, failed, retried,
dead-lettered); no canary may appear in the logs or in clear text on disk."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gateway.logging import configure_logging
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
