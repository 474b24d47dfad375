"""``/sentiment``'s verdict: label, confidence and source, then a probability bar per class."""

from __future__ import annotations

import numpy as np

from bot.cogs.sentiment import describe
from classifier.inference.prediction import Prediction


def test_describe_names_label_confidence_source_and_each_class() -> None:
    negative = Prediction("negative", 0.91, 0.07, 0.02, cached=True, vector=np.zeros(4, np.float32))
    neutral = Prediction("neutral", 0.1, 0.62, 0.28, cached=False, vector=np.zeros(4, np.float32))
    assert describe(negative) == (
        "**Negative** · 91% confidence · cached\n"
        "`█████████░` negative 91%\n"
        "`█░░░░░░░░░` neutral 7%\n"
        "`░░░░░░░░░░` positive 2%"
    )
    assert describe(neutral).splitlines() == [
        "**Neutral** · 62% confidence · computed",
        "`█░░░░░░░░░` negative 10%",
        "`██████░░░░` neutral 62%",
        "`███░░░░░░░` positive 28%",
    ]
