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


#: Dot colour and legend entry per label.
DOTS = {
    "positive": ("tab:green", "positive message"),
    "neutral": ("tab:gray", "neutral message"),
    "negative": ("tab:red", "negative message"),
}


def mood_figure(times: Sequence[dt.datetime], scores: Sequence[float], labels: Sequence[str], title: str) -> Figure:
    """One dot per message at its mood (``p_positive - p_negative``), coloured by label, and the rolling mean."""
    window = max(3, len(scores) // 10)
    figure = Figure(figsize=(8, 4), dpi=100)
    axes = figure.subplots()
    values = np.asarray(scores, dtype=float)
    moments = np.asarray(times, dtype=object)
    names = np.asarray(labels, dtype=object)
    for label, (colour, legend) in DOTS.items():
        chosen = names == label
        if chosen.any():
            axes.scatter(moments[chosen], values[chosen], color=colour, s=14, alpha=0.55, label=legend)
    axes.plot(times, rolling_mean(values, window), color="tab:blue", linewidth=2, label=f"rolling mean of {window}")
    axes.axhline(0.0, color="grey", linestyle="--", linewidth=1, label="balanced (0)")
    axes.set(ylim=(-1.04, 1.04), title=title, xlabel="time (UTC)", ylabel="mood (p positive − p negative)")
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes.xaxis.get_major_locator()))
    axes.legend(loc="lower left", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def mood_chart(times: Sequence[dt.datetime], scores: Sequence[float], labels: Sequence[str], title: str) -> bytes:
    """:func:`mood_figure` as PNG bytes."""
    buffer = io.BytesIO()
    mood_figure(times, scores, labels, title).savefig(buffer, format="png")
    return buffer.getvalue()
