"""Bot-side helpers: run the real bot in-process, read what it posted, and build real discord.py models.

The models come from the fake server's own payloads parsed by discord.py (no client connection), so the pure
presentation functions are tested on the objects the bot sees in production, not on hand-made stand-ins.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import discord
from discord.state import ConnectionState

from bot.admission import AdmissionStats
from bot.client import MoodBot
from bot.runner import BotService
from bot.settings import Settings
from classifier.inference.classifier import Classifier
from classifier.inference.router import Paths
from tests.support.fake_discord import FakeDiscordServer, FakeInteraction, FakeMessage, Seed
from tests.support.fake_discord.payloads import guild_payload
from tests.support.helpers import WAIT, poll_until

#: The e2e guild's flag threshold: below the 0.9 default so that the tests hold for any reasonable shipped head.
THRESHOLD = 0.8


def button_ids(message: FakeMessage) -> list[str]:
    """The ``custom_id`` of every button on ``message``, row by row."""
    return [c["custom_id"] for row in message.components for c in row.get("components", [])]


def review_button(card: FakeMessage, action: str) -> str:
    """The ``custom_id`` of the ``action`` (confirm, dismiss or delete) button on a mod-log card."""
    return next(c for c in button_ids(card) if f":{action}:" in c)


async def click_review(server: FakeDiscordServer, seed: Seed, card: FakeMessage, action: str) -> FakeInteraction:
    """The seeded moderator clicks the ``action`` button on a mod-log card."""
    button = review_button(card, action)
    return await server.click_button(seed.guild_id, seed.mod_log_id, seed.moderator_id, card.id, button)


async def mod_log_posts(server: FakeDiscordServer, channel_id: int, count: int) -> list[FakeMessage]:
    """Wait until the bot has posted ``count`` messages in the mod-log channel."""
    await server.wait_until(lambda: len(server.bot_messages_in(channel_id)) >= count, WAIT)
    return server.bot_messages_in(channel_id)


async def handled(bot: MoodBot, count: int, timeout: float = WAIT) -> AdmissionStats:
    """Wait until the bot's admission has finished ``count`` work items (new messages, edits, deletions) and has
    none left in its backlog or in a handler; its stats, for the test to assert the exact counts.

    Once a message's item is finished, whatever its handler would do (a flag, a card, a reaction) is done: a test
    asserts that something did *not* happen after this, not after a sleep.
    """
    admission = bot.admission

    def finished() -> bool:
        return admission.stats.handled + admission.stats.failed >= count and admission.pending == 0

    await poll_until(finished, timeout, f"the bot to finish {count} admitted messages")
    return admission.stats


@asynccontextmanager
async def running_bot(settings: Settings, classifier: Classifier | Paths) -> AsyncIterator[BotService]:
    """Run the bot as ``moodbot run`` does until the block ends (on one classifier's path, or on ``Paths``);
    entering waits until it is ready."""
    paths = classifier if isinstance(classifier, Paths) else Paths.single(classifier)
    service = BotService(settings, paths, guild_ready_timeout=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    def ready_or_stopped() -> bool:
        return task.done() or (service.bot is not None and service.bot.is_ready())

    try:
        await poll_until(ready_or_stopped, WAIT, "the bot to be ready")
        if task.done():
            task.result()
            raise AssertionError("the bot stopped before it was ready")
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


def parsed_guild(server: FakeDiscordServer, guild_id: int) -> discord.Guild:
    """The guild as discord.py parses the fake server's GUILD_CREATE payload: channels, roles and members included."""
    state = ConnectionState(dispatch=lambda *args, **kwargs: None, handlers={}, hooks={}, http=None)  # type: ignore[arg-type]
    return discord.Guild(data=guild_payload(server.guilds[guild_id], full=True), state=state)  # type: ignore[arg-type]


def parsed_message(guild: discord.Guild, message: FakeMessage) -> discord.Message:
    """``message`` as discord.py parses its MESSAGE_CREATE payload (author as a guild member, with roles)."""
    channel = guild.get_channel(message.channel_id)
    assert isinstance(channel, discord.TextChannel), channel
    return discord.Message(state=guild._state, channel=channel, data=message.data)  # type: ignore[arg-type]
