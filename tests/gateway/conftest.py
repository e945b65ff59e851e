"""Fixtures shared by the gateway's store and delivery tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.crypto import Keyring, generate_keyring


@pytest.fixture
async def keyring(tmp_path: Path) -> Keyring:
    """A new keyring in the test's own directory (written off the event loop)."""
    await asyncio.to_thread(generate_keyring, tmp_path / "keyring.json")
    return await asyncio.to_thread(Keyring.load, tmp_path / "keyring.json")
