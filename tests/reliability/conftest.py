"""Fixtures for the reliability tests: a fake Discord server and the real bot, each in its own process
(the in-process ``fake_discord`` of the root conftest serves ``test_model_fault``).

Every process started here is killed at teardown (SIGTERM, then SIGKILL), whatever the test did.
Logs stay in the test's tmp_path (``bot-N.log``, ``server/fake-server.log``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.load.harness import BotProcess, FakeServer, GuildSetup, prepare_store


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeServer]:
    """A fake Discord server subprocess with the default seed plus 10 ``load-N`` channels and a #probe channel."""
    server = FakeServer(tmp_path / "server", channels=10)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def bot_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(data dir, cache dir) of the bot under test; they survive restarts within a test."""
    return tmp_path / "bot" / "data", tmp_path / "bot" / "cache"


@pytest.fixture
def database_path(bot_dirs: tuple[Path, Path]) -> Path:
    """The bot's SQLite file (read it with :func:`tests.support.load.harness.read_flags`)."""
    return bot_dirs[0] / "moodbot.sqlite3"


@pytest.fixture
def make_bot(
    fake_server: FakeServer, bot_dirs: tuple[Path, Path], database_path: Path, tmp_path: Path
) -> Iterator[Callable[..., BotProcess]]:
    """``make_bot(setup=GuildSetup(...), start=True, **env)``: the store is prepared once, then each call runs a new
    bot process."""
    made: list[BotProcess] = []
    prepared = False

    def make(setup: GuildSetup | None = None, start: bool = True, **env: str) -> BotProcess:
        nonlocal prepared
        data_dir, cache_dir = bot_dirs
        if not prepared:
            live = [*fake_server.load_channels, fake_server.probe]
            setup = setup or GuildSetup(fake_server.mod_log, live_channels=live)
            prepare_store(database_path, fake_server.guild_id, setup)
            prepared = True
        bot = BotProcess(fake_server, data_dir, cache_dir, tmp_path / f"bot-{len(made) + 1}.log", extra_env=env)
        made.append(bot)
        return bot.start() if start else bot

    yield make
    for bot in made:
        bot.kill()
