"""Fixtures for the bot's end-to-end tests: the bot's settings and SQLite file, and the real bot (``BotService``,
the code path of ``moodbot run``) started and stopped around each test. ``fake_discord``, ``seeded_guild`` and
``shipped_classifier`` (the bundled encoder with the shipped head) come from the root conftest."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.runner import BotService
from bot.settings import Settings
from bot.store import Store
from classifier.config import ClassifierConfig, WorkerConfig
from classifier.inference.classifier import Classifier
from tests.support.bot import running_bot
from tests.support.fake_discord import FakeDiscordServer, Seed
from tests.support.helpers import TOKEN


@pytest.fixture
def settings(tmp_path: Path, fake_discord: FakeDiscordServer, restore_discord_endpoints: None) -> Settings:
    return Settings(
        discord_token=TOKEN, data_dir=tmp_path / "var",
        classifier=ClassifierConfig(cache_dir=tmp_path / "var" / "cache", device="cpu"),
        worker=WorkerConfig(max_wait_ms=2.0),
        discord_api_base=fake_discord.api_base, discord_gateway_url=fake_discord.gateway_url,
    )


@pytest.fixture
def configure(settings: Settings, seeded_guild: Seed) -> Callable[..., None]:
    """Write guild settings straight into the bot's database (before it starts)."""

    def apply(**values: object) -> None:
        with Store.open_sync(settings.database_path) as store:
            store.update_guild(seeded_guild.guild_id, **values)

    return apply


@pytest.fixture
def open_store(settings: Settings) -> Iterator[Callable[[], Store]]:
    """Open the bot's database file read-side, as a second connection (WAL allows it while the bot runs)."""
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(Store.open_sync(settings.database_path))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def start_bot(settings: Settings, shipped_classifier: Classifier) -> Callable[..., AsyncIterator[BotService]]:
    """``async with start_bot() as service:`` runs the bot; ``model=`` another classifier, settings overrides as
    keywords. The model is loaded and run once first, as ``moodbot run`` does before it connects, so that no test's
    first message waits for the model to load."""

    def start(model: Classifier | None = None, **overrides: object):
        classifier = model or shipped_classifier
        classifier.warm_up()
        return running_bot(replace(settings, **overrides), classifier)

    return start


@pytest.fixture(autouse=True)
def no_unhandled_exceptions(caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose bot logged a crash (discord.py logs handler exceptions instead of raising them).

    ``@pytest.mark.expected_errors("classifier.inference.worker")``: a test that injects a fault names the loggers it
    expects.
    """
    yield
    expected = tuple(name for mark in request.node.iter_markers("expected_errors") for name in mark.args)
    records = caplog.get_records("setup") + caplog.get_records("call")
    watched = ("discord", "bot", "classifier", "cache")
    crashes = [r for r in records if r.levelno >= logging.ERROR and r.name.startswith(watched)
               and not (expected and r.name.startswith(expected))
               and (r.exc_info or "Ignoring exception" in r.getMessage())]
    assert not crashes, "\n".join(f"{r.name}: {r.getMessage()}" for r in crashes)
