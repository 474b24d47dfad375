"""Live mode's reaction: 😊 / 😠, or 😐 below the confidence cut-off."""

from __future__ import annotations

import numpy as np
import pytest

from bot.cogs.live import UNSURE_BELOW, sentiment_emoji
from classifier.prediction import Prediction


def prediction(p_positive: float) -> Prediction:
    """Labelled as the pipeline labels it: positive from 0.5 up."""
    label = "positive" if p_positive >= 0.5 else "negative"
    return Prediction(label, p_positive, cached=False, vector=np.zeros(4, np.float32))


@pytest.mark.parametrize(("p_positive", "emoji"), [
    (0.99, "😊"),
    (UNSURE_BELOW, "😊"),  # confidence exactly at the cut-off counts as sure
    (UNSURE_BELOW - 0.01, "😐"),
    (0.5, "😐"),
    (1 - UNSURE_BELOW + 0.01, "😐"),
    (1 - UNSURE_BELOW, "😠"),
    (0.01, "😠"),
])
def test_sentiment_emoji(p_positive: float, emoji: str) -> None:
    assert sentiment_emoji(prediction(p_positive)) == emoji
