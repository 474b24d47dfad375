"""Live mode: in the channels an admin picked, react to each new message with an emoji for its sentiment, and
change the reaction when an edit changes the sentiment."""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from bot.client import MoodBot
from bot.store import GuildConfig
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
        self.bot.message_consumers.append(self)

    async def cog_unload(self) -> None:
        self.bot.message_consumers.remove(self)

    def wants(self, message: discord.Message, config: GuildConfig, *, edited: bool) -> bool:
        return message.channel.id in config.live_channels

    async def handle(
        self, message: discord.Message, prediction: Prediction, config: GuildConfig, *, edited: bool
    ) -> None:
        await (self.follow_edit(message, prediction) if edited else self.react(message, prediction))

    async def react(self, message: discord.Message, prediction: Prediction) -> None:
        try:
            await message.add_reaction(sentiment_emoji(prediction))
        except discord.HTTPException as error:
            log.warning("could not react to message %d in channel %d: %s", message.id, message.channel.id, error)

    async def follow_edit(self, message: discord.Message, prediction: Prediction) -> None:
        """Put the edited text's emoji in place of the bot's other live reactions, as the edit's payload lists them
        (nothing to do when it holds just that one: a replayed or unchanged edit). A payload that lists no reactions
        may have left them out, so then the other emoji are removed unseen (removing an absent one is a no-op)."""
        if self.bot.user is None:
            return
        wanted = sentiment_emoji(prediction)
        mine = {str(reaction.emoji) for reaction in message.reactions if reaction.me}
        others = set(EMOJI.values()) - {wanted}
        try:
            if wanted not in mine:
                await message.add_reaction(wanted)
            for emoji in others & mine if message.reactions else others:
                await message.remove_reaction(emoji, self.bot.user)
        except discord.HTTPException as error:
            log.warning("could not change the reaction on message %d in channel %d: %s", message.id,
                        message.channel.id, error)


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Live(bot))
