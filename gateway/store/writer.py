"""Group commit for SQLite: one writer thread runs queued operations in batches, one
transaction (and so one fsync) per batch.

While a commit is on disk, new operations queue up; the next batch takes all of them. Under
load a batch holds tens to hundreds of operations, so throughput does not collapse to one
fsync per message; at low load a batch is one operation and latency is one commit.

Each operation runs inside a SAVEPOINT, so one failing operation (e.g. a constraint error)
rolls back alone and fails only its own caller. A caller's future is resolved only after
the COMMIT returned: an awaited ``run`` means durable.

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
from collections.abc import Callable, Iterator
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


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
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

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the SQLite writer is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(op, fut, loop))
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
                    self._run_batch(conn, batch)
                if stop_after:
                    return
        finally:
            conn.close()
            os.close(lock_fd)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        results: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = job.op(conn)
                except Exception as exc:  # noqa: BLE001 - handed to the caller's future
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((job, None, exc))
                else:
                    conn.execute("RELEASE op")
                    results.append((job, value, None))
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the batch failed; every caller learns it
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(job, None, exc) for job in batch]
        self.batches += 1
        self.operations += len(batch)
        # One wake-up per event loop per batch, not per operation: each cross-thread wake-up
        # is a socket write, and re-taking the GIL after it can cost the writer a whole
        # switch interval while the loop is busy.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for result in results:
            by_loop.setdefault(result[0].loop, []).append(result)
        for loop, resolved in by_loop.items():
            # If the caller's loop has closed, the effect is committed all the same.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve_all, resolved)


def _resolve_all(results: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, value, error in results:
        if job.future.cancelled():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)
