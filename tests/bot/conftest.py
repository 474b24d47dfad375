"""Fixtures for the bot's end-to-end tests: the real bundled encoder + shipped head, the fake Discord server,
and the real bot (``BotService``, the code path of ``moodbot run``) started and stopped around each test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import discord
import pytest

from bot.cli_commands import load_classifier
from bot.runner import BotService
from bot.settings import Settings
from bot.store import Store
from classifier.pipeline import SentimentClassifier
from tests.bot.helpers import running_bot
from tests.fake_discord import FakeDiscordServer, Seed, seed_default
from tests.fake_discord.fixtures import fake_discord  # noqa: F401  (fixture)

TOKEN = "MTIzNDU2Nzg5.fake-bot-token.dont-log-me-6f1d2c"


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentimentClassifier]:
    """The bundled all-MiniLM-L6-v2 with the shipped head, loaded once per session, over a tmp cache."""
    root = tmp_path_factory.mktemp("classifier")
    loaded = load_classifier(Settings(data_dir=root, cache_dir=root / "cache", device="cpu"))
    yield loaded
    loaded.close()


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restore discord.py's endpoints after the test (the bot sets them from its settings)."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


@pytest.fixture
def settings(tmp_path: Path, fake_discord: FakeDiscordServer, endpoints: None) -> Settings:  # noqa: F811
    return Settings(
        discord_token=TOKEN, data_dir=tmp_path / "var", cache_dir=tmp_path / "var" / "cache", device="cpu",
        discord_api_base=fake_discord.api_base, discord_gateway_url=fake_discord.gateway_url, max_wait_ms=2.0,
    )


@pytest.fixture
def world(fake_discord: FakeDiscordServer) -> Seed:  # noqa: F811
    """One guild: #general, #random, #mod-log, a moderator (Manage Messages + Manage Server) and a member."""
    return seed_default(fake_discord)


@pytest.fixture
def configure(settings: Settings, world: Seed) -> Callable[..., None]:
    """Write guild settings straight into the bot's database (before it starts)."""

    def apply(**values: object) -> None:
        with Store.open_sync(settings.database_path) as store:
            store.update_guild(world.guild_id, **values)

    return apply


@pytest.fixture
def database(settings: Settings) -> Callable[[], Store]:
    """Open the bot's database file read-side, as a second connection (WAL allows it while the bot runs)."""
    opened: list[Store] = []

    def open_store() -> Store:
        opened.append(Store.open_sync(settings.database_path))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def start_bot(settings: Settings, classifier: SentimentClassifier) -> Callable[..., AsyncIterator[BotService]]:
    """``async with start_bot() as service:`` runs the bot; ``model=`` another classifier, settings overrides as keywords."""

    def start(model: SentimentClassifier | None = None, **overrides: object):
        return running_bot(replace(settings, **overrides), model or classifier)

    return start


@pytest.fixture(autouse=True)
def no_unhandled_exceptions(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose bot logged a crash (discord.py logs handler exceptions instead of raising them)."""
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    crashes = [r for r in records if r.levelno >= logging.ERROR and r.name.startswith(("discord", "bot"))
               and (r.exc_info or "Ignoring exception" in r.getMessage())]
    assert not crashes, "\n".join(f"{r.name}: {r.getMessage()}" for r in crashes)
