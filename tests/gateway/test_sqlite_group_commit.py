"""The SQLite writer's group commit on a real file: a batch runs without savepoints and, when
one operation fails, runs again with a savepoint per operation, so the failing one leaves no
trace and the others commit once; the audit head kept on the connection within a
transaction never outlives it; the configured ``synchronous`` is the one in force."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import AuditEvent, verify_chain
from gateway.crypto import Keyring
from gateway.store.base import AcceptOutcome, IdempotencyMismatch, StoredConsent
from gateway.store.sqlite import SCHEMA, SqliteBackend
from gateway.store.sqlite_common import append_audit, json_list
from gateway.store.writer import MULTI_ROW, PAGE_SIZE, GroupCommitWriter, WriterConnection
from tests.gateway.test_store_contract import records

Op = Callable[[sqlite3.Connection], Any]


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[GroupCommitWriter]:
    w = GroupCommitWriter(tmp_path / "w.db", synchronous="NORMAL")
    await asyncio.to_thread(w.start, lambda c: c.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    yield w
    await w.stop()


async def one_batch(writer: GroupCommitWriter, ops: list[Op]) -> list[Any]:
    """Run ``ops`` in one batch. Returns each op's value or exception."""
    return await calls_in_one_batch(writer, [writer.run(op) for op in ops])


async def calls_in_one_batch(writer: GroupCommitWriter, calls: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Await ``calls`` (each making one writer job) as one batch: the writer is held inside a
    first operation until all of them are queued. Returns each call's value or exception."""
    gate, entered = threading.Event(), threading.Event()

    def hold(_conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(10)

    held = asyncio.ensure_future(writer.run(hold))
    assert await asyncio.to_thread(entered.wait, 10)
    before = writer.batches
    pending = [asyncio.ensure_future(c) for c in calls]
    await asyncio.sleep(0)  # each call has queued its job (they queue before their first await)
    gate.set()
    await held
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert writer.batches - before == 2  # the held batch, then all of the calls together
    return list(results)


def insert(n: int, calls: list[int] | None = None, fail: bool = False) -> Op:
    def op(conn: sqlite3.Connection) -> int:
        if calls is not None:
            calls.append(n)
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        if fail:
            raise RuntimeError(f"op {n} fails after writing")
        return n

    return op


def rows(writer: GroupCommitWriter) -> list[int]:
    with sqlite3.connect(writer._path) as conn:
        return [r[0] for r in conn.execute("SELECT n FROM t ORDER BY n")]


class TestFailingOperationInABatch:
    async def test_it_leaves_no_trace_and_the_others_commit_once(self, writer: GroupCommitWriter) -> None:
        # Given a batch whose third operation writes a row and then raises
        calls: list[int] = []
        ops = [insert(1, calls), insert(2, calls), insert(3, calls, fail=True), insert(4, calls)]

        # When it runs
        results = await one_batch(writer, ops)

        # Then only the failing caller sees an error, its row is gone, the others are stored once
        assert results[:2] == [1, 2]
        assert results[3] == 4
        assert isinstance(results[2], RuntimeError)
        assert await asyncio.to_thread(rows, writer) == [1, 2, 4]
        # and the operations before the failure ran twice (the attempt without savepoints was
        # rolled back), the rest once: an operation must be re-runnable
        assert calls == [1, 2, 3, 1, 2, 3, 4]

    async def test_a_batch_without_failures_runs_each_operation_once(self, writer: GroupCommitWriter) -> None:
        calls: list[int] = []
        results = await one_batch(writer, [insert(n, calls) for n in range(1, 6)])
        assert results == [1, 2, 3, 4, 5]
        assert calls == [1, 2, 3, 4, 5]
        assert await asyncio.to_thread(rows, writer) == [1, 2, 3, 4, 5]

    async def test_a_constraint_error_fails_alone(self, writer: GroupCommitWriter) -> None:
        results = await one_batch(writer, [insert(1), insert(1), insert(2)])
        assert results[0] == 1
        assert results[2] == 2
        assert isinstance(results[1], sqlite3.IntegrityError)
        assert await asyncio.to_thread(rows, writer) == [1, 2]


class TestGatheredRows:
    """Accepts in one batch insert their rows together at the batch's end."""

    async def test_a_batch_of_accepts_takes_one_insert_per_table(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        statements: list[str] = []
        await backend._writer.run(lambda c: c.set_trace_callback(statements.append))
        try:
            await calls_in_one_batch(
                backend._writer, [backend.accept(*records(keyring, n, child=f"c{n}")) for n in range(4)]
            )
        finally:
            await backend._writer.run(lambda c: c.set_trace_callback(None))
        inserts = [s.split(" VALUES")[0] for s in statements if s.startswith("INSERT")]
        assert sorted(inserts) == [
            "INSERT INTO audit",
            "INSERT INTO decisions",
            "INSERT INTO deliveries (id, message_id, decision_id, recipient, order_key, state,"
            " max_attempts, next_attempt_at, media_type, key_id, payload, created_at, updated_at,"
            " last_error, consent_records, review_role, review_deadline)",
            "INSERT INTO messages",
        ]
        assert not [s for s in statements if "SAVEPOINT" in s]
        assert [s.ready for s in await backend.stats()] == [4]

    async def test_a_duplicate_message_id_fails_alone_and_the_others_are_stored(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        results = await calls_in_one_batch(
            backend._writer,
            [backend.accept(*records(keyring, n)) for n in (1, 2, 1, 3)],
        )
        assert isinstance(results[2], sqlite3.IntegrityError)
        assert [r.message_id for r in results if not isinstance(r, BaseException)] == [
            "msg_0001",
            "msg_0002",
            "msg_0003",
        ]
        assert [s.ready for s in await backend.stats()] == [3]
        stored = [r async for r in backend.audit_records()]
        assert [r.data["n"] for r in stored] == [1, 2, 3]
        assert verify_chain(stored).ok

    async def test_same_idempotency_key_in_one_batch_is_a_duplicate_or_a_conflict(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        first, again, changed = await calls_in_one_batch(
            backend._writer,
            [
                backend.accept(*records(keyring, 1, key="k1", body="b")),
                backend.accept(*records(keyring, 2, key="k1", body="b")),
                backend.accept(*records(keyring, 3, key="k1", body="other")),
            ],
        )
        assert first == AcceptOutcome("msg_0001", duplicate=False)
        assert again == AcceptOutcome("msg_0001", duplicate=True)
        assert isinstance(changed, IdempotencyMismatch)
        assert [s.ready for s in await backend.stats()] == [1]

    async def test_messages_about_one_child_keep_their_order(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        await calls_in_one_batch(
            backend._writer, [backend.accept(*records(keyring, n, child="c1")) for n in (5, 3, 4)]
        )
        order = []
        for _ in range(3):
            (lease,) = await backend.lease("csc", 10, 30)
            order.append(lease.message_id)
            assert await backend.complete(lease, AuditEvent("delivery.completed"))
        assert order == ["msg_0005", "msg_0003", "msg_0004"]

    async def test_a_withdrawal_after_an_accept_in_the_same_batch_cancels_its_delivery(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        """Gathered rows are in the table before the next operation of another kind: the
        withdrawal MUST find the delivery accepted (relying on the consent) just before it."""
        # Given consent given
        given, withdrawn = (
            StoredConsent(rid, "s1", "safeguarding", "csc", state, "parent", 1.0, None, None, "ig:t")
            for rid, state in (("con_1", "given"), ("con_2", "withdrawn"))
        )
        assert await backend.record_consent(given, ["csc"]) == []
        # When an accept relying on it and then its withdrawal are committed in one batch
        accepted, cancelled = await calls_in_one_batch(
            backend._writer,
            [
                backend.accept(*records(keyring, 1, child="a", consent_records=("con_1",))),
                backend.record_consent(withdrawn, ["csc"]),
            ],
        )
        # Then the delivery is cancelled, nothing is left to lease, and the chain verifies
        assert accepted == AcceptOutcome("msg_0001", duplicate=False)
        assert cancelled == ["dlv_0001"]
        assert await backend.lease("csc", 10, 30) == []
        stored = [r async for r in backend.audit_records()]
        assert [r.kind for r in stored][-3:] == ["message.received", "consent.recorded", "delivery.withdrawn"]
        assert verify_chain(stored).ok

    async def test_accepts_on_both_sides_of_another_operation_chain_in_order(
        self, backend: SqliteBackend, keyring: Keyring
    ) -> None:
        await calls_in_one_batch(
            backend._writer,
            [
                backend.accept(*records(keyring, 1, child="a")),
                backend.append_audit([AuditEvent("between")]),
                backend.accept(*records(keyring, 2, child="b")),
            ],
        )
        stored = [r async for r in backend.audit_records()]
        assert [r.kind for r in stored] == ["message.received", "between", "message.received"]
        assert verify_chain(stored).ok
        assert [s.ready for s in await backend.stats()] == [2]


def audit_op(kind: str, fail: bool = False) -> Op:
    def op(conn: sqlite3.Connection) -> None:
        append_audit(conn, [AuditEvent(kind, {"n": kind})], 1.0)
        if fail:
            raise RuntimeError("fails after appending")

    return op


class TestAuditHeadWithinATransaction:
    async def test_appends_in_one_batch_make_one_chain_and_a_failed_one_leaves_no_gap(
        self, backend: SqliteBackend
    ) -> None:
        writer = backend._writer
        results = await one_batch(
            writer, [audit_op("a"), audit_op("b", fail=True), audit_op("c"), audit_op("d")]
        )
        assert isinstance(results[1], RuntimeError)
        stored = [r async for r in backend.audit_records()]
        assert [r.kind for r in stored] == ["a", "c", "d"]
        assert [r.seq for r in stored] == [1, 2, 3]
        assert verify_chain(stored).ok

    async def test_another_writer_s_append_between_batches_is_chained_onto(
        self, backend: SqliteBackend, tmp_path: Path
    ) -> None:
        # Given this writer appended, so its connection knew the head in that transaction
        await backend.append_audit([AuditEvent("first")])
        other = SqliteBackend(tmp_path / "gw.db")
        await other.open()
        try:
            # When another process appends, and then this writer appends again
            await other.append_audit([AuditEvent("other")])
            await backend.append_audit([AuditEvent("again")])
        finally:
            await other.close()
        # Then the chain is linear: the head was read again in the new transaction
        stored = [r async for r in backend.audit_records()]
        assert [r.kind for r in stored] == ["first", "other", "again"]
        assert verify_chain(stored).ok

    async def test_the_head_is_not_kept_after_a_transaction(self, backend: SqliteBackend) -> None:
        await backend.append_audit([AuditEvent("x")])
        writer = backend._writer

        def head_at_begin(conn: sqlite3.Connection) -> Any:
            assert isinstance(conn, WriterConnection)
            return conn.audit_head

        assert await writer.run(head_at_begin) is None

    async def test_more_events_than_one_statement_holds_are_all_chained(self, backend: SqliteBackend) -> None:
        events = [AuditEvent("many", {"i": i}) for i in range(MULTI_ROW * 2 + 3)]
        await backend.append_audit(events)
        await backend.append_audit([AuditEvent("after")])
        stored = [r async for r in backend.audit_records()]
        assert [r.data.get("i") for r in stored[:-1]] == list(range(MULTI_ROW * 2 + 3))
        assert len(stored) == MULTI_ROW * 2 + 4
        assert verify_chain(stored).ok


class TestStoredLists:
    def test_json_list_parses_like_the_older_text(self) -> None:
        values = ["identity.core", "Zoë ✓", 'quote " and \\']
        assert json.loads(json_list(values)) == json.loads(json.dumps(values)) == values

    async def test_subjects_stored_the_older_way_are_still_found(
        self, backend: SqliteBackend, keyring: Keyring, tmp_path: Path
    ) -> None:
        await backend.accept(*records(keyring, 1))  # subjects ("s1",)
        await backend.accept(*records(keyring, 2))

        def as_before(path: Path) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute(
                    "UPDATE messages SET subjects=? WHERE id='msg_0002'", (json.dumps(["s0", "s1"]),)
                )

        await asyncio.to_thread(as_before, tmp_path / "gw.db")
        assert await backend.messages_about("s1", 10) == ["msg_0001", "msg_0002"]


class TestDurabilitySetting:
    @pytest.mark.parametrize(("setting", "level"), [("FULL", 2), ("NORMAL", 1), ("EXTRA", 3)])
    async def test_the_configured_synchronous_is_in_force(
        self, tmp_path: Path, setting: str, level: int
    ) -> None:
        b = SqliteBackend(tmp_path / "gw.db", synchronous=setting)
        await b.open()
        try:
            got = await b._writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        finally:
            await b.close()
        assert got == level


class TestPageSize:
    @staticmethod
    def page_size(path: Path) -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])

    async def test_a_new_file_gets_the_larger_pages(self, backend: SqliteBackend, tmp_path: Path) -> None:
        assert await asyncio.to_thread(self.page_size, tmp_path / "gw.db") == PAGE_SIZE

    async def test_an_existing_file_keeps_its_pages_and_works(self, tmp_path: Path, keyring: Keyring) -> None:
        # Given a store created before the change, on 4 KB pages, holding one message
        def old_file(path: Path) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA page_size=4096")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)

        db = tmp_path / "gw.db"
        await asyncio.to_thread(old_file, db)
        b = SqliteBackend(db)
        await b.open()
        try:
            # When it is opened and written again
            await b.accept(*records(keyring, 1))
            await b.append_audit([AuditEvent("after")])
            stored = [r async for r in b.audit_records()]
        finally:
            await b.close()
        # Then it keeps its page size and its chain
        assert await asyncio.to_thread(self.page_size, db) == 4096
        assert verify_chain(stored).records == 2
