"""Live mode's reaction: 😊 / 😐 / 😠 for the label, and 😐 below the confidence cut-off."""

from __future__ import annotations

import pytest

from bot.cogs.live import UNSURE_BELOW, sentiment_emoji
from tests.support.helpers import sentiment_prediction


def prediction(negative: float, neutral: float, positive: float):
    """Labelled as the pipeline labels it: the most probable class."""
    made = sentiment_prediction(negative, neutral, positive)
    return made


@pytest.mark.parametrize(("probabilities", "label", "emoji"), [
    ((0.01, 0.0, 0.99), "positive", "😊"),
    ((1 - UNSURE_BELOW, 0.0, UNSURE_BELOW), "positive", "😊"),  # confidence exactly at the cut-off counts as sure
    ((0.41, 0.0, 0.59), "positive", "😐"),
    ((0.5, 0.0, 0.5), "negative", "😐"),  # a tie: the first most probable class
    ((0.02, 0.95, 0.03), "neutral", "😐"),  # neutral
    ((0.2, 0.7, 0.1), "neutral", "😐"),
    ((0.35, 0.3, 0.35), "negative", "😐"),  # no class is sure
    ((UNSURE_BELOW, 0.3, 0.1), "negative", "😠"),
    ((0.99, 0.01, 0.0), "negative", "😠"),
])
def test_sentiment_emoji(probabilities: tuple[float, float, float], label: str, emoji: str) -> None:
    made = prediction(*probabilities)
    assert made.label == label and sentiment_emoji(made) == emoji
