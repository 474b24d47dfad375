"""``/privacy optout|optin|status``: opted-out members' messages are never classified, cached, flagged or counted."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import MoodBot

log = logging.getLogger(__name__)


class Privacy(
    commands.GroupCog, group_name="privacy", group_description="Control whether moodbot analyses your messages"
):
    """An opt-out applies in every server the bot shares with the member."""

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot

    @app_commands.command(name="optout", description="Stop moodbot from analysing your messages")
    async def optout(self, interaction: discord.Interaction) -> None:
        await self.bot.store.set_opt_out(interaction.user.id, True)
        log.info("user %s opted out", interaction.user.id)
        await interaction.response.send_message(
            "You are opted out: your messages are no longer classified, cached, flagged or counted in mood summaries.",
            ephemeral=True,
        )

    @app_commands.command(name="optin", description="Let moodbot analyse your messages again")
    async def optin(self, interaction: discord.Interaction) -> None:
        await self.bot.store.set_opt_out(interaction.user.id, False)
        log.info("user %s opted in", interaction.user.id)
        await interaction.response.send_message(
            "You are opted in: moodbot analyses your messages again.", ephemeral=True
        )

    @app_commands.command(name="status", description="Whether moodbot analyses your messages")
    async def status(self, interaction: discord.Interaction) -> None:
        opted_out = await self.bot.store.is_opted_out(interaction.user.id)
        state = "opted out: your messages are not analysed" if opted_out else "opted in: your messages are analysed"
        await interaction.response.send_message(
            f"You are {state}. Use `/privacy optout` or `/privacy optin` to change it.", ephemeral=True
        )


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Privacy(bot))
