"""The console's read-only store queries (``ConsoleReads``) on the embedded SQLite backend
and on a real PostgreSQL server (``tests.servers``): same data, same answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.audit import AuditEvent
from gateway.crypto import Keyring, generate_keyring
from gateway.store.base import (
    Backend,
    ConsoleReads,
    DecisionRecord,
    DeliveryRecord,
    InboundRecord,
    MessageQuery,
)
from gateway.store.postgres import PostgresBackend
from gateway.store.sqlite import SqliteBackend
from tests.servers import postgres_server


@pytest.fixture
async def keyring(tmp_path: Path) -> Keyring:
    await asyncio.to_thread(generate_keyring, tmp_path / "keyring.json")
    return await asyncio.to_thread(Keyring.load, tmp_path / "keyring.json")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        backend: Backend = SqliteBackend(tmp_path / "gw.db")
        await backend.open()
        try:
            yield backend
        finally:
            await backend.close()
        return
    server = postgres_server(request)
    async with server.database() as dsn:
        backend = PostgresBackend(dsn, pool_size=2)
        await backend.open()
        try:
            yield backend
        finally:
            await backend.close()


async def accept(
    backend: Backend,
    ring: Keyring,
    n: int,
    *,
    source: str,
    recipient: str,
    subjects: tuple[str, ...],
    at: float,
) -> str:
    mid = f"msg_{n:04d}"
    dec = DecisionRecord(f"dec_{n:04d}", mid, recipient, "permit", "permit", "agr", ("identity.core",), "v1")
    dlv = DeliveryRecord(
        f"dlv_{n:04d}",
        mid,
        dec.decision_id,
        recipient,
        f"{recipient}:{n}",
        "application/json",
        ring.seal(b"{}", f"dlv_{n:04d}"),
        3,
    )
    inbound = InboundRecord(
        mid,
        source,
        f"event.type-{n % 2}",
        "safeguarding",
        at,
        "b",
        ring.seal(b'{"n": %d}' % n, mid),
        subjects,
    )
    audit = [
        AuditEvent("message.received", {"subjects": list(subjects)}, mid, source),
        AuditEvent("decision.made", {"recipient": recipient, "effect": "permit"}, mid, recipient),
    ]
    await backend.accept(inbound, [dec], [dlv], audit)
    return mid


def reads(backend: Backend) -> ConsoleReads:
    assert isinstance(backend, ConsoleReads)
    return backend


class TestConsoleReads:
    async def test_search_filters_and_orders_newest_first(self, store: Backend, keyring: Keyring) -> None:
        a = await accept(store, keyring, 1, source="police", recipient="csc", subjects=("s1",), at=100.0)
        b = await accept(store, keyring, 2, source="school", recipient="csc", subjects=("s2",), at=200.0)
        c = await accept(
            store, keyring, 3, source="police", recipient="school", subjects=("s1", "s3"), at=300.0
        )
        r = reads(store)

        async def ids(**kw: object) -> list[str]:
            return [m.message_id for m in await r.search_messages(MessageQuery(**kw))]  # type: ignore[arg-type]

        assert await ids() == [c, b, a]
        assert await ids(source="police") == [c, a]
        assert await ids(recipient="csc") == [b, a]
        assert await ids(recipient="csc", status="ready") == [b, a]
        assert await ids(status="delivered") == []
        assert await ids(event_type="event.type-1") == [c, a]
        assert await ids(message_id=b) == [b]
        assert await ids(since=150.0, until=250.0) == [b]
        assert await ids(limit=1) == [c]
        [found] = await r.search_messages(MessageQuery(message_id=c))
        assert found.deliveries == (("school", "ready"),)
        assert (found.source, found.purpose, found.received_at) == ("police", "safeguarding", 300.0)

    async def test_audit_by_message_and_kind_and_subjects(self, store: Backend, keyring: Keyring) -> None:
        a = await accept(store, keyring, 1, source="police", recipient="csc", subjects=("s1",), at=100.0)
        b = await accept(
            store, keyring, 2, source="police", recipient="csc", subjects=("s11", "s2"), at=200.0
        )
        await store.append_audit([AuditEvent("message.rejected", {"rules": ["r"]}, None, "police")])
        r = reads(store)
        assert [x.kind for x in await r.audit_for_message(a)] == ["message.received", "decision.made"]
        recent = await r.recent_audit(["message.rejected", "decision.made"], 2)
        assert [x.kind for x in recent] == ["message.rejected", "decision.made"]
        assert recent[1].message_id == b
        assert await r.recent_audit([], 5) == []
        assert await r.messages_about("s1", 10) == [a], "whole pseudonyms only: s11 is not s1"
        assert await r.messages_about("s2", 10) == [b]
        assert await r.messages_about("nobody", 10) == []
        sealed = await r.load_canonical(a)
        assert sealed is not None
        assert keyring.open(sealed, a) == b'{"n": 1}'
        assert await r.load_canonical("msg_none") is None
