"""The PostgreSQL backend's schema, as numbered migrations.

``upgrade`` applies, in order and each in its own transaction, every migration newer than
the version recorded in ``schema_migrations``. It is idempotent (a second run applies
nothing) and safe to run from several machines at once (a transaction-level advisory lock
serialises them). ``gateway db upgrade --config DIR`` runs it; the gateway itself never
changes the schema: ``PostgresBackend.open`` refuses a database whose schema is behind
(``SchemaBehind``) or ahead of the code.

A migration, once released, MUST NOT be edited: add a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from gateway.errors import ConfigError

# pg_advisory_xact_lock(int, int) namespaces of this product: (LOCK_CLASS, _LOCK_MIGRATE)
# serialises migrations; (LOCK_CLASS + 1, hash) serialises accepts per order key.
LOCK_CLASS = 0x6777_0000
_LOCK_MIGRATE = 1


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


_V1 = """
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    event_type TEXT NOT NULL,
    purpose TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    body_sha256 TEXT NOT NULL,
    key_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    subjects TEXT[] NOT NULL
);
-- The idempotency row is written first in an accept (it is the lock that resolves
-- concurrent duplicates), so its reference to the message is checked at COMMIT.
CREATE TABLE idempotency (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages(id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (source, key)
);
CREATE TABLE decisions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL REFERENCES messages(id),
    recipient TEXT NOT NULL,
    effect TEXT NOT NULL,
    rule TEXT NOT NULL,
    agreement_id TEXT,
    released TEXT[] NOT NULL,
    policy_version TEXT NOT NULL,
    detail JSONB NOT NULL
);
CREATE INDEX decisions_by_message ON decisions(message_id);
CREATE TABLE deliveries (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL REFERENCES messages(id),
    decision_id TEXT NOT NULL REFERENCES decisions(id),
    recipient TEXT NOT NULL,
    order_key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('ready', 'leased', 'delivered', 'dead', 'discarded', 'held', 'withdrawn', 'rejected')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION,
    lease_token TEXT,
    media_type TEXT NOT NULL,
    key_id TEXT NOT NULL,
    payload BYTEA NOT NULL,
    last_error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    delivered_at DOUBLE PRECISION,
    consent_records TEXT[],
    review_role TEXT,
    review_deadline DOUBLE PRECISION,
    escalated BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX deliveries_queue ON deliveries(recipient, state, seq);
CREATE INDEX deliveries_open_by_order ON deliveries(order_key, seq) WHERE state IN ('ready', 'leased');
CREATE INDEX deliveries_by_message ON deliveries(message_id);
CREATE INDEX deliveries_held ON deliveries(review_deadline) WHERE state = 'held';
CREATE INDEX deliveries_relying_on_consent ON deliveries USING GIN (consent_records)
    WHERE consent_records IS NOT NULL AND state IN ('ready', 'leased', 'held');
CREATE TABLE consents (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    scope TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    evidence_ref TEXT,
    recorded_by TEXT NOT NULL
);
CREATE INDEX consents_by_subject ON consents(subject, purpose);
-- ``at`` and ``data`` are kept as the exact strings that were hashed: JSONB would
-- re-serialise the data and break the chain.
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_id TEXT,
    partner TEXT,
    actor TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_message ON audit(message_id);
-- The chain head: one row, locked FOR UPDATE by every writer of audit records, so writers
-- on any number of gateway instances append one after another and the chain stays linear.
CREATE TABLE audit_head (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
-- repeat('0', 64) is gateway.audit.GENESIS, the hash before the first record.
INSERT INTO audit_head (id, seq, hash) VALUES (TRUE, 0, repeat('0', 64));
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
"""

# The RabbitMQ backend's outbox (``gateway.store.rabbitmq``): a ready delivery whose
# message the broker has not yet confirmed. Existing ready rows start unpublished, so a
# database moved from ``postgresql`` to ``rabbitmq-postgresql`` has its queue republished.
_V2 = """
ALTER TABLE deliveries ADD COLUMN published BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX deliveries_outbox ON deliveries(seq) WHERE state = 'ready' AND NOT published;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _V1),
    Migration(2, "delivery outbox for the RabbitMQ queue", _V2),
)
LATEST = MIGRATIONS[-1].version


class SchemaBehind(ConfigError):
    """The database's schema is older (or newer) than this gateway's: start-up refused."""


Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection of our own or one lent by the pool: both run queries alike."""


async def current_version(conn: Connection) -> int:
    """The newest applied migration; 0 for a database never upgraded."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return int(version or 0)


async def upgrade(conn: Connection) -> list[int]:
    """Apply every pending migration in order; returns the versions applied (may be empty).

    Each migration and its ``schema_migrations`` row commit together, so an interrupted
    upgrade resumes where it stopped."""
    async with conn.transaction():
        # IF NOT EXISTS alone is not safe against a concurrent upgrader: take the lock first.
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, _LOCK_MIGRATE)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
    applied: list[int] = []
    for migration in MIGRATIONS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_CLASS, _LOCK_MIGRATE)
            # Read under the lock: another upgrader may just have applied this one.
            if await current_version(conn) >= migration.version:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied


async def upgrade_database(dsn: str, *, timeout: float = 10.0) -> list[int]:
    """Connect to ``dsn`` and ``upgrade``; a connection failure is a ``ConfigError`` that
    never shows the DSN (it may hold a password)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise connect_error(exc) from None
    try:
        return await upgrade(conn)
    finally:
        await conn.close()


def connect_error(exc: BaseException) -> ConfigError:
    """A connection failure as a ``ConfigError``: the server's own message (unknown
    database, authentication failed...) or the error's type, never the DSN."""
    detail = str(exc) if isinstance(exc, asyncpg.PostgresError) else type(exc).__name__
    return ConfigError(f"store.url (postgresql-connect): cannot connect to the PostgreSQL database: {detail}")


async def check_version(conn: Connection) -> None:
    """Raise ``SchemaBehind`` unless the database is at exactly this gateway's schema."""
    version = await current_version(conn)
    if version < LATEST:
        raise SchemaBehind(
            f"store (schema-behind): the PostgreSQL database is at schema version {version}, "
            f"this gateway needs {LATEST}; run 'gateway db upgrade --config DIR' first"
        )
    if version > LATEST:
        raise SchemaBehind(
            f"store (schema-ahead): the PostgreSQL database is at schema version {version}, "
            f"newer than this gateway's {LATEST}; run the gateway release that upgraded it"
        )
