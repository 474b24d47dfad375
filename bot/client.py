"""The Discord client: a ``commands.Bot`` that owns the store and the classification worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.settings import Settings
from bot.store import AsyncStore
from classifier.prediction import Prediction
from classifier.worker import BatchingWorker, ClassificationError, WorkerClosedError

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
#: ``consumer(message, prediction, flag, live)``: acts on a classified message (``flag``/``live``: what it is eligible for).
MessageConsumer = Callable[[discord.Message, Prediction, bool, bool], Awaitable[None]]

EXTENSIONS = (
    "bot.cogs.messages",
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


async def send_ephemeral(interaction: discord.Interaction, content: str, **kwargs: object) -> None:
    """Answer ``interaction`` privately, whether or not it was already answered or deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, **kwargs)  # type: ignore[arg-type]
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)  # type: ignore[arg-type]


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
            log.warning("classification failed for /%s: %s", interaction.command and interaction.command.qualified_name, cause)
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
    """Loads the cogs and syncs app commands at start-up; on close, lets in-flight messages finish (flags are not dropped)."""

    def __init__(
        self, settings: Settings, store: AsyncStore, worker: BatchingWorker, *, message_content: bool = True, **options: Any
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
        self.store = store
        self.worker = worker
        self.message_content = message_content
        self.message_consumers: list[MessageConsumer] = []
        self.accepting_messages = True
        self._handling = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def handling_message(self) -> AsyncIterator[None]:
        """Mark a message as in flight until the block ends; :meth:`close` waits for these."""
        self._handling += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._handling -= 1
            if self._handling == 0:
                self._idle.set()

    async def close(self) -> None:
        self.accepting_messages = False
        try:
            await asyncio.wait_for(self._idle.wait(), DRAIN_SECONDS)
        except TimeoutError:
            log.warning("closing with %d messages still being handled", self._handling)
        await super().close()

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        synced = await self.tree.sync()
        log.info("loaded %d extensions, synced %d application commands", len(EXTENSIONS), len(synced))

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("connected as %s (id %s) to %d guilds", self.user, self.user.id, len(self.guilds))
