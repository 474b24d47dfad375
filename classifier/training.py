"""Training the logistic head on cached feature vectors.

Standardise, pick the regularisation strength ``C`` by stratified k-fold cross-validation,
fit a Platt calibration on the out-of-fold logits (never on dev), then fit on everything.
Extra labelled sets (tweets, moderator feedback) join the training data with their own sample
weight; each set's cross-validated accuracy is reported separately, so numbers on a set used
for training are always held-out numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from classifier.head import EncoderSpec, LogisticHead
from classifier.metrics import expected_calibration_error

log = logging.getLogger(__name__)

DEFAULT_C_GRID = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)


@dataclass(frozen=True)
class FeatureSet:
    """Feature vectors and 0/1 labels of one named data set, with its sample weight in training."""

    name: str
    features: np.ndarray
    labels: np.ndarray
    weight: float = 1.0


@dataclass(frozen=True)
class TrainingOptions:
    """Hyper-parameter search settings; the defaults reproduce the shipped head."""

    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    folds: int = 5
    seed: int = 0
    class_weight: str | None = None
    max_iter: int = 5000


@dataclass
class TrainingResult:
    """The fitted head and the numbers behind it."""

    head: LogisticHead
    report: dict[str, Any] = field(default_factory=dict)


def _fit(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, c: float, options: TrainingOptions) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(features)
    model = LogisticRegression(C=c, class_weight=options.class_weight, max_iter=options.max_iter, random_state=options.seed)
    model.fit(scaler.transform(features), labels, sample_weight=weights)
    return scaler, model


def _out_of_fold_logits(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, strata: np.ndarray, c: float, options: TrainingOptions) -> np.ndarray:
    logits = np.empty(len(labels))
    folds = StratifiedKFold(n_splits=options.folds, shuffle=True, random_state=options.seed)
    for fit_rows, held_rows in folds.split(features, strata):
        scaler, model = _fit(features[fit_rows], labels[fit_rows], weights[fit_rows], c, options)
        logits[held_rows] = model.decision_function(scaler.transform(features[held_rows]))
    return logits


def train_head(encoder: EncoderSpec, sets: list[FeatureSet], dev: FeatureSet | None, options: TrainingOptions = TrainingOptions(), training_info: dict[str, Any] | None = None) -> TrainingResult:
    """Cross-validate ``C`` over the union of ``sets``, calibrate, fit, and report on ``dev``."""
    features = np.concatenate([s.features for s in sets]).astype(np.float64)
    labels = np.concatenate([s.labels for s in sets])
    weights = np.concatenate([np.full(len(s.labels), s.weight) for s in sets])
    membership = np.concatenate([np.full(len(s.labels), i) for i, s in enumerate(sets)])
    strata = membership * 2 + labels  # every fold keeps each set's share and class balance

    best: tuple[float, float, np.ndarray] | None = None
    cv_by_c: dict[str, float] = {}
    for c in tqdm(options.c_grid, desc="cross-validating C", unit="C", leave=False):
        logits = _out_of_fold_logits(features, labels, weights, strata, c, options)
        accuracy = float(((logits >= 0) == labels).mean())
        cv_by_c[repr(c)] = accuracy
        log.info("C=%g: %d-fold CV accuracy %.4f", c, options.folds, accuracy)
        if best is None or accuracy > best[1]:
            best = (c, accuracy, logits)
    assert best is not None
    c, cv_accuracy, oof_logits = best

    platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof_logits[:, None], labels)
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    if slope <= 0:  # features carry no signal (CV accuracy at chance): a calibration must never flip the head
        log.warning("Platt calibration found no signal (slope %.3f); keeping the uncalibrated head", slope)
        slope, intercept = 1.0, 0.0
    scaler, model = _fit(features, labels, weights, c, options)
    head = LogisticHead(
        encoder=encoder,
        weights=model.coef_[0].astype(np.float64),
        bias=float(model.intercept_[0]),
        mean=scaler.mean_.astype(np.float64),
        scale=scaler.scale_.astype(np.float64),
        calibration_slope=slope,
        calibration_intercept=intercept,
    )
    report: dict[str, Any] = {
        "C": c,
        "class_weight": options.class_weight,
        "folds": options.folds,
        "seed": options.seed,
        "cv_accuracy": cv_accuracy,
        "cv_accuracy_by_C": cv_by_c,
        "cv_accuracy_by_set": {s.name: float(((oof_logits[membership == i] >= 0) == s.labels).mean()) for i, s in enumerate(sets)},
        "sets": [{"name": s.name, "n": int(len(s.labels)), "weight": s.weight} for s in sets],
    }
    if dev is not None:
        raw = 1.0 / (1.0 + np.exp(-head.decision(dev.features)))
        calibrated = head.predict_proba(dev.features)
        report |= {
            "dev": dev.name,
            "dev_accuracy": float(((calibrated >= 0.5) == dev.labels).mean()),
            "dev_ece_uncalibrated": expected_calibration_error(dev.labels, raw),
            "dev_ece": expected_calibration_error(dev.labels, calibrated),
        }
    head.training = (training_info or {}) | report
    return TrainingResult(head, report)
