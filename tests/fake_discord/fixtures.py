"""Pytest fixtures; import them from a conftest: ``from tests.fake_discord.fixtures import fake_discord``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .server import FakeDiscordServer


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscordServer]:
    """A started, empty :class:`FakeDiscordServer`; add guilds with its builders (or ``seed_default``)."""
    server = FakeDiscordServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
