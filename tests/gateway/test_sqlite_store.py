"""What is particular to the embedded backend, on a real SQLite file: group commit, the file's
bytes, single-instance lease recovery, and tampering with the file. The contracts every
backend keeps are in ``test_store_contract.py``."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.audit import verify_chain
from gateway.crypto import Keyring
from gateway.store.sqlite import SqliteBackend
from tests.gateway.test_store_contract import records
from tests.support import read_all


class TestAccept:
    async def test_concurrent_accepts_are_group_committed(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        before = backend.commit_stats
        await asyncio.gather(*(backend.accept(*records(keyring, i)) for i in range(200)))
        batches, ops = (a - b for a, b in zip(backend.commit_stats, before, strict=True))
        assert ops == 200
        assert batches < 200  # several accepts shared one transaction and one fsync

    async def test_payloads_are_stored_sealed(
        self, backend: SqliteBackend, keyring: Keyring, tmp_path: Path
    ) -> None:
        await backend.accept(*records(keyring, 1))
        await backend.close()
        raw = await asyncio.to_thread(read_all, tmp_path, "gw.db*")
        assert b"CANARY-PLAINTEXT-42" not in raw
        assert b"msg_0001" in raw  # the file was read (positive control)
        await backend.open()


class TestLeaseRecovery:
    async def test_expired_leases_return_on_restart(self, backend: SqliteBackend, keyring: Keyring) -> None:
        """The embedded gateway is the only instance: at start-up every lease is a dead
        process's and returns at once (PostgreSQL releases only expired ones)."""
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
