"""Classifies each eligible guild message once and hands the prediction to the cogs that act on it (flags, live)."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord.ext import commands

from bot.client import MoodBot
from bot.cogs.history import recorder_cog
from bot.store import GuildConfig
from classifier.inference.worker import ClassificationError, WorkerClosedError
from classifier.text import EmptyTextError

log = logging.getLogger(__name__)


def wants_flagging(config: GuildConfig, message: discord.Message) -> bool:
    """Auto-flagging is on and the author holds no exempt role."""
    roles = getattr(message.author, "roles", ())
    return config.auto_flag and not any(role.id in config.exempt_roles for role in roles)


class Messages(commands.Cog):
    """The one ``on_message`` path that runs the model: opted-out members and disabled channels are never classified.

    A message without text (a join, a pin, a poll, an attachment-only post) is skipped silently: empty content is
    no sign of a missing Message Content intent. Discord refuses a connection that asks for the intent without
    having it (close code 4014), so the runner knows for certain when it is missing, and warns there.
    """

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.admission.start(self.handle)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Admit the message (waiting while the backlog is full): the work itself runs in :meth:`handle`."""
        if (
            message.guild is None
            or message.author.bot
            or message.webhook_id is not None
            or not self.bot.accepting_messages
        ):
            return
        await self.bot.admission.submit(message)

    async def handle(self, message: discord.Message) -> None:
        """Classify an admitted message once and hand it on; settings and opt-outs come from the store's cache."""
        assert message.guild is not None
        config = await self.bot.store.guild_config(message.guild.id)
        if message.channel.id in config.disabled_channels or await self.bot.store.is_opted_out(message.author.id):
            return
        flag = wants_flagging(config, message)
        live = message.channel.id in config.live_channels
        history = recorder_cog(self.bot) if config.history else None
        if not (flag or live or history) or not message.content:
            return
        try:
            prediction = await self.bot.worker.classify(message.content, config.language)
        except EmptyTextError:
            return
        except (ClassificationError, WorkerClosedError) as error:
            log.warning("message %s not classified: %s", message.id, error)
            return
        if history is not None:
            history.record(message, prediction)
        await asyncio.gather(*(consumer(message, prediction, flag, live) for consumer in self.bot.message_consumers))


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Messages(bot))
