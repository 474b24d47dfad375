"""Mood history in the store and the recorder: additive upserts per guild, channel and hour, and per moderation head
(on SQLite and PostgreSQL, also from several processes at once), retention, batching that loses nothing, and the
migration that added the moderation scores to existing hours."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from alembic import command

from bot.history import HistoryRecorder
from bot.store import AsyncStore, migrate
from bot.store.engine import create_engine
from bot.store.history import HistoryKey, HistoryStore, MoodCounts, SignalCounts, hour_of
from bot.store.schema import mood_history, mood_history_signals
from classifier.inference.prediction import Prediction
from tests.support.helpers import sentiment_prediction

GUILD, GENERAL, RANDOM = 11, 21, 22
NOW = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)


def prediction(
    label: str, p_negative: float, p_positive: float, signals: dict[str, tuple[float, float]] | None = None
) -> Prediction:
    return sentiment_prediction(p_negative, 1 - p_negative - p_positive, p_positive, signals=signals)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'moodbot.sqlite3'}"
    return request.getfixturevalue("postgres").create_database()


@pytest_asyncio.fixture
async def store(url: str) -> AsyncIterator[AsyncStore]:
    opened = await AsyncStore.open(url)
    yield opened
    await opened.close()


async def test_upserts_add_to_the_stored_hour(store: AsyncStore) -> None:
    history = HistoryStore(store)
    hour = hour_of(NOW)
    key = HistoryKey(GUILD, GENERAL, hour)
    assert await history.add([(key, MoodCounts(2, 1, 0, 1.5, 0.1))]) == 1
    await history.add([(key, MoodCounts(1, 0, 3, 0.7, 2.4)), (HistoryKey(GUILD, RANDOM, hour), MoodCounts(0, 1, 0))])
    channels = await history.by_channel(GUILD, hour)
    assert channels[GENERAL] == MoodCounts(3, 1, 3, pytest.approx(2.2), pytest.approx(2.5))
    assert channels[RANDOM] == MoodCounts(0, 1, 0, 0.0, 0.0)
    assert await history.by_channel(GUILD, hour + 1) == {}
    assert list(await history.by_hour(GUILD, hour - 5)) == [hour]
    async with store.engine.connect() as db:  # one row per key, never one per message
        assert (await db.execute(sa.select(sa.func.count()).select_from(mood_history))).scalar_one() == 2


async def test_moderation_counts_add_per_head_where_they_exist(store: AsyncStore) -> None:
    history = HistoryStore(store)
    hour = hour_of(NOW)
    general, random = HistoryKey(GUILD, GENERAL, hour), HistoryKey(GUILD, RANDOM, hour)
    await history.add([(general, MoodCounts(1, 1, 0, 0.9, 0.1, harmful=1, signals={
        "offensive": SignalCounts(2, 1, 1.2), "hate": SignalCounts(2, 0, 0.3)}))])
    await history.add([(general, MoodCounts(0, 1, 0, 0.1, 0.1, signals={"offensive": SignalCounts(1, 1, 0.95)})),
                       (random, MoodCounts(0, 0, 2, 0.0, 1.8))])  # a path without moderation heads: no head rows
    channels = await history.by_channel(GUILD, hour)
    assert channels[GENERAL].harmful == 1 and channels[GENERAL].signals == {
        "offensive": SignalCounts(3, 2, pytest.approx(2.15)), "hate": SignalCounts(2, 0, pytest.approx(0.3))}
    assert channels[RANDOM].harmful == 0 and channels[RANDOM].signals == {}
    [(_, hourly)] = (await history.by_hour(GUILD, hour)).items()
    assert (hourly.total, hourly.harmful, hourly.signals["offensive"].flagged) == (5, 1, 2)
    assert hourly.signals["offensive"].mean_score == pytest.approx(2.15 / 3)
    async with store.engine.connect() as db:  # one row per key and head
        assert (await db.execute(sa.select(sa.func.count()).select_from(mood_history_signals))).scalar_one() == 2


def _shared_rows() -> list[tuple[HistoryKey, MoodCounts]]:
    """200 channel-hours; odd channels as read by a path without moderation heads."""
    heads = {"offensive": SignalCounts(1, 1, 0.75), "hate": SignalCounts(1, 0, 0.25)}
    return [(HistoryKey(GUILD, channel, hour_of(NOW)),
             MoodCounts(1, 2, 3, 0.5, 0.25, 1, heads) if channel % 2 == 0 else MoodCounts(0, 0, 1, 0.0, 1.0))
            for channel in range(200)]


def _flush_from_a_process(url: str, reverse: bool) -> None:
    """(a child process) 25 flushes of the shared rows, as one shard process's recorder does."""

    async def flushes() -> None:
        store = await AsyncStore.open(url)
        try:
            history, rows = HistoryStore(store), _shared_rows()
            for _ in range(25):
                await history.add(rows[::-1] if reverse else rows)
        finally:
            await store.close()

    asyncio.run(flushes())


async def test_processes_adding_to_one_hour_lose_no_increment(url: str) -> None:
    """Four OS processes (as four shard processes) flush into the same rows at once, half of them listing the rows
    the other way round: the store writes them in key order, so the transactions lock shared rows in one order
    (unsorted, PostgreSQL detected a deadlock here in 3 runs of 3)."""
    await (await AsyncStore.open(url)).close()  # migrated once here, not by four processes racing
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        await asyncio.gather(*(
            asyncio.wrap_future(pool.submit(_flush_from_a_process, url, index % 2 == 1)) for index in range(4)
        ))
    store = await AsyncStore.open(url)
    try:
        totals = await HistoryStore(store).by_channel(GUILD, hour_of(NOW))
    finally:
        await store.close()
    assert len(totals) == 200
    assert totals[0] == MoodCounts(100, 200, 300, pytest.approx(50.0), pytest.approx(25.0), 100, {
        "offensive": SignalCounts(100, 100, pytest.approx(75.0)), "hate": SignalCounts(100, 0, pytest.approx(25.0))})
    assert totals[1] == MoodCounts(0, 0, 100, 0.0, pytest.approx(100.0))
    assert all(totals[channel] == totals[channel % 2] for channel in totals)


async def test_prune_drops_hours_past_retention(store: AsyncStore) -> None:
    history = HistoryStore(store)
    recorder = HistoryRecorder(history, retention_days=30)
    old, kept = NOW - dt.timedelta(days=30, hours=1), NOW - dt.timedelta(days=29)
    offensive = {"offensive": SignalCounts(1, 0, 0.1)}
    await history.add([(HistoryKey(GUILD, GENERAL, hour_of(old)), MoodCounts(1, 0, 0, signals=offensive)),
                       (HistoryKey(GUILD, GENERAL, hour_of(kept)), MoodCounts(0, 1, 0, signals=offensive))])
    assert await recorder.prune(NOW) == 2  # the old hour and its head's row
    assert list(await history.by_hour(GUILD, 0)) == [hour_of(kept)]
    async with store.engine.connect() as db:
        assert (await db.execute(sa.select(mood_history_signals.c.hour))).scalars().all() == [hour_of(kept)]


async def test_recorder_writes_one_row_per_channel_hour(store: AsyncStore) -> None:
    history = HistoryStore(store)
    recorder = HistoryRecorder(history, retention_days=365)
    for _ in range(10):
        recorder.record(GUILD, GENERAL, prediction("negative", 0.8, 0.1), NOW)
    recorder.record(GUILD, GENERAL, prediction("positive", 0.1, 0.8), NOW)
    recorder.record(GUILD, RANDOM, prediction("neutral", 0.2, 0.2), NOW + dt.timedelta(hours=1))
    assert recorder.pending == 2
    assert await recorder.flush() == 2 and recorder.pending == 0
    assert await recorder.flush() == 0  # nothing new: no write
    by_hour = await history.by_hour(GUILD, 0, channel_id=GENERAL)
    assert by_hour == {hour_of(NOW): MoodCounts(10, 0, 1, pytest.approx(8.1), pytest.approx(1.8))}
    assert (await history.by_hour(GUILD, 0))[hour_of(NOW) + 1] == MoodCounts(0, 1, 0, 0.2, 0.2)


async def test_recorder_counts_each_heads_scores_and_threshold_where_the_path_has_it(store: AsyncStore) -> None:
    history = HistoryStore(store)
    recorder = HistoryRecorder(history, retention_days=365)
    heads = {"offensive": 0.8, "hate": 0.7}  # each head's own flag threshold
    for offensive, hate in ((0.95, 0.75), (0.8, 0.1), (0.2, 0.1)):  # both, offensive at its threshold, none
        recorder.record(GUILD, GENERAL, prediction("negative", 0.6, 0.1, {
            "offensive": (offensive, heads["offensive"]), "hate": (hate, heads["hate"])}), NOW)
    recorder.record(GUILD, GENERAL, prediction("positive", 0.05, 0.9), NOW)  # a path without moderation heads
    await recorder.flush()
    general = (await history.by_channel(GUILD, 0))[GENERAL]
    assert (general.total, general.harmful) == (4, 2)  # a message two heads flag is one harmful message
    assert general.signals == {"offensive": SignalCounts(3, 2, pytest.approx(1.95)),
                               "hate": SignalCounts(3, 1, pytest.approx(0.95))}


async def test_existing_hours_keep_their_counts_through_the_migration(url: str) -> None:
    """A database at revision 0006 with history rows: migrating adds the moderation columns without losing them."""
    engine = create_engine(url)
    try:
        async with engine.begin() as db:
            await db.run_sync(lambda sync: command.upgrade(migrate._config(sync), "0006"))
            await db.execute(sa.text(
                "INSERT INTO mood_history (guild_id, channel_id, hour, negative, neutral, positive, sum_p_negative, "
                "sum_p_positive) VALUES (:guild, :channel, :hour, 2, 1, 0, 1.5, 0.1)"
            ), {"guild": GUILD, "channel": GENERAL, "hour": hour_of(NOW)})
    finally:
        await engine.dispose()
    store = await AsyncStore.open(url)
    try:
        history = HistoryStore(store)
        await history.add([(HistoryKey(GUILD, GENERAL, hour_of(NOW)), MoodCounts(0, 0, 1, 0.0, 0.9, 1, {
            "threat": SignalCounts(1, 1, 0.99)}))])
        assert (await history.by_channel(GUILD, 0))[GENERAL] == MoodCounts(
            2, 1, 1, pytest.approx(1.5), pytest.approx(1.0), 1, {"threat": SignalCounts(1, 1, pytest.approx(0.99))})
    finally:
        await store.close()


async def test_a_failed_flush_keeps_its_counts_for_the_next(store: AsyncStore) -> None:
    history = HistoryStore(store)
    recorder = HistoryRecorder(history, retention_days=365)
    recorder.record(GUILD, GENERAL, prediction("negative", 0.9, 0.05), NOW)
    async with store.engine.begin() as db:  # the table is gone: the write fails for real
        await db.run_sync(lambda sync: mood_history.drop(sync))
    assert await recorder.flush() == 0 and recorder.pending == 1
    recorder.record(GUILD, GENERAL, prediction("negative", 0.7, 0.1), NOW)
    async with store.engine.begin() as db:
        await db.run_sync(lambda sync: mood_history.create(sync))
    assert await recorder.flush() == 1
    assert (await history.by_channel(GUILD, 0))[GENERAL] == MoodCounts(2, 0, 0, pytest.approx(1.6), pytest.approx(0.15))


async def test_close_writes_what_is_left(store: AsyncStore) -> None:
    recorder = HistoryRecorder(HistoryStore(store), retention_days=365, flush_seconds=3600)
    recorder.start()
    recorder.record(GUILD, GENERAL, prediction("positive", 0.05, 0.9), NOW)
    await recorder.close()
    assert (await HistoryStore(store).by_channel(GUILD, 0))[GENERAL].positive == 1
