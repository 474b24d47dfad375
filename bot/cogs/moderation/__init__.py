"""Auto-flagging: store a flag, post it to the mod-log with persistent review buttons, follow its message's edits
and deletion, and page through flags (:mod:`.cards` renders a card, :mod:`.review` is its buttons, :mod:`.listing`
is ``/flagged``).

A flag follows its message: an edit re-scores it and updates its card in place (never a second card), a deletion is
marked on the card. Every card write renders the flag as stored and checks its ``revision`` afterwards, so that
of writers racing on one card (an edit, a deletion, a click, another process) the last state is the one shown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.admission import MessageDeletion
from bot.client import MoodBot
from bot.cogs.moderation.cards import REASON_NAMES, describe_reasons, rescored
from bot.cogs.moderation.listing import FlagPager, flag_page
from bot.cogs.moderation.review import CARD_CUSTOM_ID, FlagButton, current_card, refresh_card
from bot.store import Flag, FlagStatus, GuildConfig
from classifier.flag_policy import Reason, flag_reasons
from classifier.inference.prediction import Prediction

log = logging.getLogger(__name__)

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


def wants_flagging(config: GuildConfig, message: discord.Message) -> bool:
    """Auto-flagging is on and the author holds no exempt role."""
    roles = getattr(message.author, "roles", ())
    return config.auto_flag and not any(role.id in config.exempt_roles for role in roles)


class Moderation(commands.Cog):
    """Raises flags on negative messages and lets moderators review them."""

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot
        self._repost_up_to = 0

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(FlagButton)
        self.bot.message_consumers.append(self)
        self.bot.deletion_consumers.append(self.mark_deleted)
        self._repost_up_to = await self.bot.store.last_flag_id()
        self.post_unposted.start()

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(FlagButton)
        self.bot.message_consumers.remove(self)
        self.bot.deletion_consumers.remove(self.mark_deleted)
        self.post_unposted.cancel()

    def wants(self, message: discord.Message, config: GuildConfig, *, edited: bool) -> bool:
        """Messages that may be flagged (the messages cog admits only edits of the text by its author)."""
        return wants_flagging(config, message)

    async def handle(
        self, message: discord.Message, prediction: Prediction, config: GuildConfig, *, edited: bool
    ) -> None:
        await (self.follow_edit if edited else self.raise_flag)(message, prediction, config)

    async def raise_flag(self, message: discord.Message, prediction: Prediction, config: GuildConfig) -> None:
        """Store a flag when the guild's flag policy finds a reason, then post it."""
        reasons = flag_reasons(prediction, config.flag_on, config.flag_threshold)
        if reasons:
            await self._raise(message, prediction, reasons, config)

    async def follow_edit(self, message: discord.Message, prediction: Prediction, config: GuildConfig) -> None:
        """Check an edited message again: its flag is re-scored and its card updated in place (also when the edit
        no longer flags it: moderators still decide), and a message the edit makes flaggable is flagged once."""
        assert message.guild is not None and message.edited_at is not None
        store = self.bot.store
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
        pager = FlagPager(self.bot.store, interaction.user.id, interaction.guild_id, selected, head, total)
        embed = await flag_page(self.bot.store, interaction.guild_id, selected, head, 0)
        await interaction.response.send_message(embed=embed, view=pager, ephemeral=True)


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Moderation(bot))
