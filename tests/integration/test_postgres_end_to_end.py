"""Smoke tests: the real gateway runs on PostgreSQL (``store.backend: postgresql``) — police
-> school and social care through a real server, with the receivers on loopback — and two
gateway instances on one database share the work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.audit import verify_chain
from gateway.store.postgres import PostgresBackend
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
    sample_message,
    valid_nhs_numbers,
)


class TestGatewayOnPostgres:
    async def test_sample_message_is_accepted_delivered_and_audited(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver, dsn: str
    ) -> None:
        # Given a gateway whose store is PostgreSQL
        gw: RunningGateway = await start_gateway(
            settings_extra={"store": {"backend": "postgresql", "url": dsn, "pool_size": 4}}
        )
        assert isinstance(gw.services.backend, PostgresBackend)

        # When the police send the sample notification
        async with gw.http.post(
            gw.url("/v1/messages"), data=body(sample_message()), headers=auth(POLICE)
        ) as r:
            assert r.status == 202, await r.text()
            message_id = (await r.json())["message_id"]

        # Then both recipients receive it, signed, under the gateway message id
        await receiver.wait_for(lambda: bool(receiver.for_partner(SCHOOL) and receiver.for_partner(CSC)), 10)
        assert receiver.for_partner(SCHOOL)[0].webhook_id == message_id
        assert receiver.for_partner(CSC)[0].webhook_id == message_id
        assert receiver.rejected_signatures == 0

        # And the sender's status says delivered, from the database
        status: dict[str, Any] = {}

        async def delivered() -> bool:
            nonlocal status
            async with gw.http.get(gw.url(f"/v1/messages/{message_id}"), headers=auth(POLICE)) as r:
                assert r.status == 200
                status = await r.json()
            return bool(status["status"] == "delivered")

        await eventually(delivered, 10)
        async with gw.http.get(gw.url("/readyz")) as r:
            assert r.status == 200

        # And the audit chain in PostgreSQL verifies, with the receipt, decisions and deliveries
        records = [r async for r in gw.services.backend.audit_records()]
        assert verify_chain(records).ok
        kinds = [r.kind for r in records]
        assert kinds[0] == "gateway.started"
        assert kinds.count("delivery.succeeded") == 2
        assert "message.received" in kinds

    async def test_two_instances_share_one_database_each_delivery_once_in_order(
        self, start_gateway: GatewayFactory, receiver: RecordingReceiver, dsn: str, tmp_path: Path
    ) -> None:
        # Given two gateway instances on one database (and one keyring, as in production)
        settings = {
            "store": {"backend": "postgresql", "url": dsn, "pool_size": 4},
            "keyring": {"path": str(tmp_path / "shared-keyring.json"), "create_if_missing": True},
        }
        gateways = [await start_gateway(settings_extra=settings) for _ in range(2)]

        # When the police send 4 messages about each of 5 children, alternating instances
        children = valid_nhs_numbers(5)
        sent: dict[str, str] = {}  # message id -> child, in the order sent
        for n in range(4):
            for c, child in enumerate(children):
                gw = gateways[(n + c) % 2]
                doc = message_for_child(child, n * 10 + c)
                async with gw.http.post(gw.url("/v1/messages"), data=body(doc), headers=auth(POLICE)) as r:
                    assert r.status == 202, await r.text()
                    sent[(await r.json())["message_id"]] = child

        # Then each recipient gets every message exactly once, in order per child
        await receiver.wait_for(
            lambda: all(len(receiver.for_partner(p)) >= len(sent) for p in (SCHOOL, CSC)), 30
        )
        for partner in (SCHOOL, CSC):
            got = [r.webhook_id for r in receiver.for_partner(partner)]
            assert sorted(got) == sorted(sent), partner
            for child in children:
                assert [m for m in got if sent[m] == child] == [m for m in sent if sent[m] == child]
        assert receiver.rejected_signatures == 0
        # And the one audit chain, written by both instances, records every delivery and verifies
        backend = gateways[0].services.backend

        async def all_completed() -> bool:
            kinds = [r.kind async for r in backend.audit_records()]
            return kinds.count("delivery.succeeded") == 2 * len(sent)

        await eventually(all_completed, 10)  # the receiver answers before the gateway commits
        records = [r async for r in backend.audit_records()]
        assert verify_chain(records).ok
        assert [r.kind for r in records].count("gateway.started") == 2

        # ...and both instances did part of the work, none of it twice
        def per_instance() -> list[float]:
            return [
                sum(
                    gw.services.metrics.registry.get_sample_value(
                        "gateway_deliveries_total", {"recipient": p, "result": "delivered"}
                    )
                    or 0
                    for p in (SCHOOL, CSC)
                )
                for gw in gateways
            ]

        async def counted() -> bool:
            return sum(per_instance()) >= 2 * len(sent)

        await eventually(counted, 10)  # counted just after each commit
        assert sum(per_instance()) == 2 * len(sent)
        assert all(n > 0 for n in per_instance()), per_instance()
