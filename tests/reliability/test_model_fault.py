"""The model raises for one batch: exactly that batch's callers get a clear error, and the worker keeps serving.

No mocks: the real bundled encoder and shipped head, the real BatchingWorker, and the real bot
(``BotService``, the code path of ``moodbot run``) against the in-process fake Discord server. The
fault is injected at our own seam: a :class:`SentimentClassifier` subclass whose ``embed`` (the
one call the worker makes per batch, in its model thread) raises when the batch holds a marker text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import discord
import numpy as np
import pytest

from bot.cli_commands import load_classifier
from bot.settings import Settings
from bot.store import Store
from classifier.pipeline import SentimentClassifier
from classifier.worker import BatchingWorker, ClassificationError
from tests.bot.helpers import running_bot
from tests.fake_discord import FakeDiscordServer, seed_default
from tests.fake_discord.fixtures import fake_discord  # noqa: F401  (fixture)
from tests.load.harness import NEGATIVE, POSITIVE

pytestmark = pytest.mark.timeout(90)

MARKER = "zz-explode-zz"
WAIT = 30.0


class ExplodingClassifier(SentimentClassifier):
    """Raises inside the model call for any batch that contains ``MARKER``; counts the batches it saw."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if any(MARKER in text for text in texts):
            raise RuntimeError("injected model failure (CUDA out of memory, say)")
        return super().embed(texts)


@pytest.fixture(scope="module")
def exploding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExplodingClassifier]:
    root = tmp_path_factory.mktemp("model-fault")
    base = load_classifier(Settings(data_dir=root, cache_dir=root / "cache", device="cpu"))
    classifier = ExplodingClassifier(base.encoder, base.head, base.cache)
    yield classifier
    classifier.close()


async def test_worker_fails_only_the_bad_batch(exploding: ExplodingClassifier) -> None:
    async with BatchingWorker(exploding, max_batch=8, max_wait_ms=200) as worker:
        bad_batch = [f"{MARKER} {NEGATIVE[0]}", f"{POSITIVE[0]} w1", f"{POSITIVE[1]} w2", f"{NEGATIVE[1]} w3"]
        outcomes = await asyncio.gather(*(worker.classify(t) for t in bad_batch), return_exceptions=True)
        assert all(isinstance(o, ClassificationError) for o in outcomes), outcomes
        assert "the model failed on this message's batch: RuntimeError: injected model failure" in str(outcomes[0])

        good = await asyncio.gather(*(worker.classify(t) for t in (f"{POSITIVE[0]} w1", f"{NEGATIVE[1]} w3", f"{POSITIVE[2]} w4")))
        assert [p.label for p in good] == ["positive", "negative", "positive"]
        assert not any(p.cached for p in good)  # the failed batch left nothing half-written in the cache
        assert worker.stats.failed_batches == 1 and worker.stats.batches == 2
        # A failed text can be retried, and later batches keep being served.
        retried = await worker.classify(f"{POSITIVE[1]} w2")
        assert retried.label == "positive"


async def test_bot_replies_with_a_clear_error_and_keeps_serving(
    fake_discord: FakeDiscordServer, exploding: ExplodingClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    world = seed_default(fake_discord)
    settings = Settings(discord_token="fake-token", data_dir=tmp_path / "var", cache_dir=tmp_path / "var" / "cache", device="cpu",
                        discord_api_base=fake_discord.api_base, discord_gateway_url=fake_discord.gateway_url, max_wait_ms=2.0)
    with Store.open_sync(settings.database_path) as store:
        store.update_guild(world.guild_id, modlog_channel_id=world.mod_log_id, flag_threshold=0.6)

    async with running_bot(settings, exploding) as service:
        # /sentiment on a text whose batch fails: a clear, private error reply.
        failed = await fake_discord.send_slash_command(world.guild_id, world.general_id, world.member_id, "sentiment", {"text": f"{MARKER} hello"})
        reply = await failed.response(WAIT)
        assert reply.ephemeral and "the sentiment model failed" in reply.data["content"].lower(), reply.data
        # An auto-flag candidate in a failing batch is skipped with a warning, not a crash...
        await fake_discord.send_message(world.general_id, world.member_id, f"{MARKER} {NEGATIVE[2]}")
        assert service.bot is not None
        async with asyncio.timeout(WAIT):
            while service.bot.worker.stats.failed_batches < 2:
                await asyncio.sleep(0.02)
        # ...and the next texts are served normally: a /sentiment answer and a flag for a negative message.
        ok = await fake_discord.send_slash_command(world.guild_id, world.general_id, world.moderator_id, "sentiment", {"text": POSITIVE[3]})
        answer = await ok.response(WAIT)
        assert answer.ephemeral and "positive" in answer.data["content"].lower(), answer.data
        bad = await fake_discord.send_message(world.general_id, world.member_id, NEGATIVE[3])
        card = await fake_discord.wait_for_message(world.mod_log_id, timeout=WAIT, author_id=fake_discord.bot_user.id)
        assert str(bad.id) in str(card.data["embeds"])
        assert service.bot.worker.stats.failed_batches == 2
    with Store.open_sync(settings.database_path) as store:
        flags, total = store.flags(world.guild_id)
    assert total == 1 and flags[0].message_id == bad.id
    unexpected = [r for r in caplog.records if r.levelname == "ERROR" and r.name != "classifier.worker"]
    assert not unexpected, [r.getMessage() for r in unexpected]  # e.g. discord.py's "Ignoring exception in ..."
    assert any("not classified: the model failed" in r.getMessage() for r in caplog.records)
