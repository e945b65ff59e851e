"""Fixtures shared by the gateway's store and delivery tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.crypto import Keyring, generate_keyring
from gateway.store.sqlite import SqliteBackend


@pytest.fixture
async def keyring(tmp_path: Path) -> Keyring:
    """A new keyring in the test's own directory (written off the event loop)."""
    await asyncio.to_thread(generate_keyring, tmp_path / "keyring.json")
    return await asyncio.to_thread(Keyring.load, tmp_path / "keyring.json")


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    """An open SQLite store in the test's own directory. Modules about another store (or
    about every store: ``test_store_contract``) define their own ``backend``."""
    b = SqliteBackend(tmp_path / "gw.db")
    await b.open()
    try:
        yield b
    finally:
        await b.close()
