"""Mood history: owns the process's :class:`~bot.history.HistoryRecorder` (flushed periodically and on unload)."""

from __future__ import annotations

from typing import cast

import discord
from discord.ext import commands

from bot.client import MoodBot
from bot.history import HistoryRecorder
from bot.store.history import HistoryStore
from classifier.inference.prediction import Prediction


class History(commands.Cog):
    """The messages cog hands it every classified message of a guild whose history is on."""

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot
        self.recorder = HistoryRecorder(HistoryStore(bot.store), bot.settings.history_days)

    async def cog_load(self) -> None:
        self.recorder.start()

    async def cog_unload(self) -> None:
        await self.recorder.close()

    def record(self, message: discord.Message, prediction: Prediction) -> None:
        assert message.guild is not None
        self.recorder.record(message.guild.id, message.channel.id, prediction, message.created_at)


def recorder_cog(bot: commands.Bot) -> History | None:
    """The loaded history cog, if any (by name: discord.py loads an extension as a module object of its own, so the
    class an importer sees may not be the loaded one)."""
    return cast("History | None", bot.get_cog("History"))


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(History(bot))
