"""What is particular to the PostgreSQL backend, on a real server (``tests.servers``):
versioned migrations and the start-up check, no plaintext in a dump, the append-only audit
table, lease recovery beside live instances, the settings and ``gateway db upgrade``, and
that the DSN never shows. The contracts every backend keeps are in
``test_store_contract.py``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.audit import AuditEvent, verify_chain
from gateway.cli import main
from gateway.config import load_deployment, load_settings
from gateway.crypto import Keyring
from gateway.errors import ConfigError
from gateway.store.postgres import PostgresBackend
from gateway.store.postgres_schema import LATEST, SchemaBehind, current_version, upgrade
from tests.gateway.test_store_contract import records
from tests.servers import INSTALL_HINT, PostgresServer, missing, postgres_server
from tests.support import ROOT, eventually, write_deployment


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> PostgresServer:
    return postgres_server(request)


@pytest.fixture
async def dsn(pg: PostgresServer) -> AsyncIterator[str]:
    """A fresh database with the current schema."""
    async with pg.database() as url:
        yield url


@pytest.fixture
async def empty_dsn(pg: PostgresServer) -> AsyncIterator[str]:
    """A fresh database that was never upgraded."""
    async with pg.database(migrated=False) as url:
        yield url


@pytest.fixture
async def backend(dsn: str) -> AsyncIterator[PostgresBackend]:
    b = PostgresBackend(dsn, pool_size=4)
    await b.open()
    yield b
    await b.close()


@contextlib.asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


class TestMigrations:
    async def test_open_refuses_a_database_that_was_never_upgraded(self, empty_dsn: str) -> None:
        with pytest.raises(SchemaBehind, match=r"schema version 0.*run 'gateway db upgrade --config DIR'"):
            await PostgresBackend(empty_dsn).open()

    async def test_upgrade_applies_in_order_once_then_nothing(self, empty_dsn: str) -> None:
        async with connect(empty_dsn) as conn:
            assert await current_version(conn) == 0
            assert await upgrade(conn) == list(range(1, LATEST + 1))
            assert await upgrade(conn) == []
            assert await current_version(conn) == LATEST
            names = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in names] == list(range(1, LATEST + 1))
        b = PostgresBackend(empty_dsn)
        await b.open()  # now it starts
        await b.ping()
        await b.close()

    async def test_concurrent_upgrades_apply_each_migration_once(self, empty_dsn: str) -> None:
        async with connect(empty_dsn) as a, connect(empty_dsn) as b, connect(empty_dsn) as c:
            applied = await asyncio.gather(upgrade(a), upgrade(b), upgrade(c))
        assert sorted(v for one in applied for v in one) == list(range(1, LATEST + 1))

    async def test_open_refuses_a_schema_newer_than_the_code(self, dsn: str) -> None:
        async with connect(dsn) as conn:
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, 'future')", LATEST + 1
            )
        with pytest.raises(SchemaBehind, match="schema-ahead"):
            await PostgresBackend(dsn).open()


class TestDurability:
    async def test_open_refuses_a_database_where_commits_are_not_durable(self, dsn: str) -> None:
        async with connect(dsn) as conn:
            name = await conn.fetchval("SELECT current_database()")  # this test's own database
            await conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
        with pytest.raises(ConfigError, match=r"durable-commit.*synchronous_commit"):
            await PostgresBackend(dsn).open()


class TestAtRest:
    async def test_no_canary_plaintext_in_a_dump_of_every_table(
        self, backend: PostgresBackend, keyring: Keyring, pg: PostgresServer, dsn: str
    ) -> None:
        await backend.accept(*records(keyring, 1))
        (lease,) = await backend.lease("csc", 1, 30)
        await backend.fail(lease, "http-500", 0.0, AuditEvent("delivery.attempt_failed"))
        dump = await asyncio.to_thread(
            subprocess.run,
            [str(pg.bin_dir / "pg_dump"), "--data-only", "--dbname", dsn],
            capture_output=True,
            check=True,
            timeout=60,
        )
        assert b"CANARY-PLAINTEXT-42" not in dump.stdout
        assert b"dlv_0001" in dump.stdout  # the rows were dumped (positive control)
        assert b"message.received" in dump.stdout


class TestAuditTable:
    async def test_the_database_refuses_updates_deletes_and_truncation(
        self, backend: PostgresBackend, keyring: Keyring, dsn: str
    ) -> None:
        await backend.accept(*records(keyring, 1))
        async with connect(dsn) as conn:
            for sql in ("UPDATE audit SET kind='x'", "DELETE FROM audit", "TRUNCATE audit"):
                with pytest.raises(asyncpg.RaiseError, match="append-only"):
                    await conn.execute(sql)
        assert verify_chain([r async for r in backend.audit_records()]).records == 1

    async def test_tampering_by_a_superuser_is_caught_by_the_chain(
        self, backend: PostgresBackend, keyring: Keyring, dsn: str
    ) -> None:
        for i in range(5):
            await backend.accept(*records(keyring, i))
        async with connect(dsn) as conn:
            # An attacker with superuser rights can switch the triggers off; the chain still tells.
            await conn.execute("ALTER TABLE audit DISABLE TRIGGER USER")
            await conn.execute("""UPDATE audit SET data='{"n":99}' WHERE seq=3""")
            edited = verify_chain([r async for r in backend.audit_records()]).problems
            await conn.execute("DELETE FROM audit WHERE seq=2")
            removed = verify_chain([r async for r in backend.audit_records()]).problems
        assert any("seq 3" in p and "edited" in p for p in edited)
        assert any("removed" in p for p in removed)


_APPENDER = """
import asyncio, sys
from gateway.audit import AuditEvent
from gateway.store.postgres import PostgresBackend

async def main(dsn: str, who: str) -> None:
    backend = PostgresBackend(dsn, pool_size=2)
    await backend.open()
    try:
        for i in range(40):
            await backend.append_audit([AuditEvent("test.process", {"who": who, "i": i})])
    finally:
        await backend.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


class TestAuditChainAcrossProcesses:
    async def test_three_processes_appending_at_once_keep_one_chain(self, dsn: str) -> None:
        # Given three gateway processes appending to the audit log at the same time
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", _APPENDER, dsn, f"p{n}", cwd=ROOT, stderr=asyncio.subprocess.PIPE
            )
            for n in range(3)
        ]
        results = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [err.decode() for _, err in results]
        # Then the chain verifies, and holds every process's records in each one's order
        backend = PostgresBackend(dsn)
        await backend.open()
        try:
            records = [r async for r in backend.audit_records()]
        finally:
            await backend.close()
        assert verify_chain(records).problems == ()
        for n in range(3):
            assert [r.data["i"] for r in records if r.data["who"] == f"p{n}"] == list(range(40))


class TestLeaseRecovery:
    async def test_start_up_releases_only_expired_leases_not_other_instances_live_ones(
        self, backend: PostgresBackend, keyring: Keyring, dsn: str
    ) -> None:
        # Given one live lease (another instance is delivering it) and one that expired
        await backend.accept(*records(keyring, 1, child="a"))
        await backend.accept(*records(keyring, 2, child="b"))
        assert len(await backend.lease("csc", 1, 30)) == 1
        assert len(await backend.lease("csc", 1, -1)) == 1  # expired at once
        # When a new instance starts
        other = PostgresBackend(dsn)
        await other.open()
        try:
            assert await other.release_expired_leases() == 1
            by = {s.recipient: s for s in await other.stats()}
            assert (by["csc"].ready, by["csc"].leased) == (1, 1)
            assert [x.delivery_id for x in await other.lease("csc", 10, 30)] == ["dlv_0002"]
        finally:
            await other.close()


class TestOrderAcrossInstances:
    async def test_a_later_message_cannot_overtake_one_still_committing(
        self, dsn: str, keyring: Keyring
    ) -> None:
        """Deterministic version of the contract test's race: message 1 is stalled between
        inserting its delivery (its seq is taken) and COMMIT; message 2 about the same child
        must wait for it instead of committing first and being leased ahead of it."""
        first, second, leaser = (PostgresBackend(dsn, pool_size=2) for _ in range(3))
        async with contextlib.AsyncExitStack() as stack:
            for b in (first, second, leaser):
                await b.open()
                stack.push_async_callback(b.close)
            control = await stack.enter_async_context(connect(dsn))
            # A test-only trigger parks dlv_0001's insert until `control` lets go of lock 4242.
            await control.execute(
                "CREATE FUNCTION park() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF NEW.id = 'dlv_0001' THEN PERFORM pg_advisory_lock(4242);"
                " PERFORM pg_advisory_unlock(4242); END IF; RETURN NEW; END $$;"
                " CREATE TRIGGER park BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION park();"
            )
            await control.execute("SELECT pg_advisory_lock(4242)")

            async def waiting(n: int) -> bool:
                count = await control.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
                )
                return bool(count == n)

            one = asyncio.create_task(first.accept(*records(keyring, 1, child="a")))
            two: asyncio.Task[object] | None = None
            try:
                await eventually(lambda: waiting(1), 10)  # message 1 is parked, its seq taken
                two = asyncio.create_task(second.accept(*records(keyring, 2, child="a")))

                async def two_waits_or_is_done() -> bool:
                    assert two is not None
                    return two.done() or await waiting(2)

                await eventually(two_waits_or_is_done, 10)
                early = await leaser.lease("csc", 10, 60)
            finally:
                await control.execute("SELECT pg_advisory_unlock(4242)")
                await asyncio.gather(one, *([two] if two else []))
            later = await leaser.lease("csc", 10, 60)
        assert (early, [x.delivery_id for x in later]) == ([], ["dlv_0001"])


class TestServerRestart:
    async def test_the_store_reconnects_after_a_crash_restart_and_keeps_what_was_committed(
        self, backend: PostgresBackend, keyring: Keyring, pg: PostgresServer
    ) -> None:
        # Given an accepted message, when PostgreSQL crash-restarts under the open pool
        await backend.accept(*records(keyring, 1))
        await asyncio.to_thread(pg.restart)

        async def answers() -> bool:
            try:
                await backend.ping()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                return False
            return True

        # Then the pool reconnects, nothing committed is lost, and the chain continues
        await eventually(answers, 20)
        await backend.accept(*records(keyring, 2))
        assert sum(s.ready for s in await backend.stats()) == 2
        result = verify_chain([r async for r in backend.audit_records()])
        assert (result.ok, result.records) == (True, 2)


class TestSecrets:
    async def test_the_dsn_never_shows_in_repr_or_errors(self) -> None:
        b = PostgresBackend("postgresql://gw:s3cret-pw@127.0.0.1:1/gw?sslmode=disable")
        assert "s3cret-pw" not in repr(b)
        with pytest.raises(ConfigError) as info:
            await b.open()
        assert "s3cret-pw" not in str(info.value)
        assert "postgresql-connect" in str(info.value)


def deployment(tmp_path: Path, store: dict[str, object]) -> Path:
    return write_deployment(
        tmp_path / "cfg", receiver_base="http://127.0.0.1:9", settings_extra={"store": store}
    )


class TestSettingsAndCli:
    def test_postgresql_settings_and_the_environment_override(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cfg = deployment(tmp_path, {"backend": "postgresql", "url": "postgresql://file@h/db", "pool_size": 3})
        s = load_settings(cfg)
        assert (s.store_backend, s.database_pool_size) == ("postgresql", 3)
        assert s.database_url is not None
        assert s.database_url.reveal() == "postgresql://file@h/db"
        assert "file@h" not in repr(s)
        monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://env@h/db")
        assert load_settings(cfg).database_url.reveal() == "postgresql://env@h/db"  # type: ignore[union-attr]

    def test_postgresql_without_a_url_stops_start_up_naming_the_setting(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
        with pytest.raises(ConfigError, match=r"/store/url \(postgresql-needs-url\).*GATEWAY_DATABASE_URL"):
            load_settings(deployment(tmp_path, {"backend": "postgresql"}))
        with pytest.raises(ConfigError, match="/store/backend"):
            load_settings(deployment(tmp_path, {"backend": "oracle"}))

    async def test_serve_refuses_a_database_behind_and_db_upgrade_fixes_it(
        self, tmp_path: Path, empty_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
        cfg = deployment(tmp_path, {"backend": "postgresql", "url": empty_dsn})
        # Given a database never upgraded: the gateway refuses to start, saying what to run
        dep = await asyncio.to_thread(load_deployment, cfg)
        app = await asyncio.to_thread(create_app, dep)
        runner = web.AppRunner(app)
        with pytest.raises(SchemaBehind, match="gateway db upgrade"):
            await runner.setup()
        await runner.cleanup()
        # When the operator runs `gateway db upgrade` (twice: it is idempotent)
        first, out1 = await asyncio.to_thread(run_cli, ["db", "upgrade", "--config", str(cfg)])
        again, out2 = await asyncio.to_thread(run_cli, ["db", "upgrade", "--config", str(cfg)])
        assert (first, again) == (0, 0)
        assert f"schema at version {LATEST}" in out1
        assert "nothing to do" in out2
        assert empty_dsn not in out1 + out2
        # Then the gateway starts
        app = await asyncio.to_thread(create_app, dep)
        runner = web.AppRunner(app)
        await runner.setup()
        await runner.cleanup()
        # And the operator's commands work on the same database
        verified, out3 = await asyncio.to_thread(run_cli, ["audit", "verify", "--config", str(cfg)])
        listed, _ = await asyncio.to_thread(run_cli, ["dead-letters", "list", "--config", str(cfg)])
        assert (verified, listed) == (0, 0)
        assert out3.startswith("OK: ")


def run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


class TestServerFixture:
    def test_a_missing_server_skips_locally_and_fails_under_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception, match="CI=true"):
            missing(INSTALL_HINT)
        monkeypatch.setenv("CI", "false")
        with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
            missing(INSTALL_HINT)
