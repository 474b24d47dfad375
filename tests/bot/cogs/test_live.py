"""Live mode's reaction: 😊 / 😐 / 😠 for the label, and 😐 below the confidence cut-off."""

from __future__ import annotations

import pytest

from bot.cogs.live import UNSURE_BELOW, sentiment_emoji
from classifier.heads.sentiment import CLASSES
from tests.support.helpers import sentiment_prediction


def prediction(negative: float, neutral: float, positive: float):
    """Labelled as the pipeline labels it: the most probable class."""
    made = sentiment_prediction(negative, neutral, positive)
    return made


@pytest.mark.parametrize(("probabilities", "emoji"), [
    ((0.01, 0.0, 0.99), "😊"),
    ((1 - UNSURE_BELOW, 0.0, UNSURE_BELOW), "😊"),  # confidence exactly at the cut-off counts as sure
    ((0.41, 0.0, 0.59), "😐"),
    ((0.5, 0.0, 0.5), "😐"),
    ((0.02, 0.95, 0.03), "😐"),  # neutral
    ((0.2, 0.7, 0.1), "😐"),
    ((0.35, 0.3, 0.35), "😐"),  # no class is sure
    ((UNSURE_BELOW, 0.3, 0.1), "😠"),
    ((0.99, 0.01, 0.0), "😠"),
])
def test_sentiment_emoji(probabilities: tuple[float, float, float], emoji: str) -> None:
    made = prediction(*probabilities)
    assert made.label in CLASSES and sentiment_emoji(made) == emoji
