"""Replay from the original: a dead letter whose payload could not be rendered is rebuilt from
the stored original message, decided again under the policy in force now, and queued again
under the same ids; when the current policy no longer permits, nothing is queued and the
operator is told why. Real gateway, real receiver, the ops API as an operator calls it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.canonical_json import CanonicalJsonAdapter
from canonical import Message
from gateway.cli import main
from gateway.store.sqlite import SqliteBackend
from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.support import CSC, OPERATOR_TOKEN, POLICE, SCHOOL, auth, body, eventually, sample_message

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
IG = {"Authorization": "Bearer test-ig-lead-token"}
REASON = {"reason": "renderer fixed in 1.4.2"}


def _break_narrative_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    original = CanonicalJsonAdapter.render

    def render(self: CanonicalJsonAdapter, message: Message) -> bytes:
        if any(i.category == "event.narrative" for i in message.items):  # only CSC's copy has it
            raise RuntimeError("renderer bug")
        return original(self, message)

    monkeypatch.setattr(CanonicalJsonAdapter, "render", render)


async def _dead_letter_by_render_failure(
    gw: RunningGateway, receiver: RecordingReceiver, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """Send one message whose CSC copy cannot be rendered; the renderer is mended afterwards.
    Returns (message id, dead delivery id)."""
    _break_narrative_rendering(monkeypatch)
    async with gw.http.post(gw.url("/v1/messages"), data=body(sample_message()), headers=auth(POLICE)) as r:
        assert r.status == 202
        message_id = str((await r.json())["message_id"])
    await receiver.wait_for(lambda: len(receiver.for_partner(SCHOOL)) == 1, 10)

    async def dead_lettered() -> bool:
        return len(await gw.services.backend.dead_letters(CSC, 10)) == 1

    await eventually(dead_lettered, 10)
    (dead,) = await gw.services.backend.dead_letters(CSC, 10)
    assert dead.last_error == "render-failed:RuntimeError"
    monkeypatch.undo()  # the cause is removed
    return message_id, dead.delivery_id


async def _replay_original(gw: RunningGateway, delivery_id: str, payload: Any) -> tuple[int, Any]:
    async with gw.http.post(
        gw.url(f"/v1/ops/dead-letters/{delivery_id}/replay-original"), json=payload, headers=OPERATOR
    ) as r:
        return r.status, await r.json(content_type=None)


async def _status(gw: RunningGateway, message_id: str) -> Any:
    """``GET /v1/messages/{id}`` as the sender (police) reads it."""
    async with gw.http.get(gw.url(f"/v1/messages/{message_id}"), headers=auth(POLICE)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _decision_of(gw: RunningGateway, delivery_id: str) -> str | None:
    """The decision the delivery points at, read from the gateway's SQLite file (no API has it)."""
    return await asyncio.to_thread(
        _one_value, gw, "SELECT decision_id FROM deliveries WHERE id=?", delivery_id
    )


async def _policy_version_of(gw: RunningGateway, decision_id: str) -> str | None:
    """The policy version of a row in ``decisions`` (``None`` if there is no such row)."""
    return await asyncio.to_thread(
        _one_value, gw, "SELECT policy_version FROM decisions WHERE id=?", decision_id
    )


def _one_value(gw: RunningGateway, sql: str, key: str) -> str | None:
    backend = gw.services.backend
    assert isinstance(backend, SqliteBackend)
    with contextlib.closing(sqlite3.connect(backend.path)) as db:
        row = db.execute(sql, (key,)).fetchone()
    return str(row[0]) if row is not None else None


async def _audit(gw: RunningGateway, message_id: str) -> list[tuple[str, Mapping[str, Any], str]]:
    return [
        (rec.kind, rec.data, rec.actor)
        async for rec in gw.services.backend.audit_records()
        if rec.message_id == message_id
    ]


class TestReplayFromOriginal:
    async def test_a_render_failure_is_rebuilt_and_reaches_the_recipient(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a delivery dead-lettered by a renderer bug that has since been fixed, and a
        # changed policy that still permits (every agreement extended)
        gw = await start_gateway()
        message_id, delivery_id = await _dead_letter_by_render_failure(gw, receiver, monkeypatch)
        ingest_version = gw.services.policy.current.version
        _extend_every_agreement(gw.config_dir)
        async with gw.http.post(gw.url("/v1/admin/policy/reload"), headers=IG) as r:
            assert r.status == 200, await r.text()
        new_version = gw.services.policy.current.version
        assert new_version != ingest_version
        # A reason is required, and nothing happens without one
        status, problem = await _replay_original(gw, delivery_id, {})
        assert status == 422
        assert problem["errors"][0]["field"] == "/reason"
        assert [d.delivery_id for d in await gw.services.backend.dead_letters(CSC, 10)] == [delivery_id]
        # When an operator replays it from the original
        status, answer = await _replay_original(gw, delivery_id, REASON)
        # Then it is decided again, permitted, queued under the same ids, and delivered
        assert status == 200, answer
        assert answer == {
            "delivery_id": delivery_id,
            "message_id": message_id,
            "partner": CSC,
            "queued": True,
            "state": "ready",
            "effect": "permit",
            "rule": answer["rule"],
            "error": None,
        }
        await receiver.wait_for(lambda: len(receiver.for_partner(CSC)) == 1, 10)
        (got,) = receiver.for_partner(CSC)
        assert got.payload["envelope"]["message_id"] == message_id
        assert any(i["category"] == "event.narrative" for i in got.payload["items"])
        assert receiver.attempts.get(CSC) == 1
        assert await gw.services.backend.dead_letters(None, 10) == []
        # And audited: the new decision and the replay, with reason and actor, no content
        audit = await _audit(gw, message_id)
        (replayed,) = [(d, a) for k, d, a in audit if k == "delivery.replayed_from_original"]
        assert replayed[0]["reason"] == REASON["reason"]
        assert replayed[0]["delivery_id"] == delivery_id
        assert replayed[0]["decision"]["effect"] == "permit"
        assert replayed[1].startswith("operator:")
        redecided = [d for k, d, _ in audit if k == "decision.made" and d.get("replay_of") == delivery_id]
        assert [d["effect"] for d in redecided] == ["permit"]
        assert "renderer bug" not in repr(audit)
        # And the new decision is recorded under the new policy, the delivery points at it,
        # and the sender sees CSC once, with that decision
        assert await _decision_of(gw, delivery_id) == redecided[0]["decision_id"]
        assert await _policy_version_of(gw, redecided[0]["decision_id"]) == new_version
        status_doc = await _status(gw, message_id)
        (csc,) = [r for r in status_doc["recipients"] if r["partner"] == CSC]
        assert (csc["decision"], csc["rule"], csc["delivery"], csc["attempts"]) == (
            "permit",
            answer["rule"],
            "delivered",
            1,
        )
        assert csc["delivered_at"] is not None
        # A second replay from the original finds no dead letter
        status, _ = await _replay_original(gw, delivery_id, REASON)
        assert status == 404

    async def test_nothing_is_queued_when_the_agreement_no_longer_permits(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a dead letter from a render failure, and then every agreement expired
        gw = await start_gateway()
        message_id, delivery_id = await _dead_letter_by_render_failure(gw, receiver, monkeypatch)
        _expire_every_agreement(gw.config_dir)
        async with gw.http.post(gw.url("/v1/admin/policy/reload"), headers=IG) as r:
            assert r.status == 200, await r.text()
        # When an operator replays it from the original
        status, answer = await _replay_original(gw, delivery_id, REASON)
        # Then nothing is queued, the answer says why, and the delivery stays a dead letter
        assert status == 200, answer
        assert (answer["queued"], answer["state"], answer["effect"]) == (False, "dead", "deny")
        assert answer["rule"]
        assert [d.delivery_id for d in await gw.services.backend.dead_letters(CSC, 10)] == [delivery_id]
        assert await gw.services.backend.ready_recipients() == []
        assert receiver.for_partner(CSC) == []
        # And the new decision is audited as at ingest; no replay is recorded
        audit = await _audit(gw, message_id)
        redecided = [d for k, d, _ in audit if k == "decision.made" and d.get("replay_of") == delivery_id]
        assert [(d["effect"], d["rule"], d["reason"]) for d in redecided] == [
            ("deny", answer["rule"], REASON["reason"])
        ]
        assert "delivery.replayed_from_original" not in [k for k, _, _ in audit]
        # And the sender's status shows the new deny for CSC, once, beside the dead delivery,
        # which still points at its ingest decision
        status_doc = await _status(gw, message_id)
        assert [
            (r["decision"], r["rule"], r["delivery"]) for r in status_doc["recipients"] if r["partner"] == CSC
        ] == [("deny", answer["rule"], "dead")]
        assert status_doc["status"] == "failed"
        ingest = [d for k, d, _ in audit if k == "decision.made" and d.get("delivery_id") == delivery_id]
        assert [d["decision_id"] for d in ingest] == [await _decision_of(gw, delivery_id)]

    async def test_the_cli_replays_from_the_original(
        self,
        start_gateway: GatewayFactory,
        receiver: RecordingReceiver,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        # Given a render-failure dead letter in a running gateway's store
        gw = await start_gateway()
        message_id, delivery_id = await _dead_letter_by_render_failure(gw, receiver, monkeypatch)
        command = ["dead-letters", "replay-original", "--config", str(gw.config_dir), delivery_id]
        # A reason is required (argparse refuses the command)
        with pytest.raises(SystemExit):
            await asyncio.to_thread(main, command)
        # When an operator replays it from the original with the CLI (its own process would
        # open its own store connection: here its own thread and writer)
        code = await asyncio.to_thread(
            main, [*command, "--reason", "renderer fixed", "--actor", "alice-test"]
        )
        # Then it is queued again, the running gateway delivers it, and the CLI said only ids
        out = capsys.readouterr()
        assert code == 0, out.err
        assert out.out.splitlines()[-1].startswith(f"{delivery_id}: rebuilt from the original (permit")
        await receiver.wait_for(lambda: len(receiver.for_partner(CSC)) == 1, 10)
        (got,) = receiver.for_partner(CSC)
        assert got.payload["envelope"]["message_id"] == message_id
        actors = [a for k, _, a in await _audit(gw, message_id) if k == "delivery.replayed_from_original"]
        assert actors == ["cli:alice-test"]
        # And a second run finds no dead letter
        assert await asyncio.to_thread(main, [*command, "--reason", "again"]) == 1


def _expire_every_agreement(config_dir: Path) -> None:
    path = config_dir / "agreements.yaml"
    text = re.sub(r'valid_until: "\d{4}-\d{2}-\d{2}"', 'valid_until: "2026-01-01"', path.read_text())
    text = re.sub(r'valid_from: "\d{4}-\d{2}-\d{2}"', 'valid_from: "2025-01-01"', text)
    path.write_text(text)


def _extend_every_agreement(config_dir: Path) -> None:
    path = config_dir / "agreements.yaml"
    text = re.sub(r'valid_until: "\d{4}-\d{2}-\d{2}"', 'valid_until: "2099-12-31"', path.read_text())
    assert text != path.read_text()
    path.write_text(text)
