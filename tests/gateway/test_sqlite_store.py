"""The embedded backend's contracts (gateway.store.base), on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.audit import AuditEvent, verify_chain
from gateway.crypto import Keyring, generate_keyring
from gateway.store.base import DecisionRecord, DeliveryRecord, IdempotencyMismatch, InboundRecord
from gateway.store.sqlite import SqliteBackend
from tests.support import read_all


@pytest.fixture
async def keyring(tmp_path: Path) -> Keyring:
    await asyncio.to_thread(generate_keyring, tmp_path / "keyring.json")
    return await asyncio.to_thread(Keyring.load, tmp_path / "keyring.json")


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    b = SqliteBackend(tmp_path / "gw.db")
    await b.open()
    yield b
    await b.close()


def records(
    ring: Keyring,
    n: int,
    *,
    child: str = "c1",
    key: str | None = None,
    body: str = "b",
    recipient: str = "csc",
) -> tuple[InboundRecord, list[DecisionRecord], list[DeliveryRecord], list[AuditEvent]]:
    mid = f"msg_{n:04d}"
    inbound = InboundRecord(
        mid,
        "police",
        "police.domestic-abuse-incident",
        "safeguarding",
        1.0,
        body,
        ring.seal(b"{}", mid),
        ("s1",),
        key,
    )
    dec = DecisionRecord(f"dec_{n:04d}", mid, recipient, "permit", "permit", "agr", ("identity.core",), "v1")
    dlv = DeliveryRecord(
        f"dlv_{n:04d}",
        mid,
        dec.decision_id,
        recipient,
        f"{recipient}:{child}",
        "application/json",
        ring.seal(b"CANARY-PLAINTEXT-42", f"dlv_{n:04d}"),
        3,
    )
    return inbound, [dec], [dlv], [AuditEvent("message.received", {"n": n}, mid, "police")]


class TestAccept:
    async def test_idempotency_same_body_returns_first_different_body_conflicts(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        first = await backend.accept(*records(keyring, 1, key="k1"))
        again = await backend.accept(*records(keyring, 2, key="k1"))
        assert (first.duplicate, again.duplicate, again.message_id) == (False, True, "msg_0001")
        with pytest.raises(IdempotencyMismatch) as info:
            await backend.accept(*records(keyring, 3, key="k1", body="other"))
        assert info.value.message_id == "msg_0001"
        assert [s.ready for s in await backend.stats()] == [1]

    async def test_concurrent_accepts_are_group_committed(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        before = backend.commit_stats
        await asyncio.gather(*(backend.accept(*records(keyring, i)) for i in range(200)))
        batches, ops = (a - b for a, b in zip(backend.commit_stats, before, strict=True))
        assert ops == 200
        assert batches < 200  # several accepts shared one transaction and one fsync

    async def test_a_failing_operation_fails_alone(self, backend: SqliteBackend, keyring: Keyring) -> None:
        ok1, dup, ok2 = await asyncio.gather(
            backend.accept(*records(keyring, 1)),
            backend.accept(*records(keyring, 1)),  # same message id: primary key violation
            backend.accept(*records(keyring, 2)),
            return_exceptions=True,
        )
        assert isinstance(dup, sqlite3.IntegrityError)
        assert not isinstance(ok1, BaseException)
        assert not isinstance(ok2, BaseException)
        assert sum(s.ready for s in await backend.stats()) == 2

    async def test_payloads_are_stored_sealed(
        self, backend: SqliteBackend, keyring: Keyring, tmp_path: Path
    ) -> None:
        await backend.accept(*records(keyring, 1))
        await backend.close()
        raw = await asyncio.to_thread(read_all, tmp_path, "gw.db*")
        assert b"CANARY-PLAINTEXT-42" not in raw
        assert b"msg_0001" in raw  # the file was read (positive control)
        await backend.open()


class TestLeaseOrder:
    async def test_only_the_head_of_each_child_is_leased(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        for i, child in enumerate(["a", "a", "b", "a"]):
            await backend.accept(*records(keyring, i, child=child))
        first = await backend.lease("csc", 10, 30)
        assert [x.delivery_id for x in first] == ["dlv_0000", "dlv_0002"]
        assert await backend.lease("csc", 10, 30) == []
        assert await backend.complete(first[0], AuditEvent("delivery.succeeded"))
        assert [x.delivery_id for x in await backend.lease("csc", 10, 30)] == ["dlv_0001"]

    async def test_retry_waits_and_blocks_the_same_child(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1, child="a"))
        await backend.accept(*records(keyring, 2, child="a"))
        (lease,) = await backend.lease("csc", 10, 30)
        assert await backend.fail(lease, "http-503", 2e9, AuditEvent("delivery.attempt_failed")) == "ready"
        assert await backend.lease("csc", 10, 30) == []  # not due, and the next one must wait

    async def test_budget_exhausted_dead_letters_and_unblocks(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1, child="a"))
        await backend.accept(*records(keyring, 2, child="a"))
        for attempt in (1, 2, 3):
            (lease,) = await backend.lease("csc", 1, 30)
            assert lease.attempt == attempt
            state = await backend.fail(lease, "http-500", 0.0, AuditEvent("delivery.attempt_failed"))
        assert state == "dead"
        (dead,) = await backend.dead_letters("csc", 10)
        assert (dead.delivery_id, dead.attempts, dead.last_error) == ("dlv_0001", 3, "http-500")
        assert [x.delivery_id for x in await backend.lease("csc", 10, 30)] == ["dlv_0002"]

    async def test_replay_keeps_ids_and_is_audited(self, backend: SqliteBackend, keyring: Keyring) -> None:
        await backend.accept(*records(keyring, 1))
        (lease,) = await backend.lease("csc", 1, 30)
        await backend.fail(lease, "http-400", None, AuditEvent("delivery.attempt_failed"))
        assert not await backend.replay("dlv_nope", "typo", "op")
        assert await backend.replay("dlv_0001", "partner fixed their endpoint", "operator:alice-test")
        (again,) = await backend.lease("csc", 1, 30)
        assert (again.delivery_id, again.message_id, again.attempt) == ("dlv_0001", "msg_0001", 1)
        kinds = [(r.kind, r.data.get("reason")) async for r in backend.audit_records()]
        assert ("delivery.replayed", "partner fixed their endpoint") in kinds
        assert ("delivery.dead_lettered", None) in kinds

    async def test_expired_leases_return_on_restart(self, backend: SqliteBackend, keyring: Keyring) -> None:
        await backend.accept(*records(keyring, 1))
        assert len(await backend.lease("csc", 1, 30)) == 1
        assert await backend.release_expired_leases() == 1
        assert len(await backend.lease("csc", 1, 30)) == 1


class TestAuditChain:
    async def test_chain_verifies_and_detects_edit_removal_and_reorder(
        self, backend: SqliteBackend, keyring: Keyring, tmp_path: Path
    ) -> None:
        for i in range(5):
            await backend.accept(*records(keyring, i))
        good = verify_chain([r async for r in backend.audit_records()])
        assert (good.ok, good.records) == (True, 5)
        await backend.close()

        def tamper(sql: str) -> list[str]:
            path = tmp_path / "copy.db"
            src = sqlite3.connect(tmp_path / "gw.db")
            dst = sqlite3.connect(path)
            src.backup(dst)
            src.close()
            # An attacker with file access can drop the append-only triggers; the chain still tells.
            dst.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;" + sql)
            dst.commit()
            dst.close()
            async_backend = SqliteBackend(path)

            async def read() -> list[str]:
                await async_backend.open()
                try:
                    return list(verify_chain([r async for r in async_backend.audit_records()]).problems)
                finally:
                    await async_backend.close()

            return asyncio.run(read())

        edited = await asyncio.to_thread(tamper, "UPDATE audit SET data='{\"n\":99}' WHERE seq=3;")
        assert any("seq 3" in p and "edited" in p for p in edited)
        removed = await asyncio.to_thread(tamper, "DELETE FROM audit WHERE seq=2;")
        assert any("removed" in p for p in removed)
        swapped = await asyncio.to_thread(
            tamper,
            "UPDATE audit SET seq=-1 WHERE seq=2; UPDATE audit SET seq=2 "
            "WHERE seq=4; UPDATE audit SET seq=4 WHERE seq=-1;",
        )
        assert swapped
        await backend.open()

    async def test_the_database_refuses_updates_and_deletes(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await backend._writer.run(lambda c: c.execute("DELETE FROM audit"))

    async def test_truncation_is_caught_with_an_anchor(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        await backend.accept(*records(keyring, 1))
        anchor = verify_chain([r async for r in backend.audit_records()]).head
        assert verify_chain([r async for r in backend.audit_records()], anchor).ok
        assert not verify_chain([], anchor).ok
