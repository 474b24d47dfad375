"""``moodbot run`` with a token: load the model, open the store, start the worker, run the bot, close it all."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

import discord

from bot.client import MoodBot, ShardedMoodBot
from bot.endpoints import configure_endpoints
from bot.settings import Settings
from bot.store import AsyncStore
from classifier.inference.router import Paths, RoutedWorker

if TYPE_CHECKING:
    from bot.dashboard.app import DashboardServer

log = logging.getLogger(__name__)


async def start_dashboard(settings: Settings, store: AsyncStore, client: discord.Client) -> DashboardServer | None:
    """The embedded dashboard, when ``MOODBOT_DASHBOARD_PORT`` is set (imported only then)."""
    if settings.dashboard.port is None:
        return None
    from bot.dashboard.app import DashboardServer

    dashboard = DashboardServer(settings, store, client)
    await dashboard.start()
    return dashboard


class BotService:
    """The bot with its store and worker; :meth:`run` serves until ``stop`` is set or the connection ends for good."""

    def __init__(self, settings: Settings, paths: Paths, **bot_options: Any) -> None:
        self.settings = settings
        self.paths = paths
        self.bot_options = bot_options  # extra discord.Client options, e.g. guild_ready_timeout
        self.bot: MoodBot | None = None
        self.dashboard: DashboardServer | None = None  # with MOODBOT_DASHBOARD_PORT

    async def run(self, stop: asyncio.Event) -> None:
        """Serve; without the message-content intent (gateway close 4014), reconnect without it and keep serving."""
        if not self.settings.discord_token:
            raise ValueError("DISCORD_TOKEN is not set")
        configure_endpoints(self.settings.discord_api_base, self.settings.discord_gateway_url)
        store = await AsyncStore.open(
            self.settings.database, self.settings.flag_threshold, self.settings.database_pool_size
        )
        worker = RoutedWorker.configured(self.paths, self.settings.worker)
        await worker.start()
        try:
            message_content = True
            bot_class = MoodBot if self.settings.shards is None else ShardedMoodBot
            if self.settings.shards is not None:
                log.info("running %s", self.settings.shards.describe())
            while not stop.is_set():
                self.bot = bot_class(self.settings, store, worker, message_content=message_content, **self.bot_options)
                try:
                    await self._run_bot(self.bot, stop)
                    return
                except discord.PrivilegedIntentsRequired:
                    if not message_content:
                        raise
                    log.warning(
                        "Discord refused the Message Content intent: enable it for this bot in the developer portal. "
                        "Reconnecting without it; auto-flagging, live mode and /mood see no message text until then"
                    )
                    message_content = False
        finally:
            await worker.close()
            await store.close()
            log.info("worker totals: %s", worker.stats)

    async def _run_bot(self, bot: MoodBot, stop: asyncio.Event) -> None:
        assert self.settings.discord_token is not None
        async with bot:
            connection = asyncio.create_task(bot.start(self.settings.discord_token), name="moodbot-discord")
            stopping = asyncio.create_task(stop.wait(), name="moodbot-stop")
            self.dashboard = await start_dashboard(self.settings, bot.store, bot)
            try:
                await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if self.dashboard is not None:
                    await self.dashboard.stop()
                if not connection.done():
                    log.info("shutting down")
                    await bot.close()
            await connection


def run_bot(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; 0 on a clean stop, 1 when Discord rejects the token."""
    paths = Paths.load(settings.classifier)
    paths.warm_up()
    try:
        return asyncio.run(_serve(settings, paths))
    finally:
        paths.close()


async def _serve(settings: Settings, paths: Paths) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await BotService(settings, paths).run(stop)
    except discord.LoginFailure:
        log.error("Discord rejected the token (DISCORD_TOKEN): check it in the developer portal")
        return 1
    except discord.PrivilegedIntentsRequired:
        log.error("Discord requires privileged intents this bot has not been granted")
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0
