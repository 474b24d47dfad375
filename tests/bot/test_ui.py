"""``bot.ui``: the text confidence bar shown by /sentiment and /mood."""

from __future__ import annotations

import pytest

from bot.ui import BAR_WIDTH, confidence_bar


@pytest.mark.parametrize(("confidence", "bar"), [
    (0.0, "░░░░░░░░░░"),
    (0.5, "█████░░░░░"),
    (0.7, "███████░░░"),
    (0.94, "█████████░"),
    (0.96, "██████████"),  # rounded, not truncated
    (1.0, "██████████"),
])
def test_confidence_bar(confidence: float, bar: str) -> None:
    assert BAR_WIDTH == 10
    assert confidence_bar(confidence) == bar


def test_confidence_bar_width() -> None:
    assert confidence_bar(0.5, width=4) == "██░░"
    assert all(len(confidence_bar(c / 100, width=7)) == 7 for c in range(101))
