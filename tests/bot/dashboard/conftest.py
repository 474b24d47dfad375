"""Fixtures for the dashboard: one headless Chromium per module, and the bot with its embedded dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bot.runner import BotService
from bot.settings import DashboardSettings, Settings
from tests.support.browser import Chromium
from tests.support.fake_discord.oauth import CLIENT_SECRET
from tests.support.helpers import free_port


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    browser = Chromium()
    yield browser
    browser.close()


@pytest.fixture
def dashboard_settings(settings: Settings) -> Settings:
    """The bot's settings with the dashboard on a free loopback port (OAuth against the fake Discord)."""
    dashboard = DashboardSettings(
        port=free_port(), client_secret=CLIENT_SECRET, session_key=Fernet.generate_key().decode()
    )
    return replace(settings, dashboard=dashboard)


@pytest.fixture
def start_dashboard(
    start_bot: Callable[..., Any], dashboard_settings: Settings
) -> Callable[..., AsyncIterator[BotService]]:
    """``async with start_dashboard() as service:`` the bot with its dashboard at ``service.dashboard``."""

    def start(**overrides: object) -> AsyncIterator[BotService]:
        return start_bot(dashboard=dashboard_settings.dashboard, **overrides)

    return start
