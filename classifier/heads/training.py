"""Training the logistic head on cached feature vectors.

Standardise, pick the regularisation strength ``C`` by stratified k-fold cross-validation over the union of the
training sets (strata: set and class, so every fold holds each set's share and class balance), fit a temperature
on the out-of-fold logits (never on dev), then fit on everything.

Sets are binary (negative/positive) or three-way (negative/neutral/positive). By default a binary row supervises
only the choice between negative and positive (see :mod:`classifier.heads.solver`); ``binary_rows="full"`` also makes
it say "not neutral". The head has a neutral class when any set is three-way. ``C`` maximises the mean over sets
of each set's own figure: negative-vs-positive accuracy for a binary set, macro-averaged recall (TweetEval's
metric) for a three-way one. Every figure reported on a set used for training is a held-out (out-of-fold) figure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import softmax
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from classifier.encoders.identity import EncoderIdentity
from classifier.evaluation.metrics import (
    binary_accuracy,
    class_recalls,
    expected_calibration_error,
    macro_f1,
    macro_recall,
    signal_ece,
    signal_macro_f1,
)
from classifier.heads import solver
from classifier.heads.logistic import LogisticHead
from classifier.heads.sentiment import CLASSES, NEUTRAL, POSITIVE
from classifier.heads.tasks import Task

log = logging.getLogger(__name__)

DEFAULT_C_GRID = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)
BINARY_HEAD_CLASSES = ("negative", "positive")


@dataclass(frozen=True)
class FeatureSet:
    """Feature vectors and class indices (:data:`~classifier.heads.sentiment.CLASSES`) of one named data set.

    ``weight`` is its sample weight in training; ``three_way``: its labels may be neutral (else they only say
    negative or positive).
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    weight: float = 1.0
    three_way: bool = False


@dataclass(frozen=True)
class TrainingOptions:
    """Hyper-parameter search settings; the defaults reproduce the shipped heads."""

    c_grid: tuple[float, ...] = DEFAULT_C_GRID
    folds: int = 5
    seed: int = 0
    class_weight: str | None = "balanced-three-way"  # | "balanced" (over all rows) | None
    binary_rows: str = "partial"  # "partial": a binary row says only negative vs positive; "full": also not neutral
    max_iter: int = 5000


@dataclass
class TrainingResult:
    """The fitted head and the numbers behind it."""

    head: LogisticHead
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Rows:
    """The union of the training sets as the solver sees it."""

    features: np.ndarray
    labels: np.ndarray  # class indices
    targets: np.ndarray  # indices into the head's classes
    weights: np.ndarray
    binary: np.ndarray  # rows that only say negative vs positive (never set for a two-class head)
    membership: np.ndarray
    classes: tuple[str, ...]


def _rows(sets: list[FeatureSet], options: TrainingOptions) -> _Rows:
    three_way = any(s.three_way for s in sets)
    classes = CLASSES if three_way else BINARY_HEAD_CLASSES
    labels = np.concatenate([s.labels for s in sets]).astype(np.int64)
    if not set(np.unique(labels)) <= {CLASSES.index(name) for name in classes}:
        raise ValueError("a binary set has a neutral label")
    per_set = [np.full(len(s.labels), float(s.weight)) for s in sets]
    if options.class_weight == "balanced-three-way":  # inside each three-way set, the sets scored by macro recall
        per_set = [w * _balanced(s.labels) if s.three_way else w for w, s in zip(per_set, sets, strict=True)]
    weights = np.concatenate(per_set)
    if options.class_weight == "balanced":
        weights = weights * _balanced(labels)
    return _Rows(
        features=np.concatenate([s.features for s in sets]).astype(np.float64),
        labels=labels,
        targets=labels if three_way else (labels == POSITIVE).astype(np.int64),
        weights=weights,
        binary=np.concatenate(
            [np.full(len(s.labels), three_way and not s.three_way and options.binary_rows == "partial") for s in sets]
        ),
        membership=np.concatenate([np.full(len(s.labels), i) for i, s in enumerate(sets)]),
        classes=classes,
    )


def _balanced(labels: np.ndarray) -> np.ndarray:
    """Per-row weights ``n / (classes present * count of the row's class)``: every class weighs the same, mean 1."""
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(float)
    return (len(labels) / (np.count_nonzero(counts) * np.maximum(counts, 1.0)))[labels]


def class_probabilities(logits: np.ndarray, classes: tuple[str, ...], temperature: float = 1.0) -> np.ndarray:
    """``[n, 3]`` probabilities in :data:`CLASSES` order from logits over ``classes`` (absent classes: 0)."""
    probabilities = np.zeros((len(logits), len(CLASSES)))
    probabilities[:, [CLASSES.index(name) for name in classes]] = softmax(logits / temperature, axis=1)
    return probabilities


def _out_of_fold_logits(rows: _Rows, options: TrainingOptions) -> dict[float, np.ndarray]:
    """Held-out logits for every row and every ``C`` (one scaler per fold, warm starts along the ``C`` path)."""
    grid = sorted(options.c_grid)
    logits = {c: np.empty((len(rows.labels), len(rows.classes))) for c in grid}
    strata = rows.membership * len(CLASSES) + rows.labels
    folds = StratifiedKFold(n_splits=options.folds, shuffle=True, random_state=options.seed)
    for fit_rows, held_rows in tqdm(
        list(folds.split(rows.features, strata)), desc="cross-validating C", unit="fold", leave=False
    ):
        scaler = StandardScaler().fit(rows.features[fit_rows])
        fitted, held = scaler.transform(rows.features[fit_rows]), scaler.transform(rows.features[held_rows])
        start = None
        for c in grid:
            w, b, start = solver.fit(
                fitted, rows.targets[fit_rows], rows.weights[fit_rows], c, rows.binary[fit_rows],
                len(rows.classes), start, options.max_iter,
            )
            logits[c][held_rows] = held @ w + b
    return logits


def _set_figures(s: FeatureSet, probabilities: np.ndarray) -> dict[str, Any]:
    """Negative-vs-positive accuracy; for a three-way set also its three-class accuracy, recalls and macro-F1."""
    figures: dict[str, Any] = {"accuracy": binary_accuracy(s.labels, probabilities)}
    if s.three_way:
        predicted = probabilities.argmax(axis=1)
        figures |= {
            "accuracy_three_way": float(np.mean(predicted == s.labels)),
            "macro_recall": macro_recall(s.labels, predicted),
            "macro_f1": macro_f1(s.labels, predicted),
            "recall": class_recalls(s.labels, predicted),
        }
    return figures


def _score(figures: list[dict[str, Any]]) -> float:
    """The selection criterion: the mean over sets of macro recall (three-way sets) or accuracy (binary sets)."""
    return float(np.mean([f.get("macro_recall", f["accuracy"]) for f in figures]))


def _fit_temperature(rows: _Rows, logits: np.ndarray) -> float:
    """The temperature minimising the training loss of the out-of-fold logits."""

    def loss(log_temperature: float) -> float:
        scaled = logits / np.exp(log_temperature)
        return -float(rows.weights @ solver.log_likelihoods(scaled, rows.targets, rows.binary)) / rows.weights.sum()

    return float(np.exp(minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x))


def _select_and_fit(
    rows: _Rows, options: TrainingOptions, cv_score: Callable[[np.ndarray], float], measure: str
) -> tuple[float, float, dict[str, float], float, StandardScaler, np.ndarray, np.ndarray, np.ndarray]:
    """``C`` with the best ``cv_score`` of its out-of-fold logits, a temperature on them, then the fit on every row:
    ``(C, its score, score by C, temperature, scaler, W, b, out-of-fold logits at C)``. BLAS runs on one thread,
    so the reductions are the same on any machine: `make head` is reproducible."""
    with threadpool_limits(limits=1):
        oof = _out_of_fold_logits(rows, options)
        by_c: dict[str, float] = {}
        best: tuple[float, float] | None = None
        for c, logits in oof.items():
            score = cv_score(logits)
            by_c[repr(c)] = score
            log.info("C=%g: %d-fold CV %s %.4f", c, options.folds, measure, score)
            if best is None or score > best[1]:
                best = (c, score)
        assert best is not None
        c, score = best
        temperature = _fit_temperature(rows, oof[c])
        scaler = StandardScaler().fit(rows.features)
        w, b, _ = solver.fit(
            scaler.transform(rows.features), rows.targets, rows.weights, c, rows.binary, len(rows.classes),
            max_iter=options.max_iter,
        )
    return c, score, by_c, temperature, scaler, w, b, oof[c]


def train_head(
    encoder: EncoderIdentity,
    sets: list[FeatureSet],
    dev: FeatureSet | None,
    options: TrainingOptions = TrainingOptions(),
    training_info: dict[str, Any] | None = None,
    measured: Sequence[FeatureSet] = (),
) -> TrainingResult:
    """Cross-validate ``C`` over the union of ``sets``, calibrate, fit, and report on ``dev`` and on the
    ``measured`` sets (never trained on)."""
    rows = _rows(sets, options)

    def cv_score(logits: np.ndarray) -> float:
        probabilities = class_probabilities(logits, rows.classes)
        return _score([_set_figures(s, probabilities[rows.membership == i]) for i, s in enumerate(sets)])

    c, score, by_c, temperature, scaler, w, b, held_out = _select_and_fit(rows, options, cv_score, "score")
    head = LogisticHead(
        encoder=encoder, weights=w.T, biases=b, mean=scaler.mean_, scale=scaler.scale_, classes=rows.classes,
        temperature=temperature,
    )
    calibrated = class_probabilities(held_out, rows.classes, temperature)
    report: dict[str, Any] = {
        "C": c,
        "classes": list(rows.classes),
        "class_weight": options.class_weight,
        "binary_rows": options.binary_rows,
        "folds": options.folds,
        "seed": options.seed,
        "temperature": temperature,
        "cv_score": score,
        "cv_score_by_C": by_c,
        "cv_by_set": {
            s.name: _set_figures(s, calibrated[rows.membership == i])
            | {"ece": expected_calibration_error(s.labels, calibrated[rows.membership == i], s.three_way)}
            for i, s in enumerate(sets)
        },
        "sets": [
            {"name": s.name, "n": int(len(s.labels)), "weight": s.weight,
             "labels": "three-way" if s.three_way else "binary"}
            for s in sets
        ],
    }
    if dev is not None:
        report |= _dev_report(head, dev)
    if measured:
        report["measured"] = {
            s.name: _set_figures(s, p) | {"ece": expected_calibration_error(s.labels, p, s.three_way)}
            for s in measured for p in [head.probabilities_for(s.features, CLASSES)]
        }
    head.training = (training_info or {}) | report
    return TrainingResult(head, report)


def _dev_report(head: LogisticHead, dev: FeatureSet) -> dict[str, Any]:
    """Negative-vs-positive accuracy and ECE (before and after calibration) on ``dev``, and its neutral share."""
    calibrated = head.probabilities_for(dev.features, CLASSES)
    raw = class_probabilities(head.decision(dev.features), head.classes)
    report: dict[str, Any] = {
        "dev": dev.name,
        "dev_accuracy": binary_accuracy(dev.labels, calibrated),
        "dev_ece_uncalibrated": expected_calibration_error(dev.labels, raw, dev.three_way),
        "dev_ece": expected_calibration_error(dev.labels, calibrated, dev.three_way),
        "dev_neutral_share": float(np.mean(calibrated.argmax(axis=1) == NEUTRAL)),
    }
    if dev.three_way:
        report["dev_macro_recall"] = macro_recall(dev.labels, calibrated.argmax(axis=1))
    return report



#: The share of harmless texts a moderation head's flag threshold lets through, on its out-of-fold scores: over all its
#: training sets, and within each of them large enough to measure it (:data:`MIN_HARMLESS_PER_SET`), so that a large
#: easy set (game chat) cannot hide a harder kind of text (tweets) paying more. A rate, not a precision: it does not
#: move with how common harm is in the data, and it is what a moderator's queue pays for each head.
SIGNAL_FALSE_FLAG_RATE = 0.05
#: The harmless rows a training set needs for its own false-flag rate to bind the threshold (5 % of 100 is 5 texts).
MIN_HARMLESS_PER_SET = 100
#: The lowest flag threshold a moderation head may get (below it a card would be more often wrong than right).
MIN_SIGNAL_THRESHOLD = 0.5


def _signal_rows(sets: list[FeatureSet], task: Task) -> _Rows:
    """A moderation head's rows: labels are 0 (other) or 1 (the signal); each set's classes are balanced."""
    labels = np.concatenate([s.labels for s in sets]).astype(np.int64)
    if not set(np.unique(labels)) <= {0, 1}:
        raise ValueError(f"a {task.name} set must label rows 0 (other) or 1 ({task.signal})")
    weights = np.concatenate([s.weight * _balanced(s.labels) for s in sets])
    return _Rows(
        features=np.concatenate([s.features for s in sets]).astype(np.float64),
        labels=labels,
        targets=labels,
        weights=weights,
        binary=np.zeros(len(labels), dtype=bool),
        membership=np.concatenate([np.full(len(s.labels), i) for i, s in enumerate(sets)]),
        classes=task.classes,
    )


def _signal_figures(labels: np.ndarray, p_signal: np.ndarray, threshold: float | None = None) -> dict[str, Any]:
    """Macro-F1 at 0.5 (OLID's metric), ECE, and precision and recall at ``threshold`` when given."""
    figures: dict[str, Any] = {
        "macro_f1": signal_macro_f1(labels, p_signal >= 0.5), "ece": signal_ece(labels, p_signal)
    }
    if threshold is not None:
        flagged = p_signal >= threshold
        figures["precision_at_threshold"] = float(labels[flagged].mean()) if flagged.any() else None
        figures["recall_at_threshold"] = float(flagged[labels == 1].mean()) if (labels == 1).any() else None
    return figures


def signal_threshold(
    labels: np.ndarray,
    p_signal: np.ndarray,
    false_flag_rate: float = SIGNAL_FALSE_FLAG_RATE,
    membership: np.ndarray | None = None,
) -> float:
    """The lowest threshold (at least :data:`MIN_SIGNAL_THRESHOLD`, on a 0.01 grid) that flags at most
    ``false_flag_rate`` of the harmless (label 0) texts, and of those of each set in ``membership`` (a set index per
    row) with at least :data:`MIN_HARMLESS_PER_SET` of them; 0.99 when none does."""
    harmless = [p_signal[labels == 0]]
    if membership is not None:
        per_set = (p_signal[(labels == 0) & (membership == i)] for i in np.unique(membership))
        harmless += [scores for scores in per_set if len(scores) >= MIN_HARMLESS_PER_SET]
    for threshold in np.round(np.arange(MIN_SIGNAL_THRESHOLD, 1.0, 0.01), 2):
        if all(not len(h) or np.mean(h >= threshold) <= false_flag_rate for h in harmless):
            return float(threshold)
    return 0.99


def train_signal_head(
    encoder: EncoderIdentity,
    task: Task,
    sets: list[FeatureSet],
    dev: FeatureSet | None,
    options: TrainingOptions = TrainingOptions(),
    training_info: dict[str, Any] | None = None,
    measured: Sequence[FeatureSet] = (),
) -> TrainingResult:
    """A moderation head for ``task``: ``C`` by cross-validated mean macro-F1 over the sets, a temperature on the
    out-of-fold logits, and a flag threshold for :data:`SIGNAL_FALSE_FLAG_RATE` on the out-of-fold scores."""
    rows = _signal_rows(sets, task)

    def cv_score(logits: np.ndarray) -> float:
        p_signal = softmax(logits, axis=1)[:, 1]
        return float(np.mean([
            signal_macro_f1(rows.labels[rows.membership == i], p_signal[rows.membership == i] >= 0.5)
            for i in range(len(sets))
        ]))

    c, score, by_c, temperature, scaler, w, b, held_out = _select_and_fit(rows, options, cv_score, "mean macro-F1")
    calibrated = softmax(held_out / temperature, axis=1)[:, 1]
    threshold = signal_threshold(rows.labels, calibrated, membership=rows.membership)
    report: dict[str, Any] = {
        "task": task.name,
        "C": c,
        "classes": list(task.classes),
        "folds": options.folds,
        "seed": options.seed,
        "temperature": temperature,
        "flag_threshold": threshold,
        "flag_false_flag_rate": SIGNAL_FALSE_FLAG_RATE,
        "cv_score": score,
        "cv_score_by_C": by_c,
        "cv_by_set": {
            s.name: _signal_figures(s.labels, calibrated[rows.membership == i], threshold)
            for i, s in enumerate(sets)
        },
        "sets": [{"name": s.name, "n": int(len(s.labels)), "weight": s.weight} for s in sets],
    }
    head = LogisticHead(
        encoder=encoder, weights=w.T, biases=b, mean=scaler.mean_, scale=scaler.scale_, classes=task.classes,
        temperature=temperature, task=task.name,
    )
    if dev is not None:
        report["dev"] = dev.name
        report["dev_figures"] = _signal_figures(dev.labels, head.predict_proba(dev.features)[:, 1], threshold)
    if measured:
        report["measured"] = {
            s.name: _signal_figures(s.labels, head.predict_proba(s.features)[:, 1], threshold) for s in measured
        }
    head.training = (training_info or {}) | report
    return TrainingResult(head, report)
