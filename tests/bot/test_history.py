"""Mood history in the store and the recorder: additive upserts per guild, channel and hour (on SQLite and
PostgreSQL, also from several processes at once), retention, and batching that loses nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from bot.history import HistoryRecorder
from bot.store import AsyncStore
from bot.store.history import HistoryKey, HistoryStore, MoodCounts, hour_of
from bot.store.schema import mood_history
from classifier.inference.prediction import Prediction
from tests.support.helpers import sentiment_prediction

GUILD, GENERAL, RANDOM = 11, 21, 22
NOW = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)


def prediction(label: str, p_negative: float, p_positive: float) -> Prediction:
    return sentiment_prediction(p_negative, 1 - p_negative - p_positive, p_positive)


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


async def test_processes_adding_to_one_hour_lose_no_increment(url: str) -> None:
    """Four stores (four engines, as four shard processes) flush into the same rows at once."""
    stores = [await AsyncStore.open(url) for _ in range(4)]
    try:
        key = HistoryKey(GUILD, GENERAL, hour_of(NOW))
        other = HistoryKey(GUILD, RANDOM, hour_of(NOW))

        async def flushes(store: AsyncStore) -> None:
            history = HistoryStore(store)
            for _ in range(25):
                await history.add([(key, MoodCounts(1, 2, 3, 0.5, 0.25)), (other, MoodCounts(0, 0, 1, 0.0, 1.0))])

        await asyncio.gather(*(flushes(store) for store in stores))
        totals = await HistoryStore(stores[0]).by_channel(GUILD, key.hour)
    finally:
        for store in stores:
            await store.close()
    assert totals[GENERAL] == MoodCounts(100, 200, 300, pytest.approx(50.0), pytest.approx(25.0))
    assert totals[RANDOM] == MoodCounts(0, 0, 100, 0.0, pytest.approx(100.0))


async def test_prune_drops_hours_past_retention(store: AsyncStore) -> None:
    history = HistoryStore(store)
    recorder = HistoryRecorder(history, retention_days=30)
    old, kept = NOW - dt.timedelta(days=30, hours=1), NOW - dt.timedelta(days=29)
    await history.add([(HistoryKey(GUILD, GENERAL, hour_of(old)), MoodCounts(1, 0, 0)),
                       (HistoryKey(GUILD, GENERAL, hour_of(kept)), MoodCounts(0, 1, 0))])
    assert await recorder.prune(NOW) == 1
    assert list(await history.by_hour(GUILD, 0)) == [hour_of(kept)]


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
