"""Fixtures shared by the integration tests that run the gateway on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.servers import PostgresServer, postgres_server


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> PostgresServer:
    """The test PostgreSQL server (skips locally when it is not installed; fails under CI)."""
    return postgres_server(request)


@pytest.fixture
async def dsn(pg: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A fresh database on it; the caller's ``GATEWAY_DATABASE_URL`` must not win over it."""
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    async with pg.database() as url:
        yield url
