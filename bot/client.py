"""The Discord client: a ``commands.Bot`` that owns the store and the classification worker; with shard settings,
an ``AutoShardedBot`` that runs the configured shards of several processes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import discord
from discord import app_commands
from discord.ext import commands

from bot.admission import MessageAdmission, MessageDeletion
from bot.command_sync import sync_if_changed
from bot.identify import IdentifyGate
from bot.loop_lag import LoopLagMonitor
from bot.settings import Settings
from bot.sharding import ShardConfig
from bot.store import AsyncStore, GuildConfig
from bot.ui import send_ephemeral
from classifier.inference.prediction import Prediction
from classifier.inference.router import RoutedWorker
from classifier.inference.worker import ClassificationError, WorkerClosedError

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0


class MessageConsumer(Protocol):
    """A cog that acts on classified messages (flags, live reactions, mood history). The messages cog asks each one
    whether it wants a message before classifying it, so a message nobody wants costs no model time, and hands the
    prediction to those that said yes, with the guild's settings it was asked with."""

    def wants(self, message: discord.Message, config: GuildConfig, *, edited: bool) -> bool:
        """Whether this consumer acts on ``message`` (posted, or with ``edited``, as its author edited it)."""
        ...

    async def handle(
        self, message: discord.Message, prediction: Prediction, config: GuildConfig, *, edited: bool
    ) -> None:
        """Act on a message it wanted."""
        ...


#: ``consumer(deletion)``: acts on messages that were deleted.
DeletionConsumer = Callable[[MessageDeletion], Awaitable[None]]

EXTENSIONS = (
    "bot.cogs.messages",
    "bot.cogs.history",
    "bot.cogs.moderation",
    "bot.cogs.live",
    "bot.cogs.sentiment",
    "bot.cogs.mood",
    "bot.cogs.config",
    "bot.cogs.privacy",
)


def bot_intents(message_content: bool = True) -> discord.Intents:
    """Guilds, guild messages and reactions; message content unless Discord refused it."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = message_content
    return intents


class MoodTree(app_commands.CommandTree["MoodBot"]):
    """Turns every app-command failure into a short private answer; unexpected ones are logged."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, app_commands.MissingPermissions):
            needed = ", ".join(p.replace("_", " ").title() for p in cause.missing_permissions)
            message = f"You need the {needed} permission to use this."
        elif isinstance(cause, app_commands.CommandOnCooldown):
            message = f"Slow down: try again in {cause.retry_after:.0f} s."
        elif isinstance(cause, app_commands.NoPrivateMessage):
            message = "This command only works in a server."
        elif isinstance(cause, ClassificationError):
            log.warning(
                "classification failed for /%s: %s", interaction.command and interaction.command.qualified_name, cause
            )
            message = "Sorry, the sentiment model failed on that text. Please try again later."
        elif isinstance(cause, WorkerClosedError):
            message = "The bot is shutting down; please try again in a moment."
        elif isinstance(cause, app_commands.CheckFailure):
            message = "You can't use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("unexpected error in /%s", command, exc_info=cause)
            message = "Something went wrong on our side; it has been logged."
        try:
            await send_ephemeral(interaction, message)
        except discord.HTTPException as http_error:
            log.warning("could not report an error to the user: %s", http_error)


class MoodBot(commands.Bot):
    """Loads the cogs and syncs app commands when they changed; on close, lets admitted messages finish (no flag is
    lost) for up to ``DRAIN_SECONDS``.

    Messages go through :attr:`admission` (a bounded backlog served by ``settings.message_concurrency`` handlers,
    started by the messages cog), and :attr:`loop_lag` measures the event loop from the end of start-up on.
    """

    def __init__(
        self,
        settings: Settings,
        store: AsyncStore,
        worker: RoutedWorker,
        *,
        message_content: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(message_content),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=MoodTree,
            help_command=None,
            **options,
        )
        self.settings = settings
        self.shard_config = settings.shards or ShardConfig()
        self.store = store
        self.worker = worker
        self.message_content = message_content
        self.message_consumers: list[MessageConsumer] = []
        self.deletion_consumers: list[DeletionConsumer] = []
        self.accepting_messages = True
        self.admission = MessageAdmission(concurrency=settings.message_concurrency, backlog=settings.message_backlog)
        self.loop_lag = LoopLagMonitor()

    async def on_message(self, message: discord.Message, /) -> None:
        """Nothing: moodbot has no prefix commands, so a message costs no command parsing (the cogs listen)."""

    async def close(self) -> None:
        self.accepting_messages = False
        left = await self.admission.drain(DRAIN_SECONDS)
        if left:
            log.warning("closing with %d messages still being handled", left)
        log.info("messages: %s", self.admission.stats)
        await self.loop_lag.stop()
        await super().close()

    def owns_guild(self, guild_id: int) -> bool:
        """Whether this process runs the shard of the guild, and so does its per-guild jobs."""
        return self.shard_config.owns(guild_id)

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        assert self.application_id is not None  # known once logged in, before this hook
        synced = await sync_if_changed(self.tree, self.store, self.application_id)
        if synced is not None:
            log.info("loaded %d extensions, synced %d application commands", len(EXTENSIONS), synced)
        self.loop_lag.start()

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("connected as %s (id %s) to %d guilds", self.user, self.user.id, len(self.guilds))


class ShardedMoodBot(MoodBot, commands.AutoShardedBot):
    """:class:`MoodBot` on the shards of ``settings.shards``: Discord sends it the events of those shards' guilds only.

    Logins take turns across processes (:class:`~bot.identify.IdentifyGate`: a Redis lock per rate-limit bucket
    when the cache URL names a Redis).
    """

    def __init__(self, settings: Settings, store: AsyncStore, worker: RoutedWorker, **options: Any) -> None:
        shards = settings.shards or ShardConfig()
        ids = list(shards.ids) if shards.ids is not None else None
        super().__init__(settings, store, worker, shard_count=shards.count, shard_ids=ids, **options)
        self.identify_gate = IdentifyGate(
            self._max_concurrency, settings.worker.cache_url, timeout_s=settings.worker.cache_timeout_s
        )

    async def _max_concurrency(self) -> int:
        try:
            return (await self.fetch_session_start_limits()).max_concurrency
        except discord.DiscordException as error:
            log.warning("could not read the session start limit (%s): identifying one shard at a time", error)
            return 1

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.identify_gate.wait(shard_id or 0, initial)

    async def close(self) -> None:
        await super().close()
        await self.identify_gate.aclose()
