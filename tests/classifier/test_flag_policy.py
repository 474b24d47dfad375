"""The flag policy: which scores flag a message, and the reasons it gives (strongest first)."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.flag_policy import DEFAULT_FLAG_ON, Reason, flag_reasons, parse_flag_on
from classifier.heads.tasks import OTHER, SENTIMENT
from classifier.inference.prediction import Prediction, Scores


def prediction(p_negative: float, **signals: tuple[float, float]) -> Prediction:
    """Sentiment at ``p_negative`` (rest neutral) and moderation heads given as ``name=(score, threshold)``."""
    scores = {SENTIMENT.name: Scores(SENTIMENT.classes, (p_negative, 1.0 - p_negative, 0.0))}
    scores |= {name: Scores((OTHER, name), (1.0 - score, score), threshold) for name, (score, threshold) in
               signals.items()}
    return Prediction(scores, False, np.zeros(2, np.float32))


def test_the_default_flags_on_harm_or_strong_negativity() -> None:
    assert flag_reasons(prediction(0.95)) == [Reason("sentiment", "negative", 0.95)]
    assert flag_reasons(prediction(0.2, offensive=(0.97, 0.8))) == [Reason("offensive", "offensive", 0.97)]
    both = flag_reasons(prediction(0.91, offensive=(0.97, 0.8), threat=(0.88, 0.7)))
    assert [r.title for r in both] == ["Offensive 0.97", "Negative 0.91", "Threat 0.88"]
    assert flag_reasons(prediction(0.89, offensive=(0.79, 0.8))) == []  # each signal below its own threshold


def test_a_server_may_flag_on_harm_only_or_negativity_only() -> None:
    benign_complaint = prediction(0.96, offensive=(0.1, 0.8))
    insult = prediction(0.5, offensive=(0.9, 0.8))
    assert flag_reasons(benign_complaint, frozenset({"harmful"})) == []
    assert flag_reasons(insult, frozenset({"harmful"})) == [Reason("offensive", "offensive", 0.9)]
    assert flag_reasons(insult, frozenset({"negative"})) == []
    assert flag_reasons(benign_complaint, frozenset({"negative"}), threshold=0.97) == []  # the guild's threshold


def test_a_path_without_moderation_heads_still_flags_negativity() -> None:
    assert prediction(0.95).signals == {} and flag_reasons(prediction(0.95)) != []


def test_flag_on_parses_and_refuses_clearly() -> None:
    assert parse_flag_on("harmful, negative") == DEFAULT_FLAG_ON
    assert parse_flag_on("HARMFUL") == frozenset({"harmful"})
    for bad in ("", "toxic", "harmful,spam", ","):
        with pytest.raises(ValueError, match="comma-separated choice of harmful, negative"):
            parse_flag_on(bad)


def test_reasons_round_trip_as_json() -> None:
    reason = Reason("self_harm", "self_harm", 0.912345678)
    assert Reason.from_json(reason.to_json()) == Reason("self_harm", "self_harm", 0.912346)
    assert reason.title == "Self-harm 0.91"
