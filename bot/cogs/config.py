"""``/moodbot config ...``: admins (Manage Server) view and change the guild's settings."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import MoodBot
from bot.store import GuildConfig
from bot.store.channel_kind import ChannelKind
from classifier.flag_policy import FLAG_THRESHOLD_RANGE, HARMFUL, NEGATIVE, SIGNALS
from classifier.heads.tasks import TASKS
from classifier.language import AUTO, ENGLISH, MULTILINGUAL, parse_language_pin

LOW, HIGH = FLAG_THRESHOLD_RANGE
SIGNAL_NAMES = {HARMFUL: "harmful (any moderation head)", NEGATIVE: "strongly negative"}
#: The moderation signals "harmful" stands for, as the flag command's choice names them.
_MODERATION_SIGNALS = ", ".join(task.title.lower() for task in TASKS.values() if task.moderation)

log = logging.getLogger(__name__)


def _channels(ids: frozenset[int]) -> str:
    return ", ".join(f"<#{i}>" for i in sorted(ids)) or "none"


def describe_flag_on(config: GuildConfig) -> str:
    """The flag signals in words."""
    return " or ".join(SIGNAL_NAMES[signal] for signal in SIGNALS if signal in config.flag_on)


def config_embed(config: GuildConfig) -> discord.Embed:
    embed = discord.Embed(title="moodbot settings", colour=discord.Colour.blurple())
    embed.add_field(
        name="Mod-log channel",
        value=f"<#{config.modlog_channel_id}>" if config.modlog_channel_id else "not set (flags are only stored)",
    )
    embed.add_field(name="Flag on", value=describe_flag_on(config))
    embed.add_field(name="Flag threshold", value=f"p(negative) ≥ {config.flag_threshold:.2f}")
    embed.add_field(name="Language", value=config.language or "detected per message")
    embed.add_field(name="Auto-flagging", value="on" if config.auto_flag else "off")
    embed.add_field(name="Mood history", value="on" if config.history else "off")
    embed.add_field(name="Live-mode channels", value=_channels(config.live_channels), inline=False)
    embed.add_field(name="Disabled channels", value=_channels(config.disabled_channels), inline=False)
    embed.add_field(
        name="Exempt roles", value=", ".join(f"<@&{r}>" for r in sorted(config.exempt_roles)) or "none", inline=False
    )
    return embed


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Config(commands.GroupCog, group_name="moodbot", group_description="moodbot administration"):
    """Every sub-command re-checks Manage Server at the moment of use and answers privately."""

    config = app_commands.Group(name="config", description="View and change moodbot's settings for this server")

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    async def _answer(self, interaction: discord.Interaction, config: GuildConfig, change: str | None = None) -> None:
        if change:
            log.info("guild %s: %s (by %s)", interaction.guild_id, change, interaction.user.id)
        await interaction.response.send_message(change, embed=config_embed(config), ephemeral=True)

    @config.command(name="show", description="Show the current settings")
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await self._answer(interaction, await self.bot.store.guild_config(interaction.guild_id))

    @config.command(name="modlog", description="Where flags are posted (leave empty to stop posting)")
    async def modlog(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.store.update_guild(
            interaction.guild_id, modlog_channel_id=channel.id if channel else None
        )
        await self._answer(
            interaction, config, f"Mod-log channel set to {channel.mention}." if channel else "Mod-log channel unset."
        )

    @config.command(name="threshold", description="Flag messages whose probability of being negative is at least this")
    async def threshold(self, interaction: discord.Interaction, value: app_commands.Range[float, LOW, HIGH]) -> None:
        assert interaction.guild_id is not None
        if not LOW <= value <= HIGH:  # Discord enforces the range; a compatible server might not
            await interaction.response.send_message(f"The threshold must be between {LOW} and {HIGH}.", ephemeral=True)
            return
        config = await self.bot.store.update_guild(interaction.guild_id, flag_threshold=float(value))
        await self._answer(interaction, config, f"Flag threshold set to {value:.2f}.")

    @config.command(name="flag", description="Which signals flag a message: harmful, strongly negative, or both")
    @app_commands.choices(signals=[
        app_commands.Choice(name="harmful or strongly negative (default)", value=f"{HARMFUL},{NEGATIVE}"),
        app_commands.Choice(name=f"harmful only ({_MODERATION_SIGNALS})", value=HARMFUL),
        app_commands.Choice(name="strongly negative only", value=NEGATIVE),
    ])
    async def flag(self, interaction: discord.Interaction, signals: str) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.store.update_guild(interaction.guild_id, flag_on=signals)
        await self._answer(interaction, config, f"Flagging on {describe_flag_on(config)}.")

    @config.command(name="language", description="Pin this server's language (auto: detect it per message)")
    @app_commands.describe(
        language=f"{AUTO}, {ENGLISH} (English-only encoder), {MULTILINGUAL}, or a language code such as de or ru"
    )
    async def language(self, interaction: discord.Interaction, language: app_commands.Range[str, 2, 16]) -> None:
        assert interaction.guild_id is not None
        try:
            pin = parse_language_pin(language)
        except ValueError as error:
            await interaction.response.send_message(str(error), ephemeral=True)
            return
        config = await self.bot.store.update_guild(interaction.guild_id, language=pin)
        await self._answer(interaction, config, f"Language {'detected per message' if pin is None else pin}.")

    @config.command(name="autoflag", description="Turn auto-flagging of negative messages on or off")
    async def autoflag(self, interaction: discord.Interaction, enabled: bool) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.store.update_guild(interaction.guild_id, auto_flag=int(enabled))
        await self._answer(interaction, config, f"Auto-flagging {'on' if enabled else 'off'}.")

    @config.command(name="history", description="Keep hourly mood aggregates (counts only, no text) for the dashboard")
    async def history(self, interaction: discord.Interaction, enabled: bool) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.store.update_guild(interaction.guild_id, history=enabled)
        await self._answer(interaction, config, f"Mood history {'on' if enabled else 'off'}.")

    @config.command(name="live", description="React to each new message in a channel with its sentiment")
    async def live(self, interaction: discord.Interaction, channel: discord.TextChannel, enabled: bool) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.store.set_channel(interaction.guild_id, channel.id, ChannelKind.LIVE, enabled)
        await self._answer(interaction, config, f"Live mode {'on' if enabled else 'off'} in {channel.mention}.")

    @config.command(name="disable", description="Ignore a channel entirely (no classification, no flags)")
    async def disable(self, interaction: discord.Interaction, channel: discord.TextChannel, disabled: bool) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.store.set_channel(interaction.guild_id, channel.id, ChannelKind.DISABLED, disabled)
        await self._answer(interaction, config, f"{channel.mention} is {'ignored' if disabled else 'watched'}.")

    @config.command(name="exempt", description="Never flag members with this role")
    async def exempt(self, interaction: discord.Interaction, role: discord.Role, exempt: bool) -> None:
        assert interaction.guild_id is not None
        config = await self.bot.store.set_exempt_role(interaction.guild_id, role.id, exempt)
        await self._answer(
            interaction, config, f"{role.mention} is {'exempt from' if exempt else 'subject to'} flagging."
        )


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Config(bot))
