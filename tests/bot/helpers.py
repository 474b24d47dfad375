"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from bot.runner import BotService
from bot.settings import Settings
from classifier.pipeline import SentimentClassifier
from tests.fake_discord import FakeDiscordServer, FakeMessage

T = TypeVar("T")

WAIT = 15.0  # seconds any single wait may take (model calls on 2 CPU cores included)

NEGATIVE = "this update is awful, I hate it"
POSITIVE = "I love this server"
#: The e2e guild's flag threshold: below the 0.9 default so that the tests hold for any reasonable shipped head.
THRESHOLD = 0.8
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def eventually(probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll ``probe`` (e.g. a database query) until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while not (value := probe()):
            await asyncio.sleep(0.02)
    return value


def assert_pings_nobody(message: FakeMessage) -> None:
    """The bot asked for no mentions, and the server resolved none."""
    assert message.allowed_mentions is not None and message.allowed_mentions.get("parse") == []
    assert not message.allowed_mentions.get("users") and not message.allowed_mentions.get("roles")
    assert message.data.get("mentions") == [] and message.data.get("mention_roles") == []
    assert message.data.get("mention_everyone") is False


def button_ids(message: FakeMessage) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row.get("components", [])]


async def mod_log_posts(server: FakeDiscordServer, channel_id: int, count: int) -> list[FakeMessage]:
    """Wait until the bot has posted ``count`` messages in the mod-log channel."""
    await server.wait_until(lambda: len(server.bot_messages_in(channel_id)) >= count, WAIT)
    return server.bot_messages_in(channel_id)


@asynccontextmanager
async def running_bot(settings: Settings, classifier: SentimentClassifier) -> AsyncIterator[BotService]:
    """Run the bot as ``moodbot run`` does until the block ends; entering waits until it is ready."""
    service = BotService(settings, classifier, guild_ready_timeout=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(WAIT):
            while service.bot is None or not service.bot.is_ready():
                if task.done():
                    task.result()
                    raise AssertionError("the bot stopped before it was ready")
                await asyncio.sleep(0.02)
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)
