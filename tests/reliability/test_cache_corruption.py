"""Garbage bytes over the embedding cache's database_path: the bot starts, warns once, rebuilds the cache and serves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cache import EmbeddingCache
from tests.support.helpers import poll_until_blocking
from tests.support.load.harness import FakeServer, make_text, read_flags

pytestmark = pytest.mark.timeout(120)


def test_corrupt_cache_db_is_rebuilt(
    fake_server: FakeServer, make_bot, database_path: Path, bot_dirs: tuple[Path, Path]
) -> None:
    cache_dir = bot_dirs[1]
    cache_dir.mkdir(parents=True)
    (cache_dir / "cache.db").write_bytes(b"this is not an SQLite database_path\x00" + os.urandom(8192))

    bot = make_bot()  # returns once the bot has classified a probe message: it serves
    warnings = [line for line in bot.log_text().splitlines() if "WARNING" in line and "cache" in line.lower()]
    assert len(warnings) == 1 and "unusable" in warnings[0], warnings

    sent = fake_server.send(fake_server.load_channels[0], fake_server.users[0], make_text(1, True, "C"))
    poll_until_blocking(
        lambda: any(
            r["message_id"] == int(sent["data"]["id"]) and r["modlog_message_id"] for r in read_flags(database_path)
        ),
        60,
        "the negative message to be flagged and posted",
    )
    assert bot.stop() == 0
    assert not bot.problems(), bot.problems()

    aside = list(cache_dir.parent.glob("cache.corrupt-*"))
    assert len(aside) == 1 and (aside[0] / "cache.db").read_bytes().startswith(b"this is not an SQLite database_path")
    with EmbeddingCache(
        cache_dir, namespace=""
    ) as cache:  # the rebuilt cache is a working database_path with the new vectors
        assert cache.stats().entries >= 2  # probe + message
