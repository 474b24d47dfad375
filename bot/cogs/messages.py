"""Classifies each eligible guild message once, and again when its text is edited, for the cogs that want it (flags,
live reactions, mood history: :class:`~bot.client.MessageConsumer`); deletions go to the cogs that keep state about
messages (flags)."""

from __future__ import annotations

import asyncio
import copy
import logging

import discord
from discord.ext import commands

from bot.admission import MessageDeletion, MessageEdit, Work
from bot.client import MoodBot
from bot.store import GuildConfig
from classifier.inference.prediction import Prediction
from classifier.inference.worker import ClassificationError, WorkerClosedError
from classifier.text import EmptyTextError

log = logging.getLogger(__name__)


def is_text_edit(payload: discord.RawMessageUpdateEvent) -> bool:
    """Whether an update may have changed the text that was checked: it carries text, its author edited it (Discord
    sets ``edited_timestamp`` for that, not when a link's embed resolves), and discord.py's cached copy, if it has
    one, says something else. Without a cached copy the store and the live reactions compare for themselves."""
    if "content" not in payload.data or payload.message.edited_at is None:
        return False
    cached = payload.cached_message
    return cached is None or cached.content != payload.message.content


class Messages(commands.Cog):
    """The one path that runs the model on messages: opted-out members and disabled channels are never classified.

    A message without text (a join, a pin, a poll, an attachment-only post) is skipped silently: empty content is
    no sign of a missing Message Content intent. Discord refuses a connection that asks for the intent without
    having it (close code 4014), so the runner knows for certain when it is missing, and warns there.

    Edits are admitted like new messages, with the same eligibility, and are not added to the mood history: the
    message was counted once, when it was posted.
    """

    def __init__(self, bot: MoodBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.admission.start(self.handle)

    def _admits(self, message: discord.Message) -> bool:
        return (
            message.guild is not None
            and not message.author.bot
            and message.webhook_id is None
            and self.bot.accepting_messages
        )

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Admit the message (waiting while the backlog is full): the work itself runs in :meth:`handle`.

        A copy is admitted: discord.py updates its cached message in place when an edit arrives, and the text checked
        (and stored with its scores) must be the one posted; the edit follows as an item of its own.
        """
        if self._admits(message):
            await self.bot.admission.submit(copy.copy(message))

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """Admit an edit (raw: messages that discord.py has not cached count too) that may have changed the text."""
        if self._admits(payload.message) and is_text_edit(payload):
            await self.bot.admission.submit(MessageEdit(payload.message))

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self._deleted(payload.guild_id, payload.channel_id, {payload.message_id})

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self._deleted(payload.guild_id, payload.channel_id, payload.message_ids)

    async def _deleted(self, guild_id: int | None, channel_id: int, message_ids: set[int]) -> None:
        if guild_id is not None and self.bot.accepting_messages:
            await self.bot.admission.submit(MessageDeletion(guild_id, channel_id, frozenset(message_ids)))

    async def handle(self, item: Work) -> None:
        """One admitted item: a new message, an edit, or a deletion."""
        if isinstance(item, MessageDeletion):
            await asyncio.gather(*(consumer(item) for consumer in self.bot.deletion_consumers))
        elif isinstance(item, MessageEdit):
            await self._handle_edit(item.message)
        else:
            await self._hand_on(item, edited=False)

    async def _handle_edit(self, message: discord.Message) -> None:
        """Classify an edited message again (the embedding cache answers a text it read before) and hand it on."""
        prediction = await self._hand_on(message, edited=True)
        if prediction is not None:
            stats = self.bot.admission.stats
            if prediction.cached:
                stats.edits_cached += 1
            else:
                stats.edits_classified += 1

    async def _hand_on(self, message: discord.Message, *, edited: bool) -> Prediction | None:
        """Classify the message once if a consumer wants it and hand the prediction to those that do: never a message
        of a disabled channel or an opted-out member (settings and opt-outs come from the store's cache)."""
        assert message.guild is not None
        config = await self.bot.store.guild_config(message.guild.id)
        if message.channel.id in config.disabled_channels or await self.bot.store.is_opted_out(message.author.id):
            return None
        wanting = [c for c in self.bot.message_consumers if c.wants(message, config, edited=edited)]
        if not wanting:
            return None
        prediction = await self._classify(message, config)
        if prediction is not None:
            await asyncio.gather(*(consumer.handle(message, prediction, config, edited=edited) for consumer in wanting))
        return prediction

    async def _classify(self, message: discord.Message, config: GuildConfig) -> Prediction | None:
        if not message.content:
            return None
        try:
            return await self.bot.worker.classify(message.content, config.language)
        except EmptyTextError:
            return None
        except (ClassificationError, WorkerClosedError) as error:
            log.warning("message %s not classified: %s", message.id, error)
            return None


async def setup(bot: MoodBot) -> None:
    await bot.add_cog(Messages(bot))
