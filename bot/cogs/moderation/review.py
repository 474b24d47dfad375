"""The review buttons of a card (Dismiss / Confirm / Delete message) and bringing a posted card up to date.

A button's ``custom_id`` carries its action, flag id and the status its card showed (a ``DynamicItem``): it works
after any restart, a click decides on what its moderator saw, and the re-poster finds a flag's old cards by it. Every
card write renders the flag as stored and checks its ``revision`` afterwards, so that of writers racing on one card
(an edit, a deletion, a click, another process) the last state is the one shown.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bot.client import MoodBot
from bot.cogs.moderation.cards import flag_embed
from bot.store import AlreadyReviewedError, AsyncStore, Flag, FlagStatus, ReviewAction
from bot.ui import send_ephemeral

log = logging.getLogger(__name__)

#: A flag button's ``custom_id`` is ``moodbot:flag:<action>:<flag id>:<status shown>``: it survives restarts and finds
#: old cards. Cards posted before the status was added end at the flag id (their title shows the status).
CUSTOM_ID_PREFIX = "moodbot:flag"


ACTION_PATTERN = "|".join(action.value for action in ReviewAction)


STATUS_PATTERN = "|".join(status.value for status in FlagStatus)


CUSTOM_ID_TEMPLATE = (
    rf"{CUSTOM_ID_PREFIX}:(?P<action>{ACTION_PATTERN}):(?P<flag_id>[0-9]+)(?::(?P<seen>{STATUS_PATTERN}))?"
)


CARD_CUSTOM_ID = re.compile(rf"^{CUSTOM_ID_TEMPLATE}$")


BUTTON_STYLES = {
    ReviewAction.DISMISS: (discord.ButtonStyle.secondary, "Dismiss"),
    ReviewAction.CONFIRM: (discord.ButtonStyle.primary, "Confirm"),
    ReviewAction.DELETE: (discord.ButtonStyle.danger, "Delete message"),
}


async def current_card(store: AsyncStore, flag: Flag) -> dict[str, Any]:
    """The card's embed and view for ``flag`` as stored, naming its latest reviewer (``message.edit(**card)``)."""
    review = await store.latest_review(flag.id) if flag.status is not FlagStatus.OPEN else None
    if review is None:
        return {"embed": flag_embed(flag), "view": flag_view(flag)}
    return {"embed": flag_embed(flag, review.moderator_id, review.created_at), "view": flag_view(flag)}


async def refresh_card(bot: MoodBot, flag: Flag, shown: int | None = None) -> None:
    """Bring a posted card up to date: edit it to ``flag`` (unless it shows revision ``shown`` already), then again
    while the store holds a newer revision than the one just shown. Each writer checks after its own write, so the
    last to finish shows the latest state, whatever order their edits reached Discord in."""
    while flag.modlog_channel_id is not None and flag.modlog_message_id is not None:
        if flag.revision != shown:
            channel = bot.get_partial_messageable(flag.modlog_channel_id, guild_id=flag.guild_id)
            try:
                await channel.get_partial_message(flag.modlog_message_id).edit(**await current_card(bot.store, flag))
            except discord.HTTPException as error:
                log.warning("could not update the card of flag %d: %s", flag.id, error)
                return
            shown = flag.revision
        latest = await bot.store.flag(flag.id)
        if latest is None or latest.revision == shown:
            return
        flag = latest


def shown_status(card: discord.Message | None) -> FlagStatus | None:
    """The status a card posted before buttons carried it showed when clicked (its title ends with it)."""
    title = card.embeds[0].title if card is not None and card.embeds else None
    try:
        return FlagStatus((title or "").rpartition(" · ")[2])
    except ValueError:
        return None


class FlagButton(discord.ui.DynamicItem[discord.ui.Button], template=CUSTOM_ID_TEMPLATE):
    """A review button whose action, flag id and the status its card showed live in its ``custom_id``: it works
    after any restart, and a click that lands after another moderator's review is told so instead of overriding it."""

    def __init__(
        self, action: ReviewAction, flag_id: int, seen: FlagStatus | None, *, disabled: bool = False
    ) -> None:
        style, label = BUTTON_STYLES[action]
        custom_id = f"{CUSTOM_ID_PREFIX}:{action.value}:{flag_id}" + (f":{seen.value}" if seen else "")
        super().__init__(discord.ui.Button(style=style, label=label, custom_id=custom_id, disabled=disabled))
        self.action = action
        self.flag_id = flag_id
        self.seen = seen

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> FlagButton:
        seen = FlagStatus(match["seen"]) if match["seen"] else None
        return cls(ReviewAction(match["action"]), int(match["flag_id"]), seen)

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
        seen = self.seen or shown_status(interaction.message) or flag.status
        try:
            flag = await bot.store.review_flag(flag.id, interaction.user.id, self.action, seen=seen)
        except AlreadyReviewedError as taken:  # another click on the same card landed first: show it, and say so
            reviewer = taken.review.moderator_id if taken.review else None
            await interaction.response.edit_message(embed=flag_embed(taken.flag, reviewer), view=flag_view(taken.flag))
            by = f" by <@{reviewer}>" if reviewer else ""
            already = f"This flag was already {taken.flag.status.value}{by}; click again to change that."
            await send_ephemeral(interaction, already)
            return
        log.info("flag %d %s by moderator %d", flag.id, flag.status.value, interaction.user.id)
        await interaction.response.edit_message(embed=flag_embed(flag, interaction.user.id), view=flag_view(flag))
        await refresh_card(bot, flag, shown=flag.revision)  # an edit or a deletion may have landed meanwhile


async def _delete_flagged_message(bot: MoodBot, flag: Flag, interaction: discord.Interaction) -> bool:
    """Delete the flagged message and record when; tells the moderator when the bot may not, and when the message
    was deleted already (then the card is brought up to date, with its Delete disabled, and nothing is reviewed)."""
    already = flag.deleted_at is not None
    if not already:
        channel = bot.get_partial_messageable(flag.channel_id, guild_id=flag.guild_id)
        try:
            await channel.get_partial_message(flag.message_id).delete()
        except discord.NotFound:
            already = True  # deleted before the bot heard of it
        except discord.HTTPException as error:
            log.warning("could not delete message %d of flag %d: %s", flag.message_id, flag.id, error)
            await send_ephemeral(
                interaction, "I could not delete that message (do I have Manage Messages in its channel?)."
            )
            return False
        await bot.store.mark_deleted(flag.guild_id, [flag.message_id])
    if not already:
        return True
    current = await bot.store.flag(flag.id) or flag
    await interaction.response.edit_message(**await current_card(bot.store, current))
    await send_ephemeral(interaction, "This message was already deleted.")
    await refresh_card(bot, current, shown=current.revision)
    return False


def flag_view(flag: Flag) -> discord.ui.View:
    """Dismiss / Confirm / Delete message; Delete is disabled once the message is gone."""
    gone = flag.status is FlagStatus.DELETED or flag.deleted_at is not None
    view = discord.ui.View(timeout=None)
    for action in BUTTON_STYLES:
        view.add_item(FlagButton(action, flag.id, flag.status, disabled=action is ReviewAction.DELETE and gone))
    return view
