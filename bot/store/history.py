"""Hourly mood aggregates: add counts (one upsert per guild, channel and hour), read them back, drop old hours.

An upsert adds to the stored row in the database (``negative = negative + excluded.negative``), so several
processes flushing into the same hour never lose each other's increments.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from bot.store.schema import mood_history
from bot.store.side_store import SideStore

SUMMED = ("negative", "neutral", "positive", "sum_p_negative", "sum_p_positive")


def hour_of(moment: dt.datetime) -> int:
    """Whole hours since the Unix epoch (UTC): the ``hour`` key of ``mood_history``."""
    return int(moment.timestamp() // 3600)


def hour_start(hour: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC)


@dataclass
class MoodCounts:
    """What a set of messages adds up to: a count per class and the summed class probabilities."""

    negative: int = 0
    neutral: int = 0
    positive: int = 0
    sum_p_negative: float = 0.0
    sum_p_positive: float = 0.0

    @property
    def total(self) -> int:
        return self.negative + self.neutral + self.positive

    @property
    def mean_mood(self) -> float | None:
        """Mean of ``p_positive - p_negative`` over the messages (-1 to 1); ``None`` without messages."""
        return (self.sum_p_positive - self.sum_p_negative) / self.total if self.total else None

    def share(self, label: str) -> float:
        return getattr(self, label) / self.total if self.total else 0.0

    def add(self, other: MoodCounts) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class HistoryKey:
    guild_id: int
    channel_id: int
    hour: int


class HistoryStore(SideStore):
    """``mood_history`` of one database."""

    async def add(self, rows: Iterable[tuple[HistoryKey, MoodCounts]]) -> int:
        """Add each row's counts to its stored hour, all in one transaction; returns how many rows were written."""
        values = [
            {"guild_id": key.guild_id, "channel_id": key.channel_id, "hour": key.hour,
             **{name: getattr(counts, name) for name in SUMMED}}
            for key, counts in rows
        ]
        if not values:
            return 0
        statement = self._insert(mood_history)
        statement = statement.on_conflict_do_update(
            index_elements=[mood_history.c.guild_id, mood_history.c.channel_id, mood_history.c.hour],
            set_={name: mood_history.c[name] + statement.excluded[name] for name in SUMMED},
        )
        async with self._writer.begin() as db:
            await db.execute(statement, values)
        return len(values)

    async def by_channel(self, guild_id: int, since_hour: int) -> dict[int, MoodCounts]:
        """Each channel's totals from ``since_hour`` on."""
        query = (
            sa.select(mood_history.c.channel_id, *(sa.func.sum(mood_history.c[name]).label(name) for name in SUMMED))
            .where(mood_history.c.guild_id == guild_id, mood_history.c.hour >= since_hour)
            .group_by(mood_history.c.channel_id)
        )
        async with self._reader.connect() as db:
            rows = (await db.execute(query)).all()
        return {row.channel_id: _counts(row) for row in rows}

    async def by_hour(self, guild_id: int, since_hour: int, channel_id: int | None = None) -> dict[int, MoodCounts]:
        """The guild's (or one channel's) totals per hour from ``since_hour`` on, hours without messages left out."""
        where = [mood_history.c.guild_id == guild_id, mood_history.c.hour >= since_hour]
        if channel_id is not None:
            where.append(mood_history.c.channel_id == channel_id)
        query = (
            sa.select(mood_history.c.hour, *(sa.func.sum(mood_history.c[name]).label(name) for name in SUMMED))
            .where(*where)
            .group_by(mood_history.c.hour)
            .order_by(mood_history.c.hour)
        )
        async with self._reader.connect() as db:
            rows = (await db.execute(query)).all()
        return {row.hour: _counts(row) for row in rows}

    async def prune(self, before_hour: int) -> int:
        """Delete every hour before ``before_hour`` (retention); returns how many rows went."""
        async with self._writer.begin() as db:
            result = await db.execute(sa.delete(mood_history).where(mood_history.c.hour < before_hour))
        return result.rowcount or 0


def _counts(row: sa.Row) -> MoodCounts:
    return MoodCounts(
        int(row.negative), int(row.neutral), int(row.positive), float(row.sum_p_negative), float(row.sum_p_positive)
    )
