"""``bot.chart``: the /mood scatter plot (one dot per message, grey for neutral) and its rolling mean."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from bot.chart import mood_chart, mood_figure, rolling_mean

START = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_rolling_mean_is_trailing_and_shorter_at_the_start() -> None:
    assert rolling_mean([1, 2, 3, 4, 5], 3).tolist() == pytest.approx([1.0, 1.5, 2.0, 3.0, 4.0])


def test_rolling_mean_window_of_one_is_the_input() -> None:
    assert rolling_mean([0.2, 0.9, 0.4], 1).tolist() == pytest.approx([0.2, 0.9, 0.4])


def test_rolling_mean_window_longer_than_the_data_is_the_running_mean() -> None:
    assert rolling_mean([0.0, 1.0, 1.0], 10).tolist() == pytest.approx([0.0, 0.5, 2 / 3])


def test_rolling_mean_of_nothing_is_empty() -> None:
    result = rolling_mean([], 3)
    assert isinstance(result, np.ndarray) and result.shape == (0,)


def test_rolling_mean_keeps_the_length_of_long_series() -> None:
    values = np.linspace(0.0, 1.0, 1000)
    result = rolling_mean(values, 100)
    assert result.shape == (1000,)
    assert result[-1] == pytest.approx(values[-100:].mean())


def test_mood_chart_draws_one_dot_per_message_coloured_by_label() -> None:
    """Neutral messages are grey dots at their mood (near 0), positive green, negative red."""
    times = [START + dt.timedelta(minutes=i) for i in range(6)]
    scores = [0.9, 0.02, -0.05, -0.8, 0.0, 0.7]
    labels = ["positive", "neutral", "neutral", "negative", "neutral", "positive"]
    figure = mood_figure(times, scores, labels, "Mood in #general")
    [axes] = figure.axes
    dots = {c.get_label(): c for c in axes.collections}
    assert set(dots) == {"positive message", "neutral message", "negative message"}
    grey = dots["neutral message"]
    assert np.allclose(grey.get_facecolor()[0][:3], to_rgb("tab:gray"))
    assert grey.get_offsets()[:, 1].tolist() == [0.02, -0.05, 0.0]  # the neutral messages' moods
    assert dots["negative message"].get_offsets()[:, 1].tolist() == [-0.8]
    assert axes.get_ylim() == (-1.04, 1.04)
    assert mood_chart(times, scores, labels, "Mood in #general").startswith(b"\x89PNG\r\n\x1a\n")
