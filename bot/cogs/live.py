"""Live mode: in the channels an admin picked, react to each new message with an emoji for its sentiment."""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from bot.client import MoodBot
from classifier.inference.prediction import Prediction

log = logging.getLogger(__name__)

UNSURE_BELOW = 0.6
EMOJI = {"positive": "😊", "neutral": "😐", "negative": "😠"}


def sentiment_emoji(prediction: Prediction) -> str:
    """The label's emoji; 😐 also when the model is unsure (its label's probability is below ``UNSURE_BELOW``)."""
    return EMOJI["neutral"] if prediction.confidence < UNSURE_BELOW else EMOJI[prediction.label]


class Live(commands.Cog):
    """Reacts instead of replying, so live mode never floods a channel."""

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.message_consumers.append(self.react)

    async def cog_unload(self) -> None:
        self.bot.message_consumers.remove(self.react)

    async def react(self, message: discord.Message, prediction: Prediction, flag: bool, live: bool) -> None:
        if not live:
            return
        try:
            await message.add_reaction(sentiment_emoji(prediction))
        except discord.HTTPException as error:
            log.warning("could not react to message %d in channel %d: %s", message.id, message.channel.id, error)


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Live(bot))
