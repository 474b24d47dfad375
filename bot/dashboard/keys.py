"""What the dashboard's handlers find on the application: the store, the Discord client and the login settings."""

from __future__ import annotations

from dataclasses import dataclass

import discord
from aiohttp import web

from bot.dashboard.urls import DiscordUrls
from bot.store import AsyncStore
from bot.store.dashboard import DashboardStore
from bot.store.history import HistoryStore


@dataclass(frozen=True)
class DiscordLogin:
    """The dashboard's OAuth2 client: its id (the bot's application id unless set), secret and public URL."""

    client: discord.Client
    urls: DiscordUrls
    base_url: str
    client_secret: str
    configured_client_id: int | None = None

    def client_id(self) -> int:
        client_id = self.configured_client_id or self.client.application_id
        if client_id is None:
            raise web.HTTPServiceUnavailable(text="The bot is still connecting to Discord; try again in a moment.")
        return client_id


@dataclass(frozen=True)
class Stores:
    main: AsyncStore
    history: HistoryStore
    dashboard: DashboardStore


CONFIG: web.AppKey[DiscordLogin] = web.AppKey("moodbot_login", DiscordLogin)
STORES: web.AppKey[Stores] = web.AppKey("moodbot_stores", Stores)
