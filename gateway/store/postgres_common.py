"""Helpers shared by the PostgreSQL backend's modules: the connection pool and the audit
chain's append.

Several gateway instances share one database. Every write is one transaction on a pooled
connection (READ COMMITTED); ``append_audit`` serialises the audit chain across all of
them by locking the one-row ``audit_head`` table ``FOR UPDATE``, as the last step of the
transaction so the lock is held only for the insert and the COMMIT.

Times are the gateway's wall clock (as on SQLite, and as the delivery workers compute
``retry_at``): instances MUST run with synchronised clocks (NTP) or leases expire early.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway.audit import AuditEvent, canonical_json, chain_hash
from gateway.errors import ConfigError
from gateway.store.postgres_schema import Connection, check_version, connect_error

Pool = asyncpg.Pool


def wall_clock() -> float:
    return time.time()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


async def append_audit(conn: Connection, events: Sequence[AuditEvent], at: float | None = None) -> None:
    """Append events to the chain. MUST run inside the caller's transaction, as its last
    write: the chain head stays locked until COMMIT."""
    if not events:
        return
    head = await conn.fetchrow("SELECT seq, hash FROM audit_head FOR UPDATE")
    assert head is not None, "audit_head is seeded by the first migration"
    seq: int = head["seq"]
    prev: str = head["hash"]
    when = iso(at if at is not None else wall_clock())
    cols: list[list[Any]] = [[] for _ in range(8)]
    for ev in events:
        seq += 1
        data_json = canonical_json(dict(ev.data))
        digest = chain_hash(prev, seq, when, ev, data_json)
        for col, value in zip(
            cols, (seq, ev.kind, ev.message_id, ev.partner, ev.actor, data_json, prev, digest), strict=True
        ):
            col.append(value)
        prev = digest
    await conn.execute(
        "WITH ins AS ("
        " INSERT INTO audit (seq, at, kind, message_id, partner, actor, data, prev_hash, hash)"
        " SELECT s, $9, k, m, p, a, d, ph, h FROM unnest($1::bigint[], $2::text[], $3::text[],"
        " $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS t(s, k, m, p, a, d, ph, h))"
        " UPDATE audit_head SET seq = $10, hash = $11",
        *cols,
        when,
        seq,
        prev,
    )


class PostgresConnections:
    """The connection pool, opened and closed with the backend.

    ``dsn`` is a secret (it may hold a password): it MUST NOT appear in logs or errors.
    """

    def __init__(self, dsn: str, *, pool_size: int = 10, connect_timeout: float = 10.0) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._dsn = dsn
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool: Pool | None = None
        self.lease_holder = secrets.token_hex(8)
        """Who holds the leases this object hands out: every lease token starts with it.
        Unique per gateway instance; the delivery process takes its supervisor's (see
        ``gateway.delivery.process``) so that a restarted one can take back exactly its
        killed predecessor's leases (``release_leases_of``), never another instance's."""

    def new_lease_token(self) -> str:
        """``<lease_holder>.<random>``: unique per lease call, attributable to its holder."""
        return f"{self.lease_holder}.{secrets.token_hex(8)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dsn='**********', pool_size={self._pool_size})"

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, and refuse (``ConfigError``) a database whose schema is not this
        gateway's (see ``gateway.store.postgres_schema``), or on which a COMMIT would not be
        durable (``synchronous_commit=off``: a 202 could be lost in a crash)."""
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._connect_timeout,
                server_settings={"application_name": "mash-gateway"},
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise connect_error(exc) from None
        try:
            async with pool.acquire() as conn:
                await check_version(conn)
                if await conn.fetchval("SELECT current_setting('synchronous_commit')") == "off":
                    raise ConfigError(
                        "store (durable-commit): synchronous_commit is off for the gateway's "
                        "database user, so an accepted message could be lost in a crash; "
                        "set it to on (ALTER ROLE ... SET synchronous_commit = on)"
                    )
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is not open")
        return self._pool

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Connection]:
        """One transaction on a pooled connection: committed when the block returns,
        rolled back when it raises."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")
