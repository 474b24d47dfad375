"""``/sentiment``'s one-line verdict: label, confidence bar, percentage and where the vector came from."""

from __future__ import annotations

import numpy as np

from bot.cogs.sentiment import describe
from classifier.prediction import Prediction


def test_describe_names_label_bar_percentage_and_source() -> None:
    negative = Prediction("negative", 0.09, cached=True, vector=np.zeros(4, np.float32))
    positive = Prediction("positive", 0.5, cached=False, vector=np.zeros(4, np.float32))
    assert describe(negative) == "**Negative** `█████████░` 91% confidence · cached"
    assert describe(positive) == "**Positive** `█████░░░░░` 50% confidence · computed"
