"""Event-loop lag: how late a timer fires on the bot's loop, the delay every callback (heartbeats included) sees.

A sampler sleeps ``interval_s`` and records how much later than asked it woke up, in a histogram of fixed
log-spaced buckets (bounded memory however long the bot runs; p99 to within the bucket width, 10 %). The totals
are logged when it stops, and a window's figures every ``report_every_s`` when the loop lagged.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

INTERVAL_S = 0.05
REPORT_EVERY_S = 60.0
#: A window whose worst lag reaches this is reported at INFO (below it the loop is healthy and nothing is logged).
REPORT_FROM_S = 0.25
_BUCKET_FACTOR = 1.1
#: Bucket upper bounds in seconds: 0.1 ms to about 10 min.
_BOUNDS = [1e-4 * _BUCKET_FACTOR**i for i in range(int(math.log(6e2 / 1e-4, _BUCKET_FACTOR)) + 2)]


@dataclass
class LagHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS) + 1))
    samples: int = 0
    max_s: float = 0.0

    def add(self, lag_s: float) -> None:
        self.counts[bisect.bisect_left(_BOUNDS, lag_s)] += 1
        self.samples += 1
        self.max_s = max(self.max_s, lag_s)

    def percentile(self, q: float) -> float:
        """The upper bound of the bucket holding the ``q``-th percentile (capped at the largest lag seen)."""
        if not self.samples:
            return 0.0
        rank = math.ceil(q / 100 * self.samples)
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(_BOUNDS[index] if index < len(_BOUNDS) else self.max_s, self.max_s)
        return self.max_s

    def describe(self) -> str:
        return (
            f"max {self.max_s * 1000:.1f} ms, p99 {self.percentile(99) * 1000:.1f} ms, "
            f"p50 {self.percentile(50) * 1000:.1f} ms over {self.samples} samples"
        )


class LoopLagMonitor:
    """Start on the running loop with :meth:`start`; :meth:`stop` logs ``event loop lag: max … p99 …``."""

    def __init__(self, interval_s: float = INTERVAL_S, report_every_s: float = REPORT_EVERY_S) -> None:
        self.interval_s = interval_s
        self.report_every_s = report_every_s
        self.total = LagHistogram()
        self._window = LagHistogram()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sample(), name="moodbot-loop-lag")

    async def _sample(self) -> None:
        window_started = time.monotonic()
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.interval_s)
            woke = time.monotonic()
            lag = max(0.0, woke - asked - self.interval_s)
            self.total.add(lag)
            self._window.add(lag)
            if woke - window_started >= self.report_every_s:
                if self._window.max_s >= REPORT_FROM_S:
                    log.info("event loop lag in the last %.0f s: %s", woke - window_started, self._window.describe())
                self._window, window_started = LagHistogram(), woke

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        log.info("event loop lag: %s", self.total.describe())
