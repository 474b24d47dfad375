"""``python -m tests.support.history_bench``: how fast the mood-history path runs, and how big its rows are.

For SQLite (a file) and PostgreSQL (a throwaway server, as the tests start it): the end-to-end history path (one
``record`` per classified message scored by sentiment and the four moderation heads, a flush every
``--flush-every`` messages: one upsert per channel-hour and per head), the flush alone with several processes'
engines adding to the same rows at once, and the store size of one channel-month (720 hourly rows, each with its
four heads' rows). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from bot.history import HistoryRecorder
from bot.store import AsyncStore
from bot.store.history import HistoryKey, HistoryStore, MoodCounts, SignalCounts, hour_of
from classifier.heads.tasks import TASKS
from classifier.inference.prediction import Prediction
from tests.support.helpers import sentiment_prediction
from tests.support.postgres import PostgresServer

GUILD = 1
LABELS = ("negative", "neutral", "positive")
MODERATION_HEADS = [task.name for task in TASKS.values() if task.moderation]
FLAG_THRESHOLD = 0.8  # each head's own, as its file would record it


def predictions(count: int) -> list[Prediction]:
    rng = np.random.default_rng(0)
    vector = np.zeros(1, np.float32)
    out = []
    for _ in range(count):
        p = rng.dirichlet([1, 2, 1])
        signals = {head: (float(score), FLAG_THRESHOLD) for head, score in zip(
            MODERATION_HEADS, rng.beta(1, 8, len(MODERATION_HEADS)), strict=True)}
        out.append(sentiment_prediction(float(p[0]), float(p[1]), float(p[2]), dim=len(vector), signals=signals))
    return out


async def history_path(url: str, messages: int, channels: int, flush_every: int) -> dict[str, float]:
    """Messages/s through record + periodic flush, all on one event loop as in the bot."""
    store = await AsyncStore.open(url)
    try:
        recorder = HistoryRecorder(HistoryStore(store), retention_days=365)
        samples = predictions(messages)
        now = dt.datetime.now(dt.UTC)
        flushes, rows = 0, 0
        started = time.perf_counter()
        for index, prediction in enumerate(samples, 1):
            recorder.record(GUILD, index % channels, prediction, now)
            if index % flush_every == 0:
                rows += await recorder.flush()
                flushes += 1
        rows += await recorder.flush()
        elapsed = time.perf_counter() - started
    finally:
        await store.close()
    return {"messages_per_s": round(messages / elapsed), "flushes": flushes + 1, "rows_written": rows,
            "seconds": round(elapsed, 3)}


async def concurrent_flushes(url: str, processes: int, flushes: int, channels: int) -> dict[str, float]:
    """``processes`` engines each flush ``channels`` rows ``flushes`` times into the same rows at once."""
    stores = [await AsyncStore.open(url) for _ in range(processes)]
    try:
        hour = hour_of(dt.datetime.now(dt.UTC)) + 1
        batch = [(HistoryKey(GUILD, channel, hour), month_row()) for channel in range(channels)]

        async def run(store: AsyncStore) -> None:
            history = HistoryStore(store)
            for _ in range(flushes):
                await history.add(batch)

        started = time.perf_counter()
        await asyncio.gather(*(run(store) for store in stores))
        elapsed = time.perf_counter() - started
        totals = await HistoryStore(stores[0]).by_channel(GUILD, hour)
    finally:
        for store in stores:
            await store.close()
    writes, row = processes * flushes, month_row()
    lost = sum(writes * row.total - counts.total + sum(writes * row.signals[head].scored - signal.scored
                                                      for head, signal in counts.signals.items())
               for counts in totals.values())
    return {"rows_per_s": round(writes * channels / elapsed), "lost_increments": lost}


def month_row() -> MoodCounts:
    """One busy channel-hour: 30 messages, every moderation head scored."""
    return MoodCounts(3, 20, 7, 2.5, 6.1, 1, {head: SignalCounts(30, 1, 3.2) for head in MODERATION_HEADS})


async def channel_month_bytes(url: str, channels: int, size_sql: str) -> float:
    """Store bytes per channel-month: 720 hourly rows for each of ``channels`` channels, measured by the database."""
    store = await AsyncStore.open(url)
    try:
        async with store.engine.connect() as db:
            before = (await db.execute(sa.text(size_sql))).scalar_one()
        history = HistoryStore(store)
        start = hour_of(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        for hour in range(start, start + 720):
            await history.add([(HistoryKey(GUILD, 10**17 + c, hour), month_row()) for c in range(channels)])
        async with store.engine.connect() as db:
            if store.engine.dialect.name == "postgresql":
                await db.execute(sa.text("ANALYZE mood_history, mood_history_signals"))
            after = (await db.execute(sa.text(size_sql))).scalar_one()
    finally:
        await store.close()
    return round((after - before) / channels)


SQLITE_SIZE = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
POSTGRES_SIZE = "SELECT pg_total_relation_size('mood_history') + pg_total_relation_size('mood_history_signals')"


async def bench(args: argparse.Namespace, folder: Path, postgres: PostgresServer | None) -> dict[str, object]:
    results: dict[str, object] = {}
    backends = {"sqlite": lambda: f"sqlite:///{folder / f'bench-{time.monotonic_ns()}.sqlite3'}"}
    if postgres is not None:
        backends["postgresql"] = postgres.create_database
    for name, new_url in backends.items():
        size_sql = SQLITE_SIZE if name == "sqlite" else POSTGRES_SIZE
        results[name] = {
            "history_path": await history_path(new_url(), args.messages, args.channels, args.flush_every),
            "concurrent_flushes": await concurrent_flushes(new_url(), args.processes, args.flushes, args.channels),
            "bytes_per_channel_month": await channel_month_bytes(new_url(), 20, size_sql),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.history_bench", description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--flush-every", type=int, default=5_000, help="messages between flushes")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--flushes", type=int, default=20, help="flushes per process in the concurrent run")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    postgres = None if args.no_postgres else PostgresServer.start()
    try:
        with tempfile.TemporaryDirectory(prefix="moodbot-history-bench-") as tmp:
            print(json.dumps(asyncio.run(bench(args, Path(tmp), postgres)), indent=1))
    finally:
        if postgres is not None:
            postgres.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
