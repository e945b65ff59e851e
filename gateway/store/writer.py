"""Group commit for SQLite: one writer thread runs queued operations in batches, one
transaction (and so one fsync) per batch.

While a commit is on disk, new operations queue up; the next batch takes all of them. Under
load a batch holds tens to hundreds of operations, so throughput does not collapse to one
fsync per message; at low load a batch is one operation and latency is one commit.

One failing operation (e.g. a constraint error) rolls back alone and fails only its own
caller. A batch first runs without savepoints (two fewer statements per operation, each a
GIL hand-off); if any operation raises, the whole transaction rolls back and the batch runs
again with each operation inside its own SAVEPOINT, so the failing one leaves no trace and
the others commit. An operation MUST therefore be re-runnable: its only effects are on the
connection it is given (it may read its inputs, the clock and random ids, never append to
outside state). A caller's future is resolved only after the COMMIT returned: an awaited
``run`` means durable.

In the attempt without savepoints, an operation run with ``gathers=True`` (only
``SqliteBackend.accept``) does not insert the rows it writes with ``insert_rows`` when it
runs: they are gathered, and inserted as one multi-row statement per table (and per up to
``MULTI_ROW`` rows) when the run of consecutive gathering operations ends, that is before
the batch's next operation of any other kind and after its last one. So an accept's four
tables take four statements per run of accepts instead of four per message, and every
other operation still sees everything the operations queued before it wrote (a consent
withdrawal MUST find, and cancel, a delivery accepted just before it in the same batch).
Accepts among themselves are concurrent (no caller can have seen another's effect before
the COMMIT), so inserting their rows together, in the order they were gathered, is one more
valid order. A gathering operation MUST NOT read back rows it or another gathering operation
wrote with ``insert_rows`` (an accept only reads the idempotency table: a duplicate key in
one run of accepts fails the gathered insert, and the batch's run with savepoints, where
every row is inserted at once, then finds it).

The connection is a ``WriterConnection``: within one transaction it remembers the audit
chain's head (``audit_head``) after each append, so consecutive operations need not read it
back (nor see rows still gathered). The head is forgotten at every BEGIN (another process
may have appended while this one did not hold the lock) and at every rollback; it MUST NOT
be trusted outside the transaction that set it.

Several processes may write one file (``delivery.process: separate``, the CLI beside a
running gateway). Each batch transaction (BEGIN IMMEDIATE ... COMMIT) runs under an
exclusive ``fcntl.flock`` on ``<db>-writer.lock``, taken in the writer thread: a waiting
writer sleeps in the kernel and wakes the moment the other commits, instead of SQLite's
``busy_timeout`` retry sleeps (which, with two writers, gave less throughput than one).
``busy_timeout`` stays as the backstop for writers that do not take the lock. The lock MUST
NOT be held across anything but one batch, and MUST NOT be taken on an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class _Job:
    op: Op
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    gathers: bool = False


_Result = tuple[_Job, Any, BaseException | None]
"""An operation's outcome: its job, its value, or the error it raised."""

_STOP = object()


def lock_path(path: Path) -> Path:
    """The writers' lock file beside the database."""
    return path.with_name(path.name + "-writer.lock")


@contextlib.contextmanager
def writer_lock(fd: int) -> Iterator[None]:
    """Hold the exclusive writers' lock (blocking in the kernel until it is free)."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class WriterConnection(sqlite3.Connection):
    """The writer thread's connection: a ``sqlite3.Connection`` that carries the audit
    chain's head and the gathered rows within the current transaction (module docstring)."""

    audit_head: tuple[int, str] | None = None
    """(seq, hash) of the newest audit record, set by an append in this transaction."""
    gathered: dict[str, tuple[int, list[Sequence[Any]]]] | None = None
    """While not ``None``: rows ``insert_rows`` holds back, per INSERT head (width, rows)."""


MULTI_ROW = 64
"""Most rows in one INSERT statement. Fewer rows go as power-of-two chunks, so each table
has at most 7 statement texts (1..64 rows), all kept by ``sqlite3``'s statement cache."""


def insert_rows(conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (each ``width`` values) as multi-row INSERTs; on the writer's
    connection, for an operation run with ``gathers=True`` in the attempt without
    savepoints, gathered until its run of gathering operations ends (module docstring).
    ``head`` (the SQL before ``VALUES``) MUST be a fixed string, never built from a value."""
    if not rows:
        return
    if isinstance(conn, WriterConnection) and conn.gathered is not None:
        conn.gathered.setdefault(head, (width, []))[1].extend(rows)
        return
    _execute_rows(conn, head, width, rows)


_MAX_VARIABLES = 999
"""SQLite's smallest default limit of ``?`` per statement (before 3.32): a chunk stays under it."""


def _execute_rows(conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    one = "(" + ",".join("?" * width) + ")"
    most = min(MULTI_ROW, 1 << ((_MAX_VARIABLES // width).bit_length() - 1))
    start = 0
    while start < len(rows):
        left = len(rows) - start
        size = most if left >= most else 1 << (left.bit_length() - 1)
        chunk = rows[start : start + size]
        conn.execute(f"{head} VALUES {','.join([one] * size)}", [v for row in chunk for v in row])
        start += size


PAGE_SIZE = 8192
"""Page size of a database this module creates. An accept writes rows of 1-2.5 KB (sealed
payloads, decision explanations): on 4 KB pages most of them took a page of their own, on
8 KB pages the file and the WAL written per commit are about a third smaller, and the
writer's CPU per accept about a quarter lower (``bench/store.py``). An existing file keeps
its page size (SQLite changes it only on a new file); either works the same."""


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous`` as configured (never lowered here)."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30, factory=WriterConnection
    )
    # Before journal_mode, which writes the header of a new file; a no-op on an existing one.
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class GroupCommitWriter:
    def __init__(self, path: Path, *, synchronous: str = "FULL", max_batch: int = 512) -> None:
        self._path = path
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.operations = 0
        self.lock_held_seconds = 0.0
        """Wall time the writers' lock was held for batches (the other process waits that long)."""

    def start(self, init: Op) -> None:
        """Open the connection and run ``init`` (schema set-up) under the writers' lock.
        Blocking: call it off the event loop."""
        fd = os.open(lock_path(self._path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            conn = connect(self._path, self._synchronous)
            with writer_lock(fd):
                init(conn)
        except BaseException:
            os.close(fd)
            raise
        self._thread = threading.Thread(
            target=self._serve, args=(conn, fd), name="sqlite-writer", daemon=True
        )
        self._thread.start()

    async def run(self, op: Callable[[sqlite3.Connection], T], *, gathers: bool = False) -> T:
        """Run ``op`` in the next batch; return when its batch is committed. ``gathers``: its
        ``insert_rows`` may be deferred to the end of its run of gathering operations (module
        docstring); only an operation that never reads what such rows would show may say so."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the SQLite writer is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(op, fut, loop, gathers))
        return await fut

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _serve(self, conn: sqlite3.Connection, lock_fd: int) -> None:
        try:
            while True:
                first = self._jobs.get()
                if first is _STOP:
                    return
                batch: list[_Job] = [first]  # type: ignore[list-item]
                stop_after = False
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop_after = True
                        break
                    batch.append(nxt)  # type: ignore[arg-type]
                with writer_lock(lock_fd):
                    locked = time.perf_counter()
                    self._run_batch(conn, batch)
                    self.lock_held_seconds += time.perf_counter() - locked
                if stop_after:
                    return
        finally:
            conn.close()
            os.close(lock_fd)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        try:
            self._begin(conn)
            results = self._run_optimistic(conn, batch)
            if results is None:
                # An operation failed: nothing of this attempt is kept; run again with a
                # savepoint per operation so that only the failing ones roll back.
                self._begin(conn)
                results = self._run_with_savepoints(conn, batch)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the batch failed; every caller learns it
            _forget_head(conn)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(job, None, exc) for job in batch]
        self.batches += 1
        self.operations += len(batch)
        # One wake-up per event loop per batch, not per operation: each cross-thread wake-up
        # is a socket write, and re-taking the GIL after it can cost the writer a whole
        # switch interval while the loop is busy.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
        for result in results:
            by_loop.setdefault(result[0].loop, []).append(result)
        for loop, resolved in by_loop.items():
            # If the caller's loop has closed, the effect is committed all the same.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_all, resolved)

    @staticmethod
    def _begin(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        _forget_head(conn)  # another process may have appended before this transaction

    @staticmethod
    def _run_optimistic(conn: sqlite3.Connection, batch: list[_Job]) -> list[_Result] | None:
        """Every operation in one transaction, no savepoints; a gathering operation's rows
        are inserted before the next operation that does not gather, and at the end.
        ``None`` (and the transaction rolled back) as soon as anything raises."""
        results: list[_Result] = []
        writer_conn = conn if isinstance(conn, WriterConnection) else None
        gathered: dict[str, tuple[int, list[Sequence[Any]]]] = {}
        try:
            for job in batch:
                if not job.gathers and gathered:
                    _insert_gathered(conn, gathered)
                if writer_conn is not None:
                    writer_conn.gathered = gathered if job.gathers else None
                results.append((job, job.op(conn), None))
            if writer_conn is not None:
                writer_conn.gathered = None
            _insert_gathered(conn, gathered)
        except Exception:  # noqa: BLE001 - the batch is run again with savepoints
            _forget_head(conn)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return None
        finally:
            if writer_conn is not None:
                writer_conn.gathered = None
        return results

    @staticmethod
    def _run_with_savepoints(conn: sqlite3.Connection, batch: list[_Job]) -> list[_Result]:
        results: list[_Result] = []
        for job in batch:
            conn.execute("SAVEPOINT op")
            try:
                value = job.op(conn)
            except Exception as exc:  # noqa: BLE001 - handed to the caller's future
                _forget_head(conn)
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                results.append((job, None, exc))
            else:
                conn.execute("RELEASE op")
                results.append((job, value, None))
        return results


def _insert_gathered(conn: sqlite3.Connection, gathered: dict[str, tuple[int, list[Sequence[Any]]]]) -> None:
    """Insert the rows gathered so far, table by table in the order first gathered (parents
    before children, for the foreign keys), and forget them."""
    for head, (width, rows) in gathered.items():
        _execute_rows(conn, head, width, rows)
    gathered.clear()


def _forget_head(conn: sqlite3.Connection) -> None:
    if isinstance(conn, WriterConnection):
        conn.audit_head = None


def _resolve_all(results: list[_Result]) -> None:
    for job, value, error in results:
        if job.future.cancelled():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)
