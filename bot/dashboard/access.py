"""What a dashboard user may do in a guild, read live from Discord through the bot at every request.

Never from the login moment or the user's OAuth guild list: a member who loses Manage Server or Manage Messages
loses the matching pages on the next click. Channel permissions come from discord.py's own computation (roles and
channel overwrites), exactly as the review buttons see them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import discord

log = logging.getLogger(__name__)


class NoAccessError(Exception):
    """The user may not do this here: the message is shown to them."""


class DiscordUnavailableError(Exception):
    """Discord did not answer the live permission check: nothing is shown or done without it."""


@dataclass(frozen=True)
class GuildAccess:
    guild: discord.Guild
    member: discord.Member
    channels: dict[int, discord.abc.GuildChannel]

    @property
    def manage_guild(self) -> bool:
        return self.member.guild_permissions.manage_guild

    def may_review_in(self, channel_id: int) -> bool:
        channel = self.channels.get(channel_id)
        return channel is not None and channel.permissions_for(self.member).manage_messages

    @property
    def reviewable_channels(self) -> set[int]:
        return {channel_id for channel_id in self.channels if self.may_review_in(channel_id)}

    @property
    def text_channels(self) -> list[discord.TextChannel]:
        return sorted(
            (c for c in self.channels.values() if isinstance(c, discord.TextChannel)), key=lambda c: c.position
        )

    def channel_name(self, channel_id: int) -> str:
        channel = self.channels.get(channel_id)
        return f"#{channel.name}" if channel is not None else f"#{channel_id} (deleted)"

    def require_manage_guild(self) -> None:
        if not self.manage_guild:
            raise NoAccessError("You need the Manage Server permission in this server.")

    def require_reviewer(self) -> None:
        if not self.reviewable_channels:
            raise NoAccessError("You need the Manage Messages permission in at least one channel of this server.")


async def guild_access(client: discord.Client, guild_id: int, user_id: int) -> GuildAccess | None:
    """The bot's current view of ``user_id`` in ``guild_id``; ``None`` when the bot or the user is not in it."""
    try:
        guild = await client.fetch_guild(guild_id)
        member = await guild.fetch_member(user_id)
        channels = {channel.id: channel for channel in await guild.fetch_channels()}
    except (discord.NotFound, discord.Forbidden):
        return None
    except (discord.HTTPException, OSError) as error:
        log.warning("could not read guild %d from Discord: %s", guild_id, error)
        raise DiscordUnavailableError("Discord did not answer; please try again in a moment.") from error
    return GuildAccess(guild, member, channels)
