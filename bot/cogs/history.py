"""Mood history: owns the process's :class:`~bot.history.HistoryRecorder` (flushed periodically and on unload) and
feeds it the classified messages."""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.client import MoodBot
from bot.history import HistoryRecorder
from bot.store import GuildConfig
from bot.store.history import HistoryStore
from classifier.inference.prediction import Prediction


class History(commands.Cog):
    """Counts every new message of a guild whose history is on (an edit was counted when it was posted)."""

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot
        self.recorder = HistoryRecorder(HistoryStore(bot.store), bot.settings.history_days)

    async def cog_load(self) -> None:
        self.recorder.start()
        self.bot.message_consumers.append(self)

    async def cog_unload(self) -> None:
        self.bot.message_consumers.remove(self)
        await self.recorder.close()

    def wants(self, message: discord.Message, config: GuildConfig, *, edited: bool) -> bool:
        return config.history and not edited

    async def handle(
        self, message: discord.Message, prediction: Prediction, config: GuildConfig, *, edited: bool
    ) -> None:
        assert message.guild is not None
        self.recorder.record(message.guild.id, message.channel.id, prediction, message.created_at)


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(History(bot))
