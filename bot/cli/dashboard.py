"""``moodbot dashboard``: the web dashboard as its own process over the shared database (the scaled deployment).

It needs no gateway connection: it logs in to Discord's REST API with the bot token and reads members, roles and
channels from there at every request, and edits mod-log cards through it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from bot.settings import Settings

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser(
        "dashboard",
        help="serve the web dashboard (MOODBOT_DASHBOARD_PORT, DISCORD_CLIENT_SECRET) over the bot's database",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.discord_token:
        raise ValueError("DISCORD_TOKEN is not set (the dashboard talks to Discord as the bot)")
    if settings.dashboard.port is None:
        raise ValueError("MOODBOT_DASHBOARD_PORT is not set")
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    import discord

    from bot.dashboard.app import DashboardServer
    from bot.endpoints import configure_endpoints
    from bot.store import AsyncStore

    assert settings.discord_token is not None
    configure_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    store = await AsyncStore.open(settings.database, settings.flag_threshold, settings.database_pool_size)
    client = discord.Client(intents=discord.Intents.none(), allowed_mentions=discord.AllowedMentions.none())
    try:
        try:
            await client.login(settings.discord_token)
        except discord.LoginFailure:
            log.error("Discord rejected the token (DISCORD_TOKEN): check it in the developer portal")
            return 1
        server = DashboardServer(settings, store, client)
        await server.start()
        await stop.wait()
        await server.stop()
    finally:
        await client.close()
        await store.close()
    return 0
