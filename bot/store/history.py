"""Hourly mood aggregates: add counts (one upsert per guild, channel and hour, and per moderation head), read them
back, drop old hours.

An upsert adds to the stored row in the database (``negative = negative + excluded.negative``), so several
processes flushing into the same hour never lose each other's increments. Rows are written in key order, so two
processes' transactions lock shared rows in the same order and never deadlock on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from bot.store.schema import mood_history, mood_history_signals
from bot.store.side_store import SideStore

SUMMED = ("negative", "neutral", "positive", "sum_p_negative", "sum_p_positive", "harmful")
SIGNAL_SUMMED = ("scored", "flagged", "sum_score")


def hour_of(moment: dt.datetime) -> int:
    """Whole hours since the Unix epoch (UTC): the ``hour`` key of ``mood_history``."""
    return int(moment.timestamp() // 3600)


def hour_start(hour: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(hour * 3600, dt.UTC)


@dataclass
class SignalCounts:
    """One moderation head over a set of messages: how many it scored (only paths with the head score), how many at
    or above its own flag threshold, and the sum of its scores."""

    scored: int = 0
    flagged: int = 0
    sum_score: float = 0.0

    @property
    def mean_score(self) -> float | None:
        return self.sum_score / self.scored if self.scored else None

    def add(self, other: SignalCounts) -> None:
        for name in SIGNAL_SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class MoodCounts:
    """What a set of messages adds up to: a count per class, the summed class probabilities, how many were harmful
    (some moderation head at or above its threshold) and each moderation head's counts."""

    negative: int = 0
    neutral: int = 0
    positive: int = 0
    sum_p_negative: float = 0.0
    sum_p_positive: float = 0.0
    harmful: int = 0
    signals: dict[str, SignalCounts] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.negative + self.neutral + self.positive

    @property
    def mean_mood(self) -> float | None:
        """Mean of ``p_positive - p_negative`` over the messages (-1 to 1); ``None`` without messages."""
        return (self.sum_p_positive - self.sum_p_negative) / self.total if self.total else None

    def share(self, label: str) -> float:
        return getattr(self, label) / self.total if self.total else 0.0

    def signal(self, head: str) -> SignalCounts:
        """The head's counts, created empty on first use."""
        return self.signals.setdefault(head, SignalCounts())

    def add(self, other: MoodCounts) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for head, counts in other.signals.items():
            self.signal(head).add(counts)


@dataclass(frozen=True, order=True)
class HistoryKey:
    guild_id: int
    channel_id: int
    hour: int


def _adding(
    insert: sqlite.Insert | postgresql.Insert, table: sa.Table, summed: tuple[str, ...]
) -> sqlite.Insert | postgresql.Insert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n``: the database adds, no writer overwrites."""
    return insert.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: table.c[name] + insert.excluded[name] for name in summed},
    )


def _selection(table: sa.Table, guild_id: int, since_hour: int, channel_id: int | None) -> list[sa.ColumnElement]:
    where = [table.c.guild_id == guild_id, table.c.hour >= since_hour]
    return where + ([table.c.channel_id == channel_id] if channel_id is not None else [])


class HistoryStore(SideStore):
    """``mood_history`` and ``mood_history_signals`` of one database."""

    async def add(self, rows: Iterable[tuple[HistoryKey, MoodCounts]]) -> int:
        """Add each row's counts to its stored hour, all in one transaction; returns how many hours were written."""
        ordered = sorted(rows, key=lambda row: row[0])
        if not ordered:
            return 0
        moods = [{**dataclasses.asdict(key), **{name: getattr(counts, name) for name in SUMMED}}
                 for key, counts in ordered]
        signals = [
            {**dataclasses.asdict(key), "head": head, **{name: getattr(signal, name) for name in SIGNAL_SUMMED}}
            for key, counts in ordered for head, signal in sorted(counts.signals.items())
        ]
        async with self._writer.begin() as db:
            await db.execute(_adding(self._insert(mood_history), mood_history, SUMMED), moods)
            if signals:
                await db.execute(
                    _adding(self._insert(mood_history_signals), mood_history_signals, SIGNAL_SUMMED), signals
                )
        return len(moods)

    async def by_channel(self, guild_id: int, since_hour: int) -> dict[int, MoodCounts]:
        """Each channel's totals from ``since_hour`` on."""
        return await self._totals("channel_id", guild_id, since_hour)

    async def by_hour(self, guild_id: int, since_hour: int, channel_id: int | None = None) -> dict[int, MoodCounts]:
        """The guild's (or one channel's) totals per hour from ``since_hour`` on, hours without messages left out."""
        return await self._totals("hour", guild_id, since_hour, channel_id)

    async def _totals(
        self, by: str, guild_id: int, since_hour: int, channel_id: int | None = None
    ) -> dict[int, MoodCounts]:
        """Totals grouped by the column ``by``, in its order, with each group's moderation heads.

        Two statements, read outside a transaction like every read: a flush between them may make a group's heads a
        few messages newer than its classes, and a group the first one did not see yet is left out of both."""
        moods = (
            sa.select(mood_history.c[by].label("key"), *(sa.func.sum(mood_history.c[n]).label(n) for n in SUMMED))
            .where(*_selection(mood_history, guild_id, since_hour, channel_id))
            .group_by(mood_history.c[by])
            .order_by(mood_history.c[by])
        )
        signals_table = mood_history_signals
        signals = (
            sa.select(
                signals_table.c[by].label("key"), signals_table.c.head,
                *(sa.func.sum(signals_table.c[n]).label(n) for n in SIGNAL_SUMMED),
            )
            .where(*_selection(signals_table, guild_id, since_hour, channel_id))
            .group_by(signals_table.c[by], signals_table.c.head)
        )
        async with self._reader.connect() as db:
            totals = {row.key: _counts(row) for row in await db.execute(moods)}
            for row in await db.execute(signals):
                if row.key in totals:
                    totals[row.key].signals[row.head] = SignalCounts(
                        int(row.scored), int(row.flagged), float(row.sum_score)
                    )
        return totals

    async def prune(self, before_hour: int) -> int:
        """Delete every hour before ``before_hour`` (retention); returns how many rows went."""
        removed = 0
        async with self._writer.begin() as db:
            for table in (mood_history, mood_history_signals):
                removed += (await db.execute(sa.delete(table).where(table.c.hour < before_hour))).rowcount or 0
        return removed


def _counts(row: sa.Row) -> MoodCounts:
    return MoodCounts(
        int(row.negative), int(row.neutral), int(row.positive), float(row.sum_p_negative), float(row.sum_p_positive),
        int(row.harmful),
    )
