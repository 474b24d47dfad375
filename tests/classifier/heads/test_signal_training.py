"""Training a moderation head: binary classes (other / its signal), C by cross-validated macro-F1, a temperature,
and a flag threshold chosen on the out-of-fold scores for the precision target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.heads.logistic import LogisticHead
from classifier.heads.tasks import OFFENSIVE
from classifier.heads.training import (
    SIGNAL_FALSE_FLAG_RATE,
    FeatureSet,
    TrainingOptions,
    signal_threshold,
    train_signal_head,
)


def signal_features(rng: np.random.Generator, labels: np.ndarray, separation: float) -> np.ndarray:
    return rng.standard_normal((len(labels), 16)) + (labels == 1)[:, None] * separation


def test_a_moderation_head_is_calibrated_and_gets_its_own_threshold(tiny_encoder, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tweets, chat = rng.integers(0, 2, 400), rng.integers(0, 2, 120)
    sets = [FeatureSet("tweets", signal_features(rng, tweets, 1.0), tweets),
            FeatureSet("chat", signal_features(rng, chat, 1.5), chat, weight=2.0)]
    dev_labels = rng.integers(0, 2, 200)
    dev = FeatureSet("dev", signal_features(rng, dev_labels, 1.0), dev_labels)
    identity = tiny_encoder.identity
    result = train_signal_head(identity, OFFENSIVE, sets, dev, TrainingOptions(c_grid=(0.01, 0.1), folds=3), {})
    head, report = result.head, result.report
    assert head.task == "offensive" and head.classes == ("other", "offensive")
    assert report["cv_score"] == max(report["cv_score_by_C"].values()) > 0.6
    assert set(report["cv_by_set"]) == {"tweets", "chat"} and report["dev_figures"]["macro_f1"] > 0.6
    assert 0.5 <= head.flag_threshold == report["flag_threshold"] < 1.0
    for figures in report["cv_by_set"].values():  # out-of-fold, calibrated, at the chosen threshold
        assert figures["ece"] < 0.1 and figures["precision_at_threshold"] is not None
    path = tmp_path / "offensive.json"
    head.save(path)
    loaded = LogisticHead.load(path)
    assert json.loads(path.read_text())["task"] == "offensive" and loaded.flag_threshold == head.flag_threshold
    p = loaded.predict_proba(dev.features)
    assert p.shape == (200, 2) and np.allclose(p.sum(axis=1), 1.0)


def test_the_threshold_is_the_lowest_that_spares_enough_harmless_texts() -> None:
    p = np.array([0.55, 0.6, 0.7, 0.8, 0.9, 0.95])
    labels = np.array([0, 0, 1, 0, 1, 1])  # harmless at 0.55, 0.6 and 0.8
    assert signal_threshold(labels, p, false_flag_rate=0.34) == 0.61  # from 0.61 on: 1 of the 3 harmless flagged
    assert signal_threshold(labels, p, false_flag_rate=0.0) == 0.81  # none of them
    assert signal_threshold(np.zeros(6, int), np.full(6, 0.999)) == 0.99  # never: as high as it goes
    assert signal_threshold(np.ones(6, int), p) == 0.5  # no harmless text to spare
    assert SIGNAL_FALSE_FLAG_RATE == 0.05


def test_a_large_set_cannot_hide_a_harder_one_behind_the_pooled_rate() -> None:
    easy = np.full(900, 0.1)  # harmless game chat, never near the threshold
    hard = np.r_[np.full(90, 0.2), np.full(10, 0.75)]  # harmless tweets: 10 % of them at 0.75
    labels, p = np.zeros(1000, int), np.r_[easy, hard]
    membership = np.r_[np.zeros(900, int), np.ones(100, int)]
    assert signal_threshold(labels, p) == 0.5  # pooled, 1 % of the harmless texts score 0.75
    assert signal_threshold(labels, p, membership=membership) == 0.76  # the tweets' own 10 % binds
    small = np.r_[np.zeros(900, int), np.ones(100, int) + (np.arange(100) >= 10)]  # sets of 10 and 90: too few
    assert signal_threshold(labels, p, membership=small) == 0.5


def test_a_moderation_set_must_be_zero_or_one(tiny_encoder) -> None:
    bad = FeatureSet("bad", np.zeros((4, 16)), np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="0 \\(other\\) or 1 \\(offensive\\)"):
        train_signal_head(tiny_encoder.identity, OFFENSIVE, [bad], None)
