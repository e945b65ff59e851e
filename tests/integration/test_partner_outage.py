"""A partner's endpoint goes down, then comes back: its backlog is visible and drains in order
per child, other partners are not held up, the retry budget ends in a dead letter with the
last error, and an operator replays or discards it (API and CLI), each with an audited reason.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory, RunningGateway
from tests.support import (
    CSC,
    POLICE,
    SCHOOL,
    auth,
    body,
    eventually,
    message_for_child,
    operator_auth,
    valid_nhs_numbers,
)


async def send(gw: RunningGateway, child: str, seq: int) -> str:
    doc = message_for_child(child, seq)
    async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
        assert r.status == 202, await r.text()
        return str((await r.json())["message_id"])


async def queue_of(gw: RunningGateway, partner: str) -> dict[str, Any]:
    async with gw.http.get(gw.url("/v1/ops/queues"), headers=operator_auth()) as r:
        assert r.status == 200
        queues: list[dict[str, Any]] = (await r.json())["queues"]
    return next(q for q in queues if q["partner"] == partner)


async def dead_letters(gw: RunningGateway, partner: str) -> list[dict[str, Any]]:
    async with gw.http.get(gw.url(f"/v1/ops/dead-letters?partner={partner}"), headers=operator_auth()) as r:
        assert r.status == 200
        rows: list[dict[str, Any]] = (await r.json())["dead_letters"]
    return rows


async def the_dead_letter(gw: RunningGateway, partner: str) -> dict[str, Any]:
    """Wait until the partner has a dead letter; the single one it has."""

    async def dead() -> bool:
        return bool(await dead_letters(gw, partner))

    await eventually(dead, timeout=15)
    [letter] = await dead_letters(gw, partner)
    return letter


async def audit_kinds(gw: RunningGateway, delivery_id: str) -> list[tuple[str, Any, str]]:
    return [
        (rec.kind, rec.data.get("reason"), rec.actor)
        async for rec in gw.services.backend.audit_records()
        if rec.data.get("delivery_id") == delivery_id
    ]


async def gateway_cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


class TestPartnerDownThenUp:
    async def test_backlog_is_visible_then_drains_in_order_per_child_and_others_flow(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        # Given social care's endpoint answers 503 (a budget large enough to ride it out)
        gw = await start_gateway(delivery={"max_attempts": 100, "base_delay_seconds": 0.02})
        receiver.set_behaviour(CSC, status=503)
        children = valid_nhs_numbers(4)
        sent: dict[str, tuple[str, int]] = {}
        for seq in range(3):
            for child in children:
                sent[await send(gw, child, seq)] = (child, seq)

        # Then the school receives everything meanwhile
        await receiver.wait_for(lambda: len(receiver.unique(SCHOOL)) == len(sent), timeout=15)
        assert set(receiver.unique(SCHOOL)) == set(sent)

        # And the operator sees social care's backlog (queued, none delivered, ageing)
        await receiver.wait_for(lambda: receiver.attempts.get(CSC, 0) >= 8, timeout=15)
        backlog = await queue_of(gw, CSC)
        assert backlog["ready"] + backlog["in_flight"] == len(sent)
        assert backlog["delivered"] == 0
        assert backlog["dead_letters"] == 0
        assert backlog["oldest_age_seconds"] > 0
        # Only each child's head is ever tried while the partner is down: order holds.
        assert receiver.for_partner(CSC) == []

        # When the endpoint recovers, the backlog drains
        receiver.set_behaviour(CSC, status=200)
        await receiver.wait_for(lambda: len(receiver.unique(CSC)) == len(sent), timeout=20)

        # In order per child
        arrived = list(receiver.unique(CSC))
        for child in children:
            order = [sent[m][1] for m in arrived if sent[m][0] == child]
            assert order == [0, 1, 2], child

        async def drained() -> bool:
            q = await queue_of(gw, CSC)
            return bool(q["ready"] == 0 and q["in_flight"] == 0 and q["delivered"] == len(sent))

        await eventually(drained, timeout=10)

    async def test_budget_spent_dead_letters_then_api_replay_with_a_reason(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start_gateway(delivery={"max_attempts": 3})
        receiver.set_behaviour(CSC, status=500)
        message_id = await send(gw, valid_nhs_numbers(1)[0], 0)

        # After the budget: one dead letter with the attempts and the last error
        letter = await the_dead_letter(gw, CSC)
        assert (letter["message_id"], letter["attempts"], letter["last_error"]) == (message_id, 3, "http-500")
        assert receiver.attempts[CSC] == 3
        assert (await queue_of(gw, CSC))["dead_letters"] == 1

        replay = gw.url(f"/v1/ops/dead-letters/{letter['delivery_id']}/replay")
        # Refused: no reason, a partner's token, no token, an unknown id
        async with gw.http.post(replay, json={}, headers=operator_auth()) as r:
            assert r.status == 422
            assert r.content_type == "application/problem+json"
            assert any(e["field"] == "/reason" for e in (await r.json())["errors"])
        async with gw.http.post(replay, json={"reason": "x"}, headers=auth(CSC)) as r:
            assert r.status == 403
        async with gw.http.post(replay, json={"reason": "x"}) as r:
            assert r.status == 401
        unknown = gw.url("/v1/ops/dead-letters/dlv_00000000000000000000000000/replay")
        async with gw.http.post(unknown, json={"reason": "x"}, headers=operator_auth()) as r:
            assert r.status == 404
        assert receiver.attempts[CSC] == 3

        # When the partner is back and the operator replays with a reason
        receiver.set_behaviour(CSC, status=200)
        async with gw.http.post(
            replay, json={"reason": "partner fixed their endpoint"}, headers=operator_auth()
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["state"] == "ready"

        # Then it is delivered, under the same id, and the reason is in the audit log
        await receiver.wait_for(lambda: message_id in receiver.unique(CSC), timeout=10)
        assert await dead_letters(gw, CSC) == []

        # (the success is committed just after the receiver answered: wait for it)
        async def succeeded() -> bool:
            return [k for k, _, _ in await audit_kinds(gw, letter["delivery_id"])][-1] == "delivery.succeeded"

        await eventually(succeeded, timeout=10)
        kinds = await audit_kinds(gw, letter["delivery_id"])
        assert ("delivery.replayed", "partner fixed their endpoint", "operator:demo-operator") in kinds

    async def test_cli_replays_a_dead_letter_while_the_gateway_runs(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start_gateway(delivery={"max_attempts": 2})
        receiver.set_behaviour(CSC, status=502)
        message_id = await send(gw, valid_nhs_numbers(1)[0], 0)

        letter = await the_dead_letter(gw, CSC)
        config = str(gw.config_dir)

        code, out = await gateway_cli("dead-letters", "list", "--config", config, "--partner", CSC)
        assert code == 0, out
        assert letter["delivery_id"] in out
        assert "last_error=http-502" in out

        # The partner is fixed first, then the operator replays (the other order races the
        # running gateway's next poll against the CLI process's exit)
        receiver.set_behaviour(CSC, status=200)
        code, out = await gateway_cli(
            "dead-letters", "replay", letter["delivery_id"], "--config", config, "--reason", "cli replay test"
        )
        assert (code, f"{letter['delivery_id']}: queued again") == (0, out.strip())

        # The running gateway picks it up on its next poll
        await receiver.wait_for(lambda: message_id in receiver.unique(CSC), timeout=10)
        kinds = await audit_kinds(gw, letter["delivery_id"])
        assert ("delivery.replayed", "cli replay test", "cli:cli") in kinds

        # Replaying something that is no longer dead fails clearly
        code, out = await gateway_cli(
            "dead-letters", "replay", letter["delivery_id"], "--config", config, "--reason", "again"
        )
        assert code == 1
        assert "no dead letter" in out

    async def test_a_4xx_refusal_dead_letters_at_once_and_can_be_discarded(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver
    ) -> None:
        gw = await start_gateway(delivery={"max_attempts": 5})
        receiver.set_behaviour(CSC, status=400)
        await send(gw, valid_nhs_numbers(1)[0], 0)

        letter = await the_dead_letter(gw, CSC)
        assert (letter["attempts"], letter["last_error"]) == (1, "http-400")
        assert receiver.attempts[CSC] == 1

        discard = gw.url(f"/v1/ops/dead-letters/{letter['delivery_id']}/discard")
        async with gw.http.post(
            discard, json={"reason": "duplicate sent by phone"}, headers=operator_auth()
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["state"] == "discarded"
        assert await dead_letters(gw, CSC) == []
        async with gw.http.post(discard, json={"reason": "again"}, headers=operator_auth()) as r:
            assert r.status == 404
        kinds = await audit_kinds(gw, letter["delivery_id"])
        assert ("delivery.discarded", "duplicate sent by phone", "operator:demo-operator") in kinds
        assert receiver.attempts[CSC] == 1
