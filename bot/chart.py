"""The ``/mood`` chart: sentiment over time as a PNG (matplotlib, Agg backend, no pyplot state)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def rolling_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start)."""
    data = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(data, 0, 0.0))
    counts = np.minimum(np.arange(1, len(data) + 1), window)
    return (sums[1:] - sums[np.maximum(np.arange(1, len(data) + 1) - window, 0)]) / counts


def mood_chart(times: Sequence[dt.datetime], p_positive: Sequence[float], title: str) -> bytes:
    """PNG bytes: one dot per message (green positive, red negative) and the rolling mean as a line."""
    window = max(3, len(p_positive) // 10)
    figure = Figure(figsize=(8, 4), dpi=100)
    axes = figure.subplots()
    scores = np.asarray(p_positive, dtype=float)
    moments = np.asarray(times, dtype=object)
    for positive, colour, label in ((True, "tab:green", "positive message"), (False, "tab:red", "negative message")):
        chosen = (scores >= 0.5) == positive
        if chosen.any():
            axes.scatter(moments[chosen], scores[chosen], color=colour, s=14, alpha=0.55, label=label)
    axes.plot(times, rolling_mean(scores, window), color="tab:blue", linewidth=2, label=f"rolling mean of {window}")
    axes.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="neutral (0.5)")
    axes.set(ylim=(-0.02, 1.02), title=title, xlabel="time (UTC)", ylabel="probability positive")
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes.xaxis.get_major_locator()))
    axes.legend(loc="lower left", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
