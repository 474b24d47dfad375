"""Auto-flagging: store a flag, post it to the mod-log with persistent review buttons, and page through flags.

A flag follows its message: an edit re-scores it and updates its card in place (never a second card), a deletion is
marked on the card. Every card write renders the flag as stored and checks its ``revision`` afterwards, so that
of writers racing on one card (an edit, a deletion, a click, another process) the last state is the one shown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.admission import MessageDeletion
from bot.client import MoodBot
from bot.store import AlreadyReviewedError, AsyncStore, Flag, FlagStatus, GuildConfig, ReviewAction
from bot.ui import send_ephemeral
from classifier.flag_policy import Reason, flag_reasons
from classifier.heads.tasks import SENTIMENT, TASKS
from classifier.inference.prediction import Prediction

log = logging.getLogger(__name__)

PAGE_SIZE = 5
#: ``/flagged reason:`` choices: a flag's strongest reason's head (sentiment's reason is strong negativity).
REASON_NAMES = {task.name: "Negative" if task is SENTIMENT else task.title for task in TASKS.values()}
REPOST_INTERVAL_SECONDS = 10.0
#: The re-poster reads the mod-log back to this long before the flag was stored (clock skew between this host and
#: Discord): every card of the flag is newer, however many cards a burst posted after it.
CARD_LOOKBACK = dt.timedelta(minutes=2)
#: A post claim outlives the post it covers (bounded by POST_TIMEOUT_SECONDS), so that while this process lives no
#: other one posts the same card; if this process dies, the claim lapses and another re-poster takes over.
POST_CLAIM_SECONDS = 30.0
POST_TIMEOUT_SECONDS = 10.0
#: How old a mod-log history read may be when a claim is taken: any card posted under a lapsed claim is in it.
CARDS_FRESH_SECONDS = POST_CLAIM_SECONDS - POST_TIMEOUT_SECONDS
#: A flag button's ``custom_id`` is ``moodbot:flag:<action>:<flag id>``: it survives restarts and finds old cards.
CUSTOM_ID_PREFIX = "moodbot:flag"
ACTION_PATTERN = "|".join(action.value for action in ReviewAction)
CARD_CUSTOM_ID = re.compile(rf"^{CUSTOM_ID_PREFIX}:(?:{ACTION_PATTERN}):(?P<flag_id>[0-9]+)$")
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


def flag_embed(flag: Flag, reviewer_id: int | None = None, reviewed_at: dt.datetime | None = None) -> discord.Embed:
    """The mod-log card of a flag; mentions inside embeds never ping. The text is the message's latest; an edited
    flag also shows what it was first flagged as, and a deleted message is marked (the title still ends with the
    status, which :func:`shown_status` reads)."""
    marks = [mark for mark, on in (("edited", flag.edited_at), ("deleted", flag.deleted_at)) if on is not None]
    embed = discord.Embed(
        title=" · ".join(["Flagged message", *marks, flag.status.value]),
        description=f">>> {discord.utils.escape_markdown(flag.excerpt)}",
        colour=STATUS_COLOURS[flag.status],
        timestamp=flag.created_at,
    )
    embed.add_field(name="Author", value=f"<@{flag.author_id}> (`{flag.author_id}`)")
    embed.add_field(name="Channel", value=f"<#{flag.channel_id}>")
    embed.add_field(name="Why", value=_titles(flag.first.reasons if flag.first else flag.reasons))
    was = f" (was {flag.first.p_negative:.2f})" if flag.first else ""
    embed.add_field(name="Sentiment", value=f"p_negative {flag.p_negative:.2f}{was}")
    embed.add_field(name="Message", value=_message_state(flag))
    if flag.edited_at is not None:
        embed.add_field(name="Edited", value=_edit_note(flag))
    if flag.first is not None:
        embed.add_field(
            name="Before the edit", value=f">>> {discord.utils.escape_markdown(flag.first.excerpt)}", inline=False
        )
    if reviewer_id is not None:
        when = discord.utils.format_dt(reviewed_at or discord.utils.utcnow(), "R")
        embed.add_field(name="Reviewed", value=f"{flag.status.value.title()} by <@{reviewer_id}> {when}")
    embed.set_footer(text=f"Flag #{flag.id}")
    return embed


def _message_state(flag: Flag) -> str:
    """A jump link, or when the message was deleted (by a moderator's Delete, the review says who)."""
    if flag.deleted_at is None:
        return f"[Jump to message]({flag.jump_url})"
    by = "" if flag.status is FlagStatus.DELETED else " (by whom unknown)"
    return f"Deleted {discord.utils.format_dt(flag.deleted_at, 'R')}{by}"


def _edit_note(flag: Flag) -> str:
    """When the message was last edited, and how the edit scores against the flag policy."""
    assert flag.edited_at is not None
    when = discord.utils.format_dt(flag.edited_at, "R")
    if flag.first is None:
        return f"{when}; flagged as edited"
    if flag.below_threshold:
        return f"{when}; now below the flag threshold: {describe_reasons(flag)}"
    return f"{when}; now {describe_reasons(flag)}"


def describe_reasons(flag: Flag) -> str:
    """Why a flag is raised now, strongest first: ``Offensive 0.97 · Threat 0.88`` or ``Negative 0.95``."""
    return _titles(flag.reasons)


def _titles(reasons: tuple[Reason, ...]) -> str:
    return " · ".join(reason.title for reason in reasons)


def rescored(flag: Flag, prediction: Prediction) -> list[Reason]:
    """The reasons a flag was first raised for, at an edit's scores: what its card shows once an edit no longer
    flags the message (a head this prediction lacks is left out; sentiment is always there)."""
    reasons = []
    for reason in flag.first.reasons if flag.first else flag.reasons:
        score = prediction.p_negative if reason.head == SENTIMENT.name else prediction.signal(reason.head)
        if score is not None:
            reasons.append(Reason(reason.head, reason.label, score))
    return reasons or [Reason(SENTIMENT.name, "negative", prediction.p_negative)]


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
    """The status a flag card showed when its button was clicked (its title ends with it): what the click decided on."""
    title = card.embeds[0].title if card is not None and card.embeds else None
    try:
        return FlagStatus((title or "").rpartition(" · ")[2])
    except ValueError:
        return None


class FlagButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"{CUSTOM_ID_PREFIX}:(?P<action>{ACTION_PATTERN}):(?P<flag_id>[0-9]+)",
):
    """A review button whose action and flag id live in its ``custom_id``: it works after any restart."""

    def __init__(self, action: ReviewAction, flag_id: int, *, disabled: bool = False) -> None:
        style, label = BUTTON_STYLES[action]
        super().__init__(
            discord.ui.Button(
                style=style, label=label, custom_id=f"{CUSTOM_ID_PREFIX}:{action.value}:{flag_id}", disabled=disabled
            )
        )
        self.action = action
        self.flag_id = flag_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> FlagButton:
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
        seen = shown_status(interaction.message) or flag.status
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
        view.add_item(FlagButton(action, flag.id, disabled=action is ReviewAction.DELETE and gone))
    return view


class FlagPager(discord.ui.View):
    """Previous / next buttons over a moderator's private ``/flagged`` listing."""

    def __init__(
        self, cog: Moderation, user_id: int, guild_id: int, status: FlagStatus | None, head: str | None, total: int
    ) -> None:
        super().__init__(timeout=300)
        self.cog, self.user_id, self.guild_id, self.status, self.head = cog, user_id, guild_id, status, head
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
        embed = await self.cog.flag_page(self.guild_id, self.status, self.head, self.page)
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
        self._repost_up_to = 0

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(FlagButton)
        self.bot.message_consumers.append(self.raise_flag)
        self.bot.edit_consumers.append(self.follow_edit)
        self.bot.deletion_consumers.append(self.mark_deleted)
        self._repost_up_to = await self.bot.store.last_flag_id()
        self.post_unposted.start()

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(FlagButton)
        self.bot.message_consumers.remove(self.raise_flag)
        self.bot.edit_consumers.remove(self.follow_edit)
        self.bot.deletion_consumers.remove(self.mark_deleted)
        self.post_unposted.cancel()

    async def raise_flag(self, message: discord.Message, prediction: Prediction, flag: bool, live: bool) -> None:
        """Store a flag when the guild's flag policy finds a reason, then post it."""
        if not flag or message.guild is None:
            return
        config = await self.bot.store.guild_config(message.guild.id)
        reasons = flag_reasons(prediction, config.flag_on, config.flag_threshold)
        if reasons:
            await self._raise(message, prediction, reasons, config)

    async def follow_edit(self, message: discord.Message, prediction: Prediction, flag: bool, live: bool) -> None:
        """Check an edited message again: its flag is re-scored and its card updated in place (also when the edit
        no longer flags it: moderators still decide), and a message the edit makes flaggable is flagged once."""
        if not flag or message.guild is None or message.edited_at is None:
            return
        store = self.bot.store
        config = await store.guild_config(message.guild.id)
        reasons = flag_reasons(prediction, config.flag_on, config.flag_threshold)
        existing = await store.flag_of_message(message.guild.id, message.id)
        if existing is None:
            if not reasons or await self._raise(message, prediction, reasons, config, message.edited_at):
                return
            existing = await store.flag_of_message(message.guild.id, message.id)  # another process raised it
            if existing is None:
                return
        updated = await store.edit_flag(
            existing.id,
            edited_at=message.edited_at,
            text=message.content,
            p_negative=prediction.p_negative,
            vector=prediction.vector,
            namespace=self.bot.worker.namespace(prediction),
            reasons=reasons or rescored(existing, prediction),
            below_threshold=not reasons,
        )
        if updated is None:
            log.debug("the edit of message %d changes nothing (replayed, older, unchanged or deleted)", message.id)
            return
        log.info("flag %d follows the edit of message %d (%s)", updated.id, message.id, describe_reasons(updated))
        await refresh_card(self.bot, updated)

    async def mark_deleted(self, deletion: MessageDeletion) -> None:
        """Mark the flags of deleted messages and their cards (who deleted them, the gateway does not say)."""
        for flag in await self.bot.store.mark_deleted(deletion.guild_id, deletion.message_ids):
            log.info("the message %d of flag %d was deleted", flag.message_id, flag.id)
            await refresh_card(self.bot, flag)

    async def _raise(
        self,
        message: discord.Message,
        prediction: Prediction,
        reasons: list[Reason],
        config: GuildConfig,
        edited_at: dt.datetime | None = None,
    ) -> Flag | None:
        """Store a new flag and post its card; ``None`` when the message is flagged already."""
        assert message.guild is not None
        stored = await self.bot.store.add_flag(
            guild_id=message.guild.id,
            channel_id=message.channel.id,
            message_id=message.id,
            author_id=message.author.id,
            p_negative=prediction.p_negative,
            text=message.content,
            vector=prediction.vector,
            namespace=self.bot.worker.namespace(prediction),
            reasons=reasons,
            claim_post_s=POST_CLAIM_SECONDS if config.modlog_channel_id is not None else None,
            edited_at=edited_at,
        )
        if stored is None:
            log.debug("message %d is already flagged", message.id)
            return None
        log.info("flag %d raised on message %d (%s)", stored.id, message.id, describe_reasons(stored))
        if config.modlog_channel_id is not None:
            await self._post_claimed(stored, config.modlog_channel_id)
        return stored

    async def _post_claimed(self, flag: Flag, modlog_channel_id: int) -> None:
        """Post a flag whose post claim this process holds (taken as it stored the flag, or by the re-poster) and
        record the card; only the claim's holder posts, so a card is posted once however many processes try, and a
        failed post is retried by :meth:`post_unposted`."""
        channel = self.bot.get_partial_messageable(modlog_channel_id, guild_id=flag.guild_id)
        try:
            async with asyncio.timeout(POST_TIMEOUT_SECONDS):
                posted = await channel.send(**await current_card(self.bot.store, flag))
        except discord.HTTPException as error:  # refused: there is no card, so the next pass may try at once
            log.warning(
                "could not post flag %d to the mod-log channel %d (will retry): %s", flag.id, modlog_channel_id, error
            )
            await self.bot.store.release_post(flag.id)
            return
        except TimeoutError:  # the card may exist: the claim lapses, and the next poster looks for the card first
            log.warning("posting flag %d to the mod-log channel %d timed out (will retry)", flag.id, modlog_channel_id)
            return
        await self._posted(flag, modlog_channel_id, posted.id)

    async def _posted(self, flag: Flag, channel_id: int, card_id: int) -> None:
        """Record a flag's card, and update it if the flag changed since it was rendered (edited meanwhile)."""
        revision = await self.bot.store.mark_posted(flag.id, channel_id, card_id)
        if revision is not None and revision != flag.revision:
            latest = await self.bot.store.flag(flag.id)
            if latest is not None:
                await refresh_card(self.bot, latest, shown=flag.revision)

    @tasks.loop(seconds=REPOST_INTERVAL_SECONDS)
    async def post_unposted(self) -> None:
        """Post flags stored but never posted: a crash between storing and posting, or a post Discord refused.

        Each pass covers the flags that existed at the previous pass (so a flag being posted right now is left alone),
        of the guilds this process's shards own (another shard's process posts its guilds' cards), and takes each
        one's post claim (so two processes never both post it). Before posting, it looks in the mod-log
        channel, read after the claim was free to take, for a card posted just before a crash, so that no card is
        posted twice.
        """
        up_to, self._repost_up_to = self._repost_up_to, await self.bot.store.last_flag_id()
        # mod-log channel -> (read at, read back to, flag id -> card message id)
        cards: dict[int, tuple[float, dt.datetime, dict[int, int]]] = {}
        recovered = 0
        for flag in await self.bot.store.unposted_flags(up_to):
            if not self.bot.owns_guild(flag.guild_id):
                continue
            channel_id = (await self.bot.store.guild_config(flag.guild_id)).modlog_channel_id
            if channel_id is None or not await self.bot.store.claim_post(flag.id, POST_CLAIM_SECONDS):
                continue
            since = flag.created_at - CARD_LOOKBACK
            read_at, read_since, already = cards.get(channel_id, (float("-inf"), since, {}))
            if time.monotonic() - read_at > CARDS_FRESH_SECONDS or since < read_since:
                read_at, already = time.monotonic(), await self._cards_in(channel_id, flag.guild_id, since)
                cards[channel_id] = read_at, since, already
            if flag.id in already:
                await self._posted(flag, channel_id, already[flag.id])
            else:
                await self._post_claimed(flag, channel_id)
            recovered += 1
        if recovered:
            log.info("recovered %d flags that were stored but not recorded as posted", recovered)

    @post_unposted.before_loop
    async def _before_post_unposted(self) -> None:
        await self.bot.wait_until_ready()

    @post_unposted.error
    async def _post_unposted_failed(self, error: BaseException) -> None:
        log.error("posting unposted flags failed; retrying in %.0f s", REPOST_INTERVAL_SECONDS, exc_info=error)
        self.post_unposted.restart()

    async def _cards_in(self, channel_id: int, guild_id: int, since: dt.datetime) -> dict[int, int]:
        """Flag id -> message id of the bot's flag cards posted in a mod-log channel since ``since`` (empty if
        unreadable): all of them, not the latest few, since a burst may post thousands after the one looked for."""
        channel = self.bot.get_partial_messageable(channel_id, guild_id=guild_id)
        cards: dict[int, int] = {}
        try:
            async for message in channel.history(limit=None, after=since):
                if self.bot.user is None or message.author.id != self.bot.user.id:
                    continue
                for row in message.components:
                    for child in getattr(row, "children", ()):
                        match = CARD_CUSTOM_ID.match(getattr(child, "custom_id", None) or "")
                        if match:
                            cards.setdefault(int(match["flag_id"]), message.id)
        except discord.HTTPException as error:
            log.warning("could not read the mod-log channel %d to avoid re-posting cards: %s", channel_id, error)
        return cards

    async def flag_page(self, guild_id: int, status: FlagStatus | None, head: str | None, page: int) -> discord.Embed:
        flags, total = await self.bot.store.flags(
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

    @app_commands.command(name="flagged", description="Moderators: page through flagged messages")
    @app_commands.describe(
        status="Only flags with this status (default: open)", reason="Only flags raised mainly for this reason"
    )
    @app_commands.choices(
        status=[app_commands.Choice(name=s.value, value=s.value) for s in FlagStatus]
        + [app_commands.Choice(name="all", value="all")],
        reason=[app_commands.Choice(name=name, value=head) for head, name in REASON_NAMES.items()]
        + [app_commands.Choice(name="all", value="all")],
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_messages=True)
    @app_commands.checks.has_permissions(manage_messages=True)
    async def flagged(
        self, interaction: discord.Interaction, status: str = FlagStatus.OPEN.value, reason: str = "all"
    ) -> None:
        assert interaction.guild_id is not None
        selected = None if status == "all" else FlagStatus(status)
        head = None if reason == "all" else reason
        _, total = await self.bot.store.flags(interaction.guild_id, selected, head=head, limit=0)
        pager = FlagPager(self, interaction.user.id, interaction.guild_id, selected, head, total)
        embed = await self.flag_page(interaction.guild_id, selected, head, 0)
        await interaction.response.send_message(embed=embed, view=pager, ephemeral=True)


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Moderation(bot))

