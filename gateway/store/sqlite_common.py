"""Helpers shared by the SQLite backend's modules."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.audit import GENESIS, AuditEvent, canonical_json, chain_hash
from gateway.store.writer import GroupCommitWriter, WriterConnection, connect, insert_rows


def wall_clock() -> float:
    return time.time()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def json_list(values: Sequence[str]) -> str:
    """A list of strings as compact JSON text (``orjson``; readers parse it with
    ``json.loads`` or SQLite's ``json_each``, to the same list as the older ``json.dumps``
    text with spaces)."""
    return orjson.dumps(list(values)).decode()


def append_audit(conn: sqlite3.Connection, events: Sequence[AuditEvent], at: float | None = None) -> None:
    """Append events to the chain. MUST run inside the caller's write transaction.

    On the writer's ``WriterConnection`` the head is taken from the connection when an
    earlier append in the same transaction left it there (the writer forgets it at every
    BEGIN and rollback), else read from the table. The rows go through ``insert_rows``, so
    in a batch's first attempt they are gathered, not yet in the table: the head kept on the
    connection is what chains the next append onto them. Code that appends MUST use this
    function, never INSERT into ``audit`` itself."""
    if not events:
        return
    cached = conn.audit_head if isinstance(conn, WriterConnection) else None
    if cached is None:
        row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0], row[1]) if row else (0, GENESIS)
    else:
        seq, prev = cached
    when = iso(at if at is not None else wall_clock())
    rows = []
    for ev in events:
        seq += 1
        data_json = canonical_json(dict(ev.data))
        digest = chain_hash(prev, seq, when, ev, data_json)
        rows.append((seq, when, ev.kind, ev.message_id, ev.partner, ev.actor, data_json, prev, digest))
        prev = digest
    insert_rows(conn, "INSERT INTO audit", 9, rows)
    if isinstance(conn, WriterConnection):
        conn.audit_head = (seq, prev)


class SqliteConnections:
    """The writer thread (group commit) and the reader connection, opened and closed
    together. ``schema`` runs once on the writer's connection at open."""

    schema = ""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError("synchronous must be FULL, EXTRA or NORMAL")
        self.path = path
        self._writer = GroupCommitWriter(path, synchronous=synchronous)
        self._reader: ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._synchronous = synchronous

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(self._writer.start, lambda conn: conn.executescript(self.schema))
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._read_conn = await self._in_reader(lambda: connect(self.path, self._synchronous))

    async def close(self) -> None:
        await self._writer.stop()
        if self._reader is not None:
            conn = self._read_conn
            if conn is not None:
                await self._in_reader(conn.close)
            reader, self._reader = self._reader, None
            await asyncio.to_thread(reader.shutdown, wait=True)

    async def _in_reader(self, fn: Any) -> Any:
        assert self._reader is not None, "store is not open"
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            assert self._read_conn is not None
            return self._read_conn.execute(sql, params).fetchall()

        rows: list[tuple[Any, ...]] = await self._in_reader(run)
        return rows

    async def ping(self) -> None:
        await self._read("SELECT 1")
        await self._writer.run(lambda conn: conn.execute("SELECT 1").fetchone())

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(batches, operations) committed so far: operations per batch shows group commit."""
        return self._writer.batches, self._writer.operations

    @property
    def lock_held_seconds(self) -> float:
        """Seconds the writers' lock was held for this store's batches so far."""
        return self._writer.lock_held_seconds
