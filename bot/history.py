"""The mood-history recorder: counts classified messages in memory and writes them as hourly aggregates.

Messages add to an in-memory tally per guild, channel and hour (classes, probabilities, and per moderation head
the messages it scored, those at or above its own threshold and the sum of its scores);
:meth:`HistoryRecorder.flush` writes the whole tally as one upsert per key in one transaction, every
``flush_seconds`` and at shutdown. A failed write puts its
counts back into the tally, so nothing is lost to a database hiccup; a crash loses at most one interval.
Retention runs from the same loop: hours older than ``retention_days`` are deleted once an hour.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import sqlalchemy as sa

from bot.store.history import HistoryKey, HistoryStore, MoodCounts, hour_of
from classifier.flag_policy import HARMFUL, flag_reasons
from classifier.inference.prediction import Prediction

log = logging.getLogger(__name__)

#: The policy that says which heads scored a message at or above their own thresholds, whatever the guild flags on.
HARMFUL_ONLY = frozenset({HARMFUL})

FLUSH_SECONDS = 10.0
PRUNE_SECONDS = 3600.0


class HistoryRecorder:
    """Batches history writes for one process; ``start`` runs the flush loop, ``close`` stops it after a last flush."""

    def __init__(
        self, history: HistoryStore, retention_days: int, *, flush_seconds: float = FLUSH_SECONDS
    ) -> None:
        self.history = history
        self.retention_days = retention_days
        self.flush_seconds = flush_seconds
        self._pending: dict[HistoryKey, MoodCounts] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._pruned_at = 0.0

    @property
    def pending(self) -> int:
        """Keys waiting for the next flush."""
        return len(self._pending)

    def record(self, guild_id: int, channel_id: int, prediction: Prediction, when: dt.datetime | None = None) -> None:
        """Count one classified message (no text, no author: only its class, probabilities and moderation scores)."""
        key = HistoryKey(guild_id, channel_id, hour_of(when or dt.datetime.now(dt.UTC)))
        counts = self._pending.setdefault(key, MoodCounts())
        label = prediction.label  # an argmax: once
        setattr(counts, label, getattr(counts, label) + 1)
        counts.sum_p_negative += prediction.p_negative
        counts.sum_p_positive += prediction.p_positive
        harmful = {reason.head for reason in flag_reasons(prediction, HARMFUL_ONLY)}
        counts.harmful += bool(harmful)
        for head, score in prediction.signals.items():  # only the heads this message's path has
            signal = counts.signal(head)
            signal.scored += 1
            signal.flagged += head in harmful
            signal.sum_score += score

    async def flush(self) -> int:
        """Write the tally (one upsert per key); on failure keep it for the next flush. Returns rows written."""
        async with self._flushing:
            batch, self._pending = self._pending, {}
            try:
                written = await self.history.add(batch.items())
                log.debug("wrote %d mood-history rows", written)
                return written
            except (OSError, sa.exc.SQLAlchemyError) as error:
                log.warning("could not write %d mood-history rows (kept for the next flush): %s", len(batch), error)
                for key, counts in batch.items():
                    self._pending.setdefault(key, MoodCounts()).add(counts)
                return 0

    async def prune(self, now: dt.datetime | None = None) -> int:
        """Delete hours older than the retention period."""
        cutoff = hour_of(now or dt.datetime.now(dt.UTC)) - self.retention_days * 24
        removed = await self.history.prune(cutoff)
        if removed:
            log.info("mood history: removed %d rows older than %d days", removed, self.retention_days)
        return removed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="moodbot-history")

    async def close(self) -> None:
        """Stop the loop (never in the middle of a write) and write what is left."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.flush_seconds)
            except TimeoutError:
                pass
            await self.flush()
            if time.monotonic() - self._pruned_at >= PRUNE_SECONDS:
                self._pruned_at = time.monotonic()
                try:
                    await self.prune()
                except (OSError, sa.exc.SQLAlchemyError) as error:
                    log.warning("mood-history retention failed (will retry): %s", error)
