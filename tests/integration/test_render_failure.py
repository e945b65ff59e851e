"""A renderer fault for one recipient loses nothing and blocks no one: the message is
accepted, the other recipient gets its copy, and the broken delivery is dead-lettered once."""

from __future__ import annotations

import pytest

from adapters.canonical_json import CanonicalJsonAdapter
from canonical import Message
from gateway.testing import RecordingReceiver
from tests.conftest import GatewayFactory
from tests.support import CSC, POLICE, SCHOOL, auth, body, eventually, sample_message


class TestRenderFailure:
    async def test_poison_render_is_dead_lettered_and_others_flow(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        original = CanonicalJsonAdapter.render

        def render(self: CanonicalJsonAdapter, message: Message) -> bytes:
            if any(i.category == "event.narrative" for i in message.items):  # only CSC's copy has it
                raise RuntimeError("renderer bug")
            return original(self, message)

        monkeypatch.setattr(CanonicalJsonAdapter, "render", render)
        gw = await start_gateway()
        async with gw.http.post(
            gw.url("/v1/messages"), data=body(sample_message()), headers=auth(POLICE)
        ) as r:
            assert r.status == 202
            message_id = (await r.json())["message_id"]
        await receiver.wait_for(lambda: len(receiver.for_partner(SCHOOL)) == 1, 10)

        async def dead_lettered() -> bool:
            return len(await gw.services.backend.dead_letters(CSC, 10)) == 1

        await eventually(dead_lettered, 10)
        (dead,) = await gw.services.backend.dead_letters(CSC, 10)
        assert (dead.message_id, dead.attempts, dead.last_error) == (
            message_id,
            0,
            "render-failed:RuntimeError",
        )
        assert receiver.attempts.get(CSC, 0) == 0

        async def states() -> dict[str, str | None]:
            status = await gw.services.backend.message_status(message_id)
            assert status is not None
            return {r.recipient: r.state for r in status.recipients}

        async def settled() -> bool:
            return await states() == {CSC: "dead", SCHOOL: "delivered"}

        await eventually(settled, 10)
