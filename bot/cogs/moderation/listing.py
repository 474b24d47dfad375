"""``/flagged``'s private listing: one page of a guild's flags, and the buttons that page through them."""

from __future__ import annotations

import discord

from bot.cogs.moderation.cards import REASON_NAMES, STATUS_COLOURS, describe_reasons
from bot.store import AsyncStore, FlagStatus

PAGE_SIZE = 5


async def flag_page(
    store: AsyncStore, guild_id: int, status: FlagStatus | None, head: str | None, page: int
) -> discord.Embed:
    """One page of the guild's flags (of one status, raised mainly by one head), newest first."""
    flags, total = await store.flags(
        guild_id, status, head=head, limit=PAGE_SIZE, offset=page * PAGE_SIZE
    )
    title = f"{status.value.title() if status else 'All'} flags" + (f" · {REASON_NAMES[head]}" if head else "")
    embed = discord.Embed(title=f"{title} ({total})", colour=STATUS_COLOURS[status or FlagStatus.OPEN])
    for flag in flags:
        value = (
            f"<@{flag.author_id}> in <#{flag.channel_id}> · {describe_reasons(flag)} · [jump]({flag.jump_url})\n"
            f"> {discord.utils.escape_markdown(flag.excerpt[:150])}"
        )
        embed.add_field(
            name=f"#{flag.id} · {flag.status.value} · {discord.utils.format_dt(flag.created_at, 'R')}",
            value=value,
            inline=False,
        )
    if not flags:
        embed.description = "No flags."
    embed.set_footer(text=f"Page {page + 1} of {max(1, -(-total // PAGE_SIZE))}")
    return embed


class FlagPager(discord.ui.View):
    """Previous / next buttons over a moderator's private ``/flagged`` listing."""

    def __init__(
        self, store: AsyncStore, user_id: int, guild_id: int, status: FlagStatus | None, head: str | None, total: int
    ) -> None:
        super().__init__(timeout=300)
        self.store, self.user_id, self.guild_id, self.status, self.head = store, user_id, guild_id, status, head
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
        embed = await flag_page(self.store, self.guild_id, self.status, self.head, self.page)
        await interaction.response.edit_message(embed=embed, view=self)

    @discord.ui.button(label="◀ Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, self.page - 1)

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._show(interaction, self.page + 1)
