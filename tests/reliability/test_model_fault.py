"""The model raises for one batch: exactly that batch's callers get a clear error, and the worker keeps serving.

No mocks: the real bundled encoder and shipped head, the real BatchingWorker, and the real bot
(``BotService``, the code path of ``moodbot run``) against the in-process fake Discord server. The
fault is injected at our own seam: :class:`~tests.support.classifier.InstrumentedClassifier`, whose ``embed``
(the one call the worker makes per batch, in its model thread) raises when the batch holds a marker text.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.store import Store
from classifier.config import ClassifierConfig, WorkerConfig
from classifier.inference.classifier import Classifier
from classifier.inference.worker import BatchingWorker, ClassificationError
from tests.support.bot import running_bot
from tests.support.classifier import InstrumentedClassifier
from tests.support.fake_discord import FakeDiscordServer, Seed
from tests.support.helpers import CLEAR_NEGATIVE, CLEAR_POSITIVE, TOKEN, poll_until

pytestmark = pytest.mark.timeout(90)

MARKER = "zz-explode-zz"
WAIT = 30.0


@pytest.fixture(scope="module")
def exploding(shipped_classifier: Classifier) -> InstrumentedClassifier:
    """The shipped classifier (its encoder, head and cache) failing any batch that holds ``MARKER``."""
    shipped = shipped_classifier
    return InstrumentedClassifier(shipped.encoder, shipped.heads, shipped.cache, fail_marker=MARKER)


async def test_worker_fails_only_the_bad_batch(exploding: InstrumentedClassifier) -> None:
    async with BatchingWorker(exploding, max_batch=8, max_wait_ms=200) as worker:
        bad_batch = [
            f"{MARKER} {CLEAR_NEGATIVE[0]}",
            f"{CLEAR_POSITIVE[0]} w1",
            f"{CLEAR_POSITIVE[1]} w2",
            f"{CLEAR_NEGATIVE[1]} w3",
        ]
        outcomes = await asyncio.gather(*(worker.classify(t) for t in bad_batch), return_exceptions=True)
        assert all(isinstance(o, ClassificationError) for o in outcomes), outcomes
        assert "the model failed on this message's batch: RuntimeError: injected fault" in str(outcomes[0])

        good = await asyncio.gather(
            *(
                worker.classify(t)
                for t in (f"{CLEAR_POSITIVE[0]} w1", f"{CLEAR_NEGATIVE[1]} w3", f"{CLEAR_POSITIVE[2]} w4")
            )
        )
        assert [p.label for p in good] == ["positive", "negative", "positive"]
        assert not any(p.cached for p in good)  # the failed batch left nothing half-written in the cache
        assert worker.stats.failed_batches == 1 and worker.stats.batches == 2
        # A failed text can be retried, and later batches keep being served.
        retried = await worker.classify(f"{CLEAR_POSITIVE[1]} w2")
        assert retried.label == "positive"


async def test_bot_replies_with_a_clear_error_and_keeps_serving(
    fake_discord: FakeDiscordServer, seeded_guild: Seed, exploding: InstrumentedClassifier, tmp_path: Path,
    restore_discord_endpoints: None, caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(
        discord_token=TOKEN,
        data_dir=tmp_path / "var",
        classifier=ClassifierConfig(cache_dir=tmp_path / "var" / "cache", device="cpu"),
        worker=WorkerConfig(max_wait_ms=2.0),
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
    )
    with Store.open_sync(settings.database_path) as store:
        store.update_guild(seeded_guild.guild_id, modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=0.6)

    async with running_bot(settings, exploding) as service:
        # /sentiment on a text whose batch fails: a clear, private error reply.
        failed = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "sentiment",
            {"text": f"{MARKER} hello"},
        )
        reply = await failed.response(WAIT)
        assert reply.ephemeral and "the sentiment model failed" in reply.data["content"].lower(), reply.data
        # An auto-flag candidate in a failing batch is skipped with a warning, not a crash...
        await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.member_id, f"{MARKER} {CLEAR_NEGATIVE[2]}"
        )
        assert service.bot is not None
        await poll_until(
            lambda: service.bot.worker.stats.failed_batches >= 2, WAIT, "the flag candidate's batch to fail"
        )
        # ...and the next texts are served normally: a /sentiment answer and a flag for a negative message.
        ok = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.moderator_id,
            "sentiment",
            {"text": CLEAR_POSITIVE[3]},
        )
        answer = await ok.response(WAIT)
        assert answer.ephemeral and "positive" in answer.data["content"].lower(), answer.data
        bad = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, CLEAR_NEGATIVE[3])
        card = await fake_discord.wait_for_message(
            seeded_guild.mod_log_id, timeout=WAIT, author_id=fake_discord.bot_user.id
        )
        assert str(bad.id) in str(card.data["embeds"])
        assert service.bot.worker.stats.failed_batches == 2
    with Store.open_sync(settings.database_path) as store:
        flags, total = store.flags(seeded_guild.guild_id)
    assert total == 1 and flags[0].message_id == bad.id
    unexpected = [r for r in caplog.records if r.levelname == "ERROR" and r.name != "classifier.inference.worker"]
    assert not unexpected, [r.getMessage() for r in unexpected]  # e.g. discord.py's "Ignoring exception in ..."
    assert any("not classified: the model failed" in r.getMessage() for r in caplog.records)
