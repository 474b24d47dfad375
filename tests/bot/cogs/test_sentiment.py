"""``/sentiment``'s verdict: label, confidence and source, then a probability bar per class."""

from __future__ import annotations

from bot.cogs.sentiment import describe
from tests.support.helpers import sentiment_prediction


def test_describe_names_label_confidence_source_and_each_class() -> None:
    negative = sentiment_prediction(0.91, 0.07, 0.02, cached=True)
    neutral = sentiment_prediction(0.1, 0.62, 0.28)
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
