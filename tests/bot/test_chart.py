"""``bot.chart``: the rolling mean drawn over the /mood scatter plot."""

from __future__ import annotations

import numpy as np
import pytest

from bot.chart import rolling_mean


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

