"""``ReleasesPartnerLeases`` on the embedded backend: the delivery process takes back, at its
start, the leases its killed predecessor held for the webhook partners, and never anyone
else's (a pull partner's inbox lease stays with the partner that fetched it). The
per-holder rule of the scale-out backends is in ``test_store_contract``."""

from __future__ import annotations

from pathlib import Path

from gateway.audit import AuditEvent
from gateway.crypto import Keyring
from gateway.store.base import ReleasesPartnerLeases
from gateway.store.postgres import PostgresBackend
from gateway.store.rabbitmq import RabbitQueueBackend
from gateway.store.sqlite import SqliteBackend
from tests.gateway.test_store_contract import records


class TestReleaseLeasesOf:
    async def test_releases_only_the_named_partners_leases(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        # Given leases held for a webhook partner (two children) and a pull partner's inbox
        await backend.accept(*records(keyring, 1, child="a", recipient="csc"))
        await backend.accept(*records(keyring, 2, child="b", recipient="csc"))
        await backend.accept(*records(keyring, 3, child="a", recipient="school"))
        dead_holders = await backend.lease("csc", 10, 3600)
        (inbox,) = await backend.lease("school", 10, 3600)
        assert await backend.lease("csc", 10, 30) == []
        # When the new delivery process releases its webhook partners' leases
        assert await backend.release_leases_of(["csc", "no-such-partner"]) == 2
        # Then they are leased again at once (a new attempt), long before they would expire
        again = await backend.lease("csc", 10, 30)
        assert [(x.delivery_id, x.attempt) for x in again] == [("dlv_0001", 2), ("dlv_0002", 2)]
        # and the dead holder's leases are lost: it cannot complete them any more
        assert await backend.complete_many([(x, AuditEvent("delivery.succeeded")) for x in dead_holders]) == [
            False,
            False,
        ]
        # and the pull partner's inbox lease was not touched
        assert await backend.ack("school", inbox.delivery_id, AuditEvent("delivery.acknowledged"))
        by = {s.recipient: s for s in await backend.stats()}
        assert (by["csc"].leased, by["school"].delivered) == (2, 1)

    async def test_nothing_to_release(self, backend: SqliteBackend, keyring: Keyring) -> None:
        await backend.accept(*records(keyring, 1, recipient="csc"))
        assert await backend.release_leases_of([]) == 0
        assert await backend.release_leases_of(["csc"]) == 0  # ready, not leased
        assert [x.delivery_id for x in await backend.lease("csc", 10, 30)] == ["dlv_0001"]

    def test_every_backend_offers_it_the_scale_out_ones_per_holder(self, tmp_path: Path) -> None:
        # On the scale-out backends each object has its own holder unless told otherwise
        # (the contract test checks another holder's leases are never released).
        assert isinstance(SqliteBackend(tmp_path / "gw.db"), ReleasesPartnerLeases)
        pg_a, pg_b = PostgresBackend("postgresql://unused"), PostgresBackend("postgresql://unused")
        assert isinstance(pg_a, ReleasesPartnerLeases)
        assert pg_a.lease_holder != pg_b.lease_holder
        assert pg_a.new_lease_token().startswith(pg_a.lease_holder + ".")
        assert isinstance(RabbitQueueBackend("postgresql://unused", "amqp://unused"), ReleasesPartnerLeases)
