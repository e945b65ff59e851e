"""Real servers for the tests: a PostgreSQL and a RabbitMQ node started for the test session
on 127.0.0.1 (each only when a test first asks for it).

RabbitMQ: ``/usr/lib/rabbitmq/bin/rabbitmq-server`` with its own node name
(``gwtest-<pid>@localhost``), free AMQP, distribution and epmd ports, its own ``epmd``, and
its data, logs, config and plugins files in a temporary directory, so it never touches a
system broker; ready when ``rabbitmqctl await_startup`` answers. Tests isolate themselves
by a fresh queue-name prefix (``RabbitServer.prefix``). ``RabbitServer.restart`` stops and
starts the node on the same ports and data (fault tests). Node and epmd are stopped by PID
at the end of the session, as the PostgreSQL server is.

PostgreSQL:

The server runs from a temporary data directory on a free port, with its socket in the same
directory, so it never touches a system cluster. PostgreSQL refuses to run as root and CI
runs as root: as root, ``initdb`` and ``pg_ctl`` run as an unprivileged user (``gateway-test``,
created with ``useradd`` if missing, else ``nobody``) that owns the temporary directory.

Missing binaries skip the tests with the reason; under ``CI=true`` they fail instead (a CI
machine that cannot run the scale-out tests must not pass quietly). A server that is
installed but does not start is always a failure.

The server is started once per session (lazily, by the first test that asks) and stopped
by PID at the end of the session even when tests fail (``config.add_cleanup``, with
``atexit`` as a backstop). Each test gets its own database, copied from a template that
already holds the migrated schema, and dropped afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest

from gateway.store.postgres_schema import upgrade

TEST_USER = "gateway-test"
INSTALL_HINT = "PostgreSQL not installed: apt-get install postgresql"
_START_TIMEOUT_SECONDS = 30


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip locally; fail under CI=true (dramatiq's habit)."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's versioned folder (newest first),
    else whatever ``PATH`` offers."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(pg_ctl).resolve().parent
    return None


def _unprivileged_user() -> str | None:
    """None when not root (run as ourselves); else a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is not None:
            subprocess.run(
                [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                check=False,
                capture_output=True,
            )
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        return "nobody"
    return TEST_USER


def _as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    if user is None:
        return list(argv)
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", user, "--", *argv]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root, but neither runuser nor setpriv is available", pytrace=False)
    entry = pwd.getpwnam(user)
    return [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", *argv]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; ``dsn(db)`` gives a DSN for one of its databases."""

    bin_dir: Path
    base: Path
    port: int
    user: str | None
    pid: int = 0
    host: str = "127.0.0.1"
    fsync: bool = False
    """Off for tests (see ``_pg_ctl``); on for benchmarks, to compare with SQLite's FULL."""
    _template_ready: bool = field(default=False, repr=False)
    _counter: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def dsn(self, database: str = "postgres") -> str:
        # A password (ignored by trust auth) stops asyncpg reading ~/.pgpass on the event
        # loop; sslmode=disable stops it loading CA files to try TLS first.
        return f"postgresql://postgres:unused@{self.host}:{self.port}/{database}?sslmode=disable"

    def _run(self, *argv: str, timeout: float = _START_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_user(self.user, argv),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        result = self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        if result.returncode != 0:
            pytest.fail(f"initdb failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
        last_error = ""
        for _ in range(3):  # a free port can be taken between probing and binding
            self.port = _free_port()
            result = self._pg_ctl("start")
            if result.returncode == 0:
                self._read_pid()
                return
            log = self.base / "server.log"
            last_error = result.stderr + (log.read_text() if log.exists() else "")
        pytest.fail(f"PostgreSQL did not start:\n{last_error}", pytrace=False)

    def _pg_ctl(self, action: str, mode: str = "immediate") -> subprocess.CompletedProcess[str]:
        # fsync off: a test server need not survive power loss, only a process crash (an
        # immediate stop or kill -9 loses nothing committed, as synchronous_commit stays on).
        no_fsync = "" if self.fsync else " -F"
        options = f"-h 127.0.0.1 -p {self.port} -k {self.base}{no_fsync} -c max_connections=200"
        return self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.base / "server.log"),
            "-w",
            "-t",
            str(_START_TIMEOUT_SECONDS),
            "-m",
            mode,
            "-o",
            options,
            action,
            timeout=_START_TIMEOUT_SECONDS + 10,
        )

    def _read_pid(self) -> None:
        self.pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def restart(self) -> None:
        """Crash-restart the server (immediate stop, then start on the same port): for fault
        tests. Committed data survives; every open connection is cut."""
        result = self._pg_ctl("restart")
        if result.returncode != 0:
            pytest.fail(f"PostgreSQL did not restart:\n{result.stderr}", pytrace=False)
        self._read_pid()

    def stop_server(self, mode: str = "fast") -> None:
        """Take the server down (``pg_ctl stop -m fast|immediate``) but keep its data, for
        fault tests; ``start_server`` brings it back on the same port."""
        result = self._pg_ctl("stop", mode)
        if result.returncode != 0:
            pytest.fail(f"PostgreSQL did not stop:\n{result.stderr}", pytrace=False)

    def start_server(self) -> None:
        """Start a server taken down by ``stop_server`` again, on the same port."""
        result = self._pg_ctl("start")
        if result.returncode != 0:
            pytest.fail(f"PostgreSQL did not start again:\n{result.stderr}", pytrace=False)
        self._read_pid()

    def stop(self) -> None:
        """Stop the server (immediate mode, then by PID) and remove its directory."""
        if self.pid:
            result = self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"
            )
            if result.returncode != 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            self.pid = 0
        shutil.rmtree(self.base, ignore_errors=True)

    # -- per-test databases ------------------------------------------------------------

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn("postgres"))

    async def create_database(self, *, migrated: bool = True) -> str:
        """A fresh database: a copy of the migrated template, or empty (``migrated=False``)."""
        name = f"t_{next(self._counter)}"
        admin = await self._admin()
        try:
            if migrated and not self._template_ready:
                await admin.execute("CREATE DATABASE gw_template")
                conn = await asyncpg.connect(self.dsn("gw_template"))
                try:
                    await upgrade(conn)
                finally:
                    await conn.close()
                self._template_ready = True
            # Identifiers cannot be parameters; ``name`` is ours (t_<int>), never input.
            template = "gw_template" if migrated else "template0"
            await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        finally:
            await admin.close()
        return name

    async def drop_database(self, name: str) -> None:
        admin = await self._admin()
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()

    @contextlib.asynccontextmanager
    async def database(self, *, migrated: bool = True) -> AsyncIterator[str]:
        """A fresh database for one test; yields its DSN and drops it afterwards."""
        name = await self.create_database(migrated=migrated)
        try:
            yield self.dsn(name)
        finally:
            await self.drop_database(name)


_SERVER: PostgresServer | None = None
_START_FAILURE: list[str] = []
"""Why the server did not start, so later tests fail at once instead of retrying."""


def postgres_server(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's server, started on first use; call it from a synchronous fixture.

    Skips (or fails under CI) when PostgreSQL is not installed."""
    global _SERVER  # noqa: PLW0603 - one server per test session, shared by every module
    if _SERVER is not None:
        return _SERVER
    if _START_FAILURE:
        pytest.fail(_START_FAILURE[0], pytrace=False)
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        missing(INSTALL_HINT)
    user = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bin_dir, base, 0, user)
    # Registered before starting, so a half-started server is cleaned up too.
    request.config.add_cleanup(_stop_shared)
    atexit.register(_stop_shared)
    _SERVER = server
    try:
        server.start()
    except BaseException as exc:
        _START_FAILURE.append(f"the session's PostgreSQL did not start earlier: {exc}")
        _stop_shared()
        raise
    return server


def _stop_shared() -> None:
    global _SERVER
    server, _SERVER = _SERVER, None
    if server is not None:
        server.stop()


def start_postgres(*, fsync: bool = False) -> PostgresServer | None:
    """A new server outside the test session (e.g. for a benchmark), or None when PostgreSQL
    is not installed. The caller MUST ``stop()`` it; a failed start raises (and cleans up)."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        return None
    user = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(bin_dir, base, 0, user, fsync=fsync)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


# -- RabbitMQ --------------------------------------------------------------------------

RABBIT_INSTALL_HINT = "RabbitMQ not installed: apt-get install rabbitmq-server"
RABBIT_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
RABBIT_CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
_RABBIT_START_TIMEOUT_SECONDS = 60


@dataclass
class RabbitServer:
    """A RabbitMQ node of this test session, never a system broker: its own node name,
    ports, epmd, data and log directories (under ``base``). ``url()`` is its AMQP URL;
    ``prefix()`` a fresh name prefix per test (the isolation between tests)."""

    base: Path
    node: str
    port: int = 0
    dist_port: int = 0
    epmd_port: int = 0
    pid: int = 0
    """The Erlang VM's OS pid (from ``RABBITMQ_PID_FILE``)."""
    host: str = "127.0.0.1"
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    _epmd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _counter: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    @property
    def pid_file(self) -> Path:
        return self.base / "rabbit.pid"

    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/"

    def prefix(self) -> str:
        return f"t{next(self._counter)}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.base),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_PID_FILE=str(self.pid_file),
        )
        return env

    def ctl(
        self, *args: str, timeout: float = _RABBIT_START_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBIT_CTL), "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        """Start epmd and the node; first call picks the ports, a restart reuses them."""
        if not self.port:
            self.port, self.dist_port, self.epmd_port = _free_port(), _free_port(), _free_port()
            (self.base / "rabbitmq.conf").write_text(
                "disk_free_limit.absolute = 10MB\nlog.file.level = warning\n"
            )
            (self.base / "enabled_plugins").write_text("[].\n")
            (self.base / "advanced.config").write_text("[].\n")
        if self._epmd is None:
            # Our own epmd on its own port, so a system epmd is neither used nor stopped.
            self._epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=self._env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.pid_file.unlink(missing_ok=True)
        with (self.base / "server.out").open("ab") as out:
            proc = subprocess.Popen(
                [str(RABBIT_SERVER)], env=self._env(), stdout=out, stderr=subprocess.STDOUT, cwd=self.base
            )
        self._procs.append(proc)
        # await_startup needs the node registered with epmd first: retry until then.
        deadline = time.monotonic() + _RABBIT_START_TIMEOUT_SECONDS
        while True:
            result = self.ctl("--timeout", "30", "await_startup")
            if result.returncode == 0:
                self.pid = int(self.pid_file.read_text().split()[0])
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        log = (self.base / "server.out").read_text(errors="replace")[-4000:]
        pytest.fail(f"RabbitMQ did not start:\n{result.stderr[-2000:]}\n{log}", pytrace=False)

    def stop_node(self) -> None:
        """Stop the node (``rabbitmqctl stop``, then by PID); epmd stays for a restart."""
        if self.pid:
            # With the pid file, ``stop`` returns once the VM has exited.
            self.ctl("stop", str(self.pid_file), timeout=60)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.pid = 0
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        self._procs.clear()

    def restart(self) -> None:
        """Stop and start the node on the same ports and data: queues and persistent
        messages survive, every connection is cut."""
        self.stop_node()
        self.start()

    def stop(self) -> None:
        self.stop_node()
        if self._epmd is not None:
            self._epmd.kill()
            self._epmd.wait(timeout=30)
            self._epmd = None
        shutil.rmtree(self.base, ignore_errors=True)


_RABBIT: RabbitServer | None = None
_RABBIT_START_FAILURE: list[str] = []


def rabbitmq_server(request: pytest.FixtureRequest) -> RabbitServer:
    """The session's RabbitMQ node, started on first use; call it from a synchronous fixture.

    Skips (or fails under CI) when RabbitMQ is not installed."""
    global _RABBIT  # noqa: PLW0603 - one node per test session, shared by every module
    if _RABBIT is not None:
        return _RABBIT
    if _RABBIT_START_FAILURE:
        pytest.fail(_RABBIT_START_FAILURE[0], pytrace=False)
    if not (RABBIT_SERVER.is_file() and RABBIT_CTL.is_file() and shutil.which("epmd")):
        missing(RABBIT_INSTALL_HINT)
    base = Path(tempfile.mkdtemp(prefix="gateway-rabbit-"))
    server = RabbitServer(base, f"gwtest-{os.getpid()}@localhost")
    request.config.add_cleanup(_stop_rabbit)
    atexit.register(_stop_rabbit)
    _RABBIT = server
    try:
        server.start()
    except BaseException as exc:
        _RABBIT_START_FAILURE.append(f"the session's RabbitMQ did not start earlier: {exc}")
        _stop_rabbit()
        raise
    return server


def start_rabbit() -> RabbitServer | None:
    """A new node outside the test session (e.g. for a benchmark), or None when RabbitMQ is
    not installed. The caller MUST ``stop()`` it; a failed start raises (and cleans up)."""
    if not (RABBIT_SERVER.is_file() and RABBIT_CTL.is_file() and shutil.which("epmd")):
        return None
    server = RabbitServer(
        Path(tempfile.mkdtemp(prefix="gateway-rabbit-")), f"gwbench-{os.getpid()}@localhost"
    )
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def _stop_rabbit() -> None:
    global _RABBIT
    server, _RABBIT = _RABBIT, None
    if server is not None:
        server.stop()
