"""The session cookie key: unless ``MOODBOT_DASHBOARD_SESSION_KEY`` is set, one key made once and kept in the
database, so that dashboard processes over one database accept each other's cookies and a restart keeps the login.
Real dashboards (aiohttp servers over the bot's SQLite file, Discord over REST from the fake) and an aiohttp client
that logs in through the fake Discord's OAuth."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import aiohttp
import discord
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from bot.dashboard.app import DashboardServer
from bot.endpoints import configure_endpoints
from bot.settings import DashboardSettings, Settings
from bot.store import AsyncStore
from bot.store.dashboard import SESSION_KEY_STATE, DashboardStore
from bot.store.schema import app_state
from tests.support.fake_discord.oauth import CLIENT_SECRET
from tests.support.helpers import TOKEN, free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def discord_client(settings: Settings) -> AsyncIterator[discord.Client]:
    """The REST-only login ``moodbot dashboard`` uses."""
    configure_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    client = discord.Client(intents=discord.Intents.none())
    await client.login(TOKEN)
    yield client
    await client.close()


@asynccontextmanager
async def dashboard(
    settings: Settings, store: AsyncStore, client: discord.Client, session_key: str | None = None
) -> AsyncIterator[str]:
    """A dashboard process's server on a free port; yields its base URL."""
    chosen = DashboardSettings(port=free_port(), client_secret=CLIENT_SECRET, session_key=session_key)
    server = DashboardServer(replace(settings, dashboard=chosen), store, client)
    await server.start()
    try:
        yield chosen.base_url
    finally:
        await server.stop()


def browser() -> aiohttp.ClientSession:
    """One cookie jar for every dashboard on 127.0.0.1 (cookies ignore ports), like a browser behind one address."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def picker(http: aiohttp.ClientSession, base: str) -> tuple[int, str]:
    """The server list without following redirects: 200 when logged in, 302 to the login otherwise."""
    async with http.get(f"{base}/", allow_redirects=False) as response:
        return response.status, await response.text()


async def log_in(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(f"{base}/") as response:  # through /login, the fake Discord and /oauth/callback
        assert response.status == 200 and response.url.path == "/", response.url


async def stored_key(store: AsyncStore) -> str | None:
    async with store.engine.connect() as db:
        query = sa.select(app_state.c.value).where(app_state.c.key == SESSION_KEY_STATE)
        return (await db.execute(query)).scalar_one_or_none()


async def test_dashboards_over_one_database_share_logins_and_a_restart_keeps_them(
    settings, fake_discord, seeded_guild, discord_client, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    store = await AsyncStore.open(settings.database_path)
    async with browser() as http:
        try:
            async with dashboard(settings, store, discord_client) as first, \
                    dashboard(settings, store, discord_client) as second:
                assert (await picker(http, second))[0] == 302  # not logged in yet
                await log_in(http, first)
                status, page = await picker(http, second)
                assert status == 200 and "Mood Test Guild" in page  # the other process read the first's cookie
        finally:
            await store.close()
        restarted = await AsyncStore.open(settings.database_path)
        try:
            async with dashboard(settings, restarted, discord_client) as after_restart:
                status, page = await picker(http, after_restart)
                key = await stored_key(restarted)
        finally:
            await restarted.close()
    assert status == 200 and "Mood Test Guild" in page
    assert key is not None and Fernet(key.encode())  # a valid Fernet key
    # made once, never shown (aiosqlite's debug lines print statement parameters: configure_logging silences them)
    shown = "\n".join(record.getMessage() for record in caplog.records if record.name != "aiosqlite")
    assert key not in shown and shown.count("made the dashboard's session key") == 1


async def test_the_environment_key_wins(settings, fake_discord, seeded_guild, discord_client) -> None:
    fake_discord.oauth.authorizing_user_id = seeded_guild.moderator_id
    configured = Fernet.generate_key().decode()
    store = await AsyncStore.open(settings.database_path)
    try:
        async with browser() as http, dashboard(settings, store, discord_client, session_key=configured) as keyed:
            await log_in(http, keyed)
            assert await stored_key(store) is None  # the configured key is used; none is made
            async with dashboard(settings, store, discord_client) as default:
                assert (await picker(http, default))[0] == 302  # another key: the cookie is not its session
            cookie = next(c for c in http.cookie_jar if c.key == "moodbot_session")
    finally:
        await store.close()
    assert Fernet(configured.encode()).decrypt(cookie.value.encode())  # sealed with the configured key


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_processes_asking_at_once_get_one_key(backend: str, tmp_path: Path, request) -> None:
    url = (f"sqlite:///{tmp_path / 'moodbot.sqlite3'}" if backend == "sqlite"
           else request.getfixturevalue("postgres").create_database())
    stores = [await AsyncStore.open(url) for _ in range(4)]
    try:
        keys = await asyncio.gather(*(DashboardStore(store).session_key() for store in stores))
        again = await DashboardStore(stores[0]).session_key()
    finally:
        for store in stores:
            await store.close()
    assert len(set(keys)) == 1 and again == keys[0]
