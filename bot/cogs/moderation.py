"""Auto-flagging: store a flag, post it to the mod-log with persistent review buttons, and page through flags."""

from __future__ import annotations

import asyncio
import logging
import re

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import MoodBot, send_ephemeral
from bot.store import Flag, FlagStatus, ReviewAction
from classifier.prediction import Prediction

log = logging.getLogger(__name__)

PAGE_SIZE = 5
STATUS_COLOURS = {
    FlagStatus.OPEN: discord.Colour.orange(),
    FlagStatus.CONFIRMED: discord.Colour.red(),
    FlagStatus.DISMISSED: discord.Colour.green(),
    FlagStatus.DELETED: discord.Colour.dark_grey(),
}
BUTTON_STYLES = {
    ReviewAction.DISMISS: (discord.ButtonStyle.secondary, "Dismiss"),
    ReviewAction.CONFIRM: (discord.ButtonStyle.primary, "Confirm"),
    ReviewAction.DELETE: (discord.ButtonStyle.danger, "Delete message"),
}


def flag_embed(flag: Flag, reviewer_id: int | None = None) -> discord.Embed:
    """The mod-log card of a flag; mentions inside embeds never ping."""
    embed = discord.Embed(
        title=f"Flagged message · {flag.status.value}",
        description=f">>> {discord.utils.escape_markdown(flag.excerpt)}",
        colour=STATUS_COLOURS[flag.status],
        timestamp=flag.created_at,
    )
    embed.add_field(name="Author", value=f"<@{flag.author_id}> (`{flag.author_id}`)")
    embed.add_field(name="Channel", value=f"<#{flag.channel_id}>")
    embed.add_field(name="Score", value=f"{flag.p_negative:.0%} negative")
    embed.add_field(name="Message", value=f"[Jump to message]({flag.jump_url})")
    if reviewer_id is not None:
        embed.add_field(name="Reviewed", value=f"{flag.status.value.title()} by <@{reviewer_id}> {discord.utils.format_dt(discord.utils.utcnow(), 'R')}")
    embed.set_footer(text=f"Flag #{flag.id}")
    return embed


class FlagButton(discord.ui.DynamicItem[discord.ui.Button], template=r"moodbot:flag:(?P<action>confirm|dismiss|delete):(?P<flag_id>[0-9]+)"):
    """A review button whose action and flag id live in its ``custom_id``: it works after any restart."""

    def __init__(self, action: ReviewAction, flag_id: int, *, disabled: bool = False) -> None:
        style, label = BUTTON_STYLES[action]
        super().__init__(discord.ui.Button(style=style, label=label, custom_id=f"moodbot:flag:{action.value}:{flag_id}", disabled=disabled))
        self.action = action
        self.flag_id = flag_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /) -> FlagButton:
        return cls(ReviewAction(match["action"]), int(match["flag_id"]))

    async def callback(self, interaction: discord.Interaction[MoodBot]) -> None:  # type: ignore[override]
        if not interaction.permissions.manage_messages:
            await send_ephemeral(interaction, "You need the Manage Messages permission to review flags.")
            return
        bot = interaction.client
        flag = await bot.store.flag(self.flag_id)
        if flag is None or flag.guild_id != interaction.guild_id:
            await send_ephemeral(interaction, "This flag no longer exists.")
            return
        if self.action is ReviewAction.DELETE and not await _delete_flagged_message(bot, flag, interaction):
            return
        flag = await bot.store.review_flag(flag.id, interaction.user.id, self.action)
        log.info("flag %d %s by moderator %d", flag.id, flag.status.value, interaction.user.id)
        await interaction.response.edit_message(embed=flag_embed(flag, interaction.user.id), view=flag_view(flag))


async def _delete_flagged_message(bot: MoodBot, flag: Flag, interaction: discord.Interaction) -> bool:
    """Delete the flagged message (already gone counts as done); tells the moderator when the bot may not."""
    message = bot.get_partial_messageable(flag.channel_id, guild_id=flag.guild_id).get_partial_message(flag.message_id)
    try:
        await message.delete()
    except discord.NotFound:
        pass
    except discord.HTTPException as error:
        log.warning("could not delete message %d of flag %d: %s", flag.message_id, flag.id, error)
        await send_ephemeral(interaction, "I could not delete that message (do I have Manage Messages in its channel?).")
        return False
    return True


def flag_view(flag: Flag) -> discord.ui.View:
    """Dismiss / Confirm / Delete message; Delete is disabled once the message is gone."""
    view = discord.ui.View(timeout=None)
    for action in BUTTON_STYLES:
        view.add_item(FlagButton(action, flag.id, disabled=action is ReviewAction.DELETE and flag.status is FlagStatus.DELETED))
    return view


class FlagPager(discord.ui.View):
    """Previous / next buttons over a moderator's private ``/flagged`` listing."""

    def __init__(self, cog: Moderation, user_id: int, guild_id: int, status: FlagStatus | None, total: int) -> None:
        super().__init__(timeout=300)
        self.cog, self.user_id, self.guild_id, self.status = cog, user_id, guild_id, status
        self.page, self.pages = 0, max(1, -(-total // PAGE_SIZE))
        self._refresh()

    def _refresh(self) -> None:
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= self.pages - 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id and interaction.permissions.manage_messages

    async def _show(self, interaction: discord.Interaction, page: int) -> None:
        self.page = max(0, min(page, self.pages - 1))
        self._refresh()
        embed = await self.cog.flag_page(self.guild_id, self.status, self.page)
        await interaction.response.edit_message(embed=embed, view=self)

    @discord.ui.button(label="◀ Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, self.page - 1)

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, self.page + 1)


class Moderation(commands.Cog):
    """Raises flags on negative messages and lets moderators review them."""

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot
        self._repost_task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(FlagButton)
        self.bot.message_consumers.append(self.raise_flag)
        last_before_start = await self.bot.store.last_flag_id()
        self._repost_task = asyncio.create_task(self._post_unposted(last_before_start), name="moodbot-post-unposted-flags")

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(FlagButton)
        self.bot.message_consumers.remove(self.raise_flag)
        if self._repost_task is not None:
            self._repost_task.cancel()

    async def raise_flag(self, message: discord.Message, prediction: Prediction, flag: bool, live: bool) -> None:
        """Store a flag when the message is negative enough, then post it."""
        if not flag or message.guild is None:
            return
        config = await self.bot.store.guild_config(message.guild.id)
        if prediction.p_negative < config.flag_threshold:
            return
        stored = await self.bot.store.add_flag(
            guild_id=message.guild.id, channel_id=message.channel.id, message_id=message.id, author_id=message.author.id,
            p_negative=prediction.p_negative, text=message.content, vector=prediction.vector,
            namespace=self.bot.worker.classifier.encoder.cache_namespace,
        )
        if stored is None:
            log.debug("message %d is already flagged", message.id)
            return
        log.info("flag %d raised on message %d (p_negative %.3f)", stored.id, message.id, stored.p_negative)
        await self.post_flag(stored, config.modlog_channel_id)

    async def post_flag(self, flag: Flag, modlog_channel_id: int | None) -> None:
        """Post a stored flag to the mod-log channel and remember the message; failures are retried at next start."""
        if modlog_channel_id is None:
            return
        channel = self.bot.get_partial_messageable(modlog_channel_id, guild_id=flag.guild_id)
        try:
            posted = await channel.send(embed=flag_embed(flag), view=flag_view(flag))
        except discord.HTTPException as error:
            log.warning("could not post flag %d to the mod-log channel %d: %s", flag.id, modlog_channel_id, error)
            return
        await self.bot.store.mark_posted(flag.id, modlog_channel_id, posted.id)

    async def _post_unposted(self, up_to_id: int) -> None:
        """Post the flags stored before this start (e.g. just before a crash) but never posted."""
        await self.bot.wait_until_ready()
        pending = await self.bot.store.unposted_flags(up_to_id)
        for flag in pending:
            config = await self.bot.store.guild_config(flag.guild_id)
            await self.post_flag(flag, config.modlog_channel_id)
        if pending:
            log.info("re-posted %d flags stored but never posted", len(pending))

    async def flag_page(self, guild_id: int, status: FlagStatus | None, page: int) -> discord.Embed:
        flags, total = await self.bot.store.flags(guild_id, status, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
        title = f"{status.value.title() if status else 'All'} flags"
        embed = discord.Embed(title=f"{title} ({total})", colour=STATUS_COLOURS[status or FlagStatus.OPEN])
        for flag in flags:
            value = f"<@{flag.author_id}> in <#{flag.channel_id}> · {flag.p_negative:.0%} · [jump]({flag.jump_url})\n> {discord.utils.escape_markdown(flag.excerpt[:150])}"
            embed.add_field(name=f"#{flag.id} · {flag.status.value} · {discord.utils.format_dt(flag.created_at, 'R')}", value=value, inline=False)
        if not flags:
            embed.description = "No flags."
        embed.set_footer(text=f"Page {page + 1} of {max(1, -(-total // PAGE_SIZE))}")
        return embed

    @app_commands.command(name="flagged", description="Moderators: page through flagged messages")
    @app_commands.describe(status="Only flags with this status (default: open)")
    @app_commands.choices(status=[app_commands.Choice(name=s.value, value=s.value) for s in FlagStatus] + [app_commands.Choice(name="all", value="all")])
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_messages=True)
    @app_commands.checks.has_permissions(manage_messages=True)
    async def flagged(self, interaction: discord.Interaction, status: str = FlagStatus.OPEN.value) -> None:
        assert interaction.guild_id is not None
        selected = None if status == "all" else FlagStatus(status)
        _, total = await self.bot.store.flags(interaction.guild_id, selected, limit=0)
        pager = FlagPager(self, interaction.user.id, interaction.guild_id, selected, total)
        embed = await self.flag_page(interaction.guild_id, selected, 0)
        await interaction.response.send_message(embed=embed, view=pager, ephemeral=True)


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Moderation(bot))

