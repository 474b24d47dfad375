"""The overview's chart: the guild's hourly mood and message counts as a PNG (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from bot.store.history import MoodCounts, hour_start  # noqa: E402

COLOURS = {"negative": "#d9534f", "neutral": "#9aa0a6", "positive": "#4caf50"}
HARMFUL_COLOUR = "#6a1b9a"


def history_chart(hours: Mapping[int, MoodCounts], first_hour: int, last_hour: int, title: str) -> bytes:
    """Mean mood per hour (line, -1 to 1) over stacked message counts per class (bars) and, where moderation heads
    scored, harmful messages per hour (line), from ``first_hour`` to ``last_hour`` inclusive (so an empty stretch
    shows as empty, not squeezed out)."""
    figure = Figure(figsize=(9, 4.2), dpi=100)
    mood_axes, count_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    times = [hour_start(hour) for hour in hours]
    moods = [counts.mean_mood for counts in hours.values()]
    if times:
        mood_axes.plot(times, moods, color="#3f51b5", marker="o", markersize=3, linewidth=1.5)
        bottom = [0] * len(times)
        for label, colour in COLOURS.items():
            values = [getattr(counts, label) for counts in hours.values()]
            count_axes.bar(times, values, width=1 / 24, bottom=bottom, color=colour, label=label, align="edge")
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        if any(counts.signals for counts in hours.values()):
            middles = [time + dt.timedelta(minutes=30) for time in times]
            harmful = [counts.harmful for counts in hours.values()]
            count_axes.plot(middles, harmful, color=HARMFUL_COLOUR, marker="o", markersize=3, label="harmful")
        count_axes.legend(loc="upper left", fontsize=8, ncols=4)
    else:
        mood_axes.text(0.5, 0.5, "no messages in this period", ha="center", va="center", transform=mood_axes.transAxes)
    count_axes.set_xlim(hour_start(first_hour), hour_start(last_hour + 1))
    mood_axes.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    mood_axes.set(ylim=(-1.05, 1.05), ylabel="mean mood", title=title)
    count_axes.set(ylabel="messages", xlabel="hour (UTC)")
    for axes in (mood_axes, count_axes):
        axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
