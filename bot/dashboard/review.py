"""A review from the dashboard: the same store call as the Discord buttons (exactly once per status the moderator
saw), then the same mod-log card edit, so the card shows the review whichever side made it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import discord

from bot.cogs.moderation.cards import flag_embed
from bot.cogs.moderation.review import flag_view
from bot.store import AlreadyReviewedError, AsyncStore, Flag, FlagStatus, ReviewAction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReviewOutcome:
    flag: Flag
    message: str
    applied: bool


async def review(
    client: discord.Client, store: AsyncStore, flag: Flag, moderator_id: int, action: ReviewAction, seen: FlagStatus
) -> ReviewOutcome:
    """Apply ``action`` if the flag still has the status ``seen``; tell the moderator what happened either way."""
    if action is ReviewAction.DELETE:
        problem = await _delete_message(client, flag)
        if problem:
            return ReviewOutcome(flag, problem, applied=False)
    try:
        reviewed = await store.review_flag(flag.id, moderator_id, action, seen=seen)
    except AlreadyReviewedError as taken:
        by = f" by user {taken.review.moderator_id}" if taken.review else ""
        return ReviewOutcome(taken.flag, f"Flag #{flag.id} was already {taken.flag.status.value}{by}.", applied=False)
    log.info("flag %d %s by moderator %d (dashboard)", reviewed.id, reviewed.status.value, moderator_id)
    note = await _update_card(client, reviewed, moderator_id)
    return ReviewOutcome(reviewed, f"Flag #{reviewed.id} {reviewed.status.value}.{note}", applied=True)


async def _delete_message(client: discord.Client, flag: Flag) -> str | None:
    channel = client.get_partial_messageable(flag.channel_id, guild_id=flag.guild_id)
    try:
        await channel.get_partial_message(flag.message_id).delete()
    except discord.NotFound:
        pass  # already gone: deleting it is done
    except discord.HTTPException as error:
        log.warning("could not delete message %d of flag %d: %s", flag.message_id, flag.id, error)
        return "I could not delete that message (do I have Manage Messages in its channel?)."
    return None


async def _update_card(client: discord.Client, flag: Flag, moderator_id: int) -> str:
    if flag.modlog_channel_id is None or flag.modlog_message_id is None:
        return ""
    channel = client.get_partial_messageable(flag.modlog_channel_id, guild_id=flag.guild_id)
    try:
        await channel.get_partial_message(flag.modlog_message_id).edit(
            embed=flag_embed(flag, moderator_id), view=flag_view(flag)
        )
    except discord.HTTPException as error:
        log.warning("could not update the card of flag %d: %s", flag.id, error)
        return " (The mod-log card could not be updated.)"
    return ""
