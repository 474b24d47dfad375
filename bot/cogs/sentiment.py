"""``/sentiment`` and the **Check sentiment** message menu: a private verdict with a probability bar per class."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import MoodBot
from bot.ui import confidence_bar, send_ephemeral
from classifier.inference.prediction import Prediction
from classifier.text import EmptyTextError

COOLDOWN_RATE, COOLDOWN_SECONDS = 5, 30.0


def describe(prediction: Prediction) -> str:
    """The label with its confidence and source, then one bar per class::

        **Negative** · 91% confidence · cached
        `█████████░` negative 91%
        `█░░░░░░░░░` neutral 7%
        `░░░░░░░░░░` positive 2%
    """
    source = "cached" if prediction.cached else "computed"
    lines = [f"**{prediction.label.title()}** · {prediction.confidence:.0%} confidence · {source}"]
    lines += [f"`{confidence_bar(p)}` {name} {p:.0%}" for name, p in prediction.probabilities.items()]
    return "\n".join(lines)


def _per_user(interaction: discord.Interaction) -> int:
    return interaction.user.id


class Sentiment(commands.Cog):
    """On-demand checks; they need no message-content intent (interactions carry their text)."""

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Check sentiment", callback=self.check_message)
        app_commands.checks.cooldown(COOLDOWN_RATE, COOLDOWN_SECONDS, key=_per_user)(self.menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(
        name="sentiment", description="Is this text positive, neutral or negative? (only you see the answer)"
    )
    @app_commands.describe(text="The text to check")
    @app_commands.checks.cooldown(COOLDOWN_RATE, COOLDOWN_SECONDS, key=_per_user)
    async def sentiment(self, interaction: discord.Interaction, text: app_commands.Range[str, 1, 4000]) -> None:
        try:
            prediction = await self.bot.worker.classify(text, await self._language_pin(interaction))
        except EmptyTextError:
            await send_ephemeral(interaction, "There is no text to check.")
            return
        await send_ephemeral(interaction, describe(prediction))

    async def _language_pin(self, interaction: discord.Interaction) -> str | None:
        """The guild's language pin (``/moodbot config language``), if the command came from a guild."""
        if interaction.guild_id is None:
            return None
        return (await self.bot.store.guild_config(interaction.guild_id)).language

    async def check_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if (
            message.author.id != interaction.user.id
            and message.guild is not None
            and await self.bot.store.is_opted_out(message.author.id)
        ):
            await send_ephemeral(interaction, "The author of this message opted out of sentiment analysis.")
            return
        try:
            prediction = await self.bot.worker.classify(message.content, await self._language_pin(interaction))
        except EmptyTextError:
            await send_ephemeral(interaction, "That message has no text to check.")
            return
        await send_ephemeral(interaction, f"{describe(prediction)}\n{message.jump_url}")


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Sentiment(bot))
