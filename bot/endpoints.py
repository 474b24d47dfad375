"""Point discord.py at Discord or at a Discord-compatible server (self-hosted, or a test fake)."""

from __future__ import annotations

import logging

import discord.gateway
import discord.http
import yarl

log = logging.getLogger(__name__)


def configure_endpoints(api_base: str, gateway_url: str) -> None:
    """Set the REST base URL and the gateway URL used by every client created afterwards."""
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    log.info("Discord endpoints: REST %s, gateway %s", discord.http.Route.BASE, gateway_url)
