"""Several gateway instances on one store decide with the same consent registry: a consent
or a withdrawal recorded through one instance is in force on the others within
``consent_sync_seconds``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.store.base import StoredConsent
from gateway.store.sqlite import SqliteBackend
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.test_consent_flow import IG, record_consent, send, status
from tests.support import CSC, eventually


async def taken_in(gw: RunningGateway, record_id: str) -> None:
    async def knows() -> bool:
        return gw.services.consents.knows(record_id)

    await eventually(knows, 10)


async def csc_decision(gw: RunningGateway, message_id: str) -> tuple[str, str]:
    doc = await status(gw, message_id)
    csc = next(r for r in doc["recipients"] if r["partner"] == CSC)
    return csc["decision"], csc["rule"]


class TestTwoInstances:
    async def test_consent_and_withdrawal_recorded_on_one_instance_govern_the_other(
        self, start_gateway: GatewayFactory, dsn: str, tmp_path: Path
    ) -> None:
        # Given two instances on one PostgreSQL database, one keyring
        settings = {
            "store": {"backend": "postgresql", "url": dsn, "pool_size": 4},
            "keyring": {"path": str(tmp_path / "shared-keyring.json"), "create_if_missing": True},
            "consent_sync_seconds": 0.1,
        }
        a, b = [await start_gateway(settings_extra=settings) for _ in range(2)]
        # (without consent, b holds a consent-based referral for review)
        assert await csc_decision(b, await send(b)) == ("review", "consent-unknown")

        # When the IG lead records consent through instance a
        given = await record_consent(a, "given")

        # Then instance b takes it in, and decides with it
        await taken_in(b, given["record_id"])
        assert await csc_decision(b, await send(b)) == ("permit", "permit")

        # And when consent is withdrawn through instance a, b refuses the next referral
        async with a.http.post(
            a.url(f"/v1/consents/{given['record_id']}/withdraw"),
            json={"reason": "parent withdrew consent by phone"},
            headers=IG,
        ) as r:
            assert r.status == 201
            withdrawal: dict[str, Any] = await r.json()
        await taken_in(b, withdrawal["record_id"])
        assert await csc_decision(b, await send(b)) == ("deny", "consent-refused")


def consent(record_id: str) -> StoredConsent:
    return StoredConsent(
        record_id=record_id,
        subject="pseudonym-of-a-test-child",
        purpose="early-help",
        scope=CSC,
        state="given",
        decided_by="parent-with-parental-responsibility",
        recorded_at=1_800_000_000.0,
        expires_at=None,
        evidence_ref=None,
        recorded_by="ig:test",
    )


class TestConsentsSince:
    async def test_returns_each_record_once_after_the_seq_it_was_asked_from(self, tmp_path: Path) -> None:
        backend = SqliteBackend(tmp_path / "gw.db")
        await backend.open()
        try:
            start = await backend.audit_head_seq()
            await backend.record_consent(consent("con_1"), [])
            await backend.record_consent(consent("con_2"), [])
            head, records = await backend.consents_since(start)
            assert [r.record_id for r in records] == ["con_1", "con_2"]
            assert head == await backend.audit_head_seq()
            assert await backend.consents_since(head) == (head, [])
            await backend.record_consent(consent("con_3"), [])
            _, later = await backend.consents_since(head)
            assert [r.record_id for r in later] == ["con_3"]
        finally:
            await backend.close()
