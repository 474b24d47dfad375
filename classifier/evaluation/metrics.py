"""Classification metrics: accuracy, macro recall, per-class precision/recall/F1, confusion matrix, calibration error.

Probabilities are ``[n, 3]`` in :data:`~classifier.heads.sentiment.CLASSES` order. Binary data (no neutral label) is
scored
negative against positive only, the argmax over those two, so its figures stay comparable with two-class heads;
three-way data is scored on all three classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from classifier.flag_policy import DEFAULT_FLAG_THRESHOLD
from classifier.heads.sentiment import CLASSES, NEGATIVE, NEUTRAL, POSITIVE

BINARY_CLASSES = (NEGATIVE, POSITIVE)


def binary_p_positive(probabilities: np.ndarray) -> np.ndarray:
    """``p_positive / (p_negative + p_positive)``: the positive probability of a negative-vs-positive choice."""
    negative, positive = probabilities[:, NEGATIVE], probabilities[:, POSITIVE]
    return positive / np.maximum(negative + positive, np.finfo(float).tiny)


def predicted_classes(probabilities: np.ndarray, three_way: bool) -> np.ndarray:
    """Argmax over all classes, or over negative and positive only (ties go to positive, as with a 0.5 cut-off)."""
    if three_way:
        return probabilities.argmax(axis=1)
    return np.where(probabilities[:, POSITIVE] >= probabilities[:, NEGATIVE], POSITIVE, NEGATIVE)


def binary_accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Negative-vs-positive accuracy over the rows labelled negative or positive (neutral rows are skipped);
    ``None`` when every row is neutral."""
    polar = labels != NEUTRAL
    return float(np.mean(predicted_classes(probabilities[polar], False) == labels[polar])) if polar.any() else None


def class_recalls(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Recall of each class present in ``labels``."""
    return {CLASSES[k]: float(np.mean(predicted[labels == k] == k)) for k in range(len(CLASSES)) if (labels == k).any()}


def macro_recall(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``labels`` (over all three: TweetEval's sentiment metric)."""
    return float(np.mean(list(class_recalls(labels, predicted).values())))


def macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 over the classes present in ``labels`` (UMSAB's and RuSentiment's three-way metric)."""
    scores = []
    for k in np.unique(labels):
        hits, called, support = np.sum((labels == k) & (predicted == k)), np.sum(predicted == k), np.sum(labels == k)
        precision, recall = (hits / called if called else 0.0), hits / support
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


def _calibration_error(hits: np.ndarray, confidence: np.ndarray, low: float, bins: int) -> float:
    edges = np.linspace(low, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(hits[members].mean() - confidence[members].mean())
    return float(error)


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, three_way: bool, bins: int = 15) -> float:
    """ECE of the predicted label's confidence over ``bins`` equal-width bins.

    Binary data: the confidence of the negative-vs-positive choice (``binary_p_positive``), bins over [0.5, 1];
    three-way data: the top class's probability, bins over [1/3, 1].
    """
    if three_way:
        predicted = probabilities.argmax(axis=1)
        confidence = probabilities.max(axis=1)
        return _calibration_error((predicted == labels).astype(float), confidence, 1 / len(CLASSES), bins)
    keep = labels != NEUTRAL
    p_positive = binary_p_positive(probabilities[keep])
    confidence = np.maximum(p_positive, 1.0 - p_positive)
    correct = ((p_positive >= 0.5) == (labels[keep] == POSITIVE)).astype(float)
    return _calibration_error(correct, confidence, 0.5, bins)


def signal_macro_f1(labels: np.ndarray, flagged: np.ndarray) -> float:
    """Macro-F1 over the classes of a moderation signal (0 other, 1 the signal) present in ``labels``, as OLID scores
    it; a set of harmless texts only is scored on them alone (its F1 is how many stay unflagged, weighed with
    precision), not dragged down by a class it cannot have."""
    scores = []
    for k in np.unique(labels).tolist():
        hits = np.sum((labels == k) & ((flagged == 1) == (k == 1)))
        called, support = np.sum((flagged == 1) == (k == 1)), np.sum(labels == k)
        precision = hits / called if called else 0.0
        recall = hits / support if support else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


def signal_ece(labels: np.ndarray, p_signal: np.ndarray, bins: int = 15) -> float:
    """ECE of a moderation signal's yes/no decision (confidence ``max(p, 1 - p)``, bins over [0.5, 1])."""
    confidence = np.maximum(p_signal, 1.0 - p_signal)
    correct = ((p_signal >= 0.5) == (labels == 1)).astype(float)
    return _calibration_error(correct, confidence, 0.5, bins)


#: Label draws behind :func:`calibration_noise_floor`: enough for its mean to settle to the third decimal.
NOISE_FLOOR_DRAWS = 200


def calibration_noise_floor(probabilities: np.ndarray, three_way: bool, seed: int = 0) -> float:
    """The mean ECE of labels drawn from ``probabilities`` themselves, over :data:`NOISE_FLOOR_DRAWS` draws.

    That is what a perfectly calibrated model measures on this many rows with these confidences: binned ECE is biased
    upwards on small sets, so an ECE near this floor says the set is too small to show miscalibration, not that the
    model is miscalibrated. Binary data draws negative or positive from ``binary_p_positive``.
    """
    rng = np.random.default_rng(seed)
    draws = rng.random((NOISE_FLOOR_DRAWS, len(probabilities), 1))
    if three_way:
        drawn = (draws > np.cumsum(probabilities, axis=1)[None]).sum(axis=2).clip(0, len(CLASSES) - 1)
    else:
        p_positive = binary_p_positive(probabilities)[None, :, None]
        drawn = np.where(draws < p_positive, POSITIVE, NEGATIVE)[..., 0]
    return float(np.mean([expected_calibration_error(labels, probabilities, three_way) for labels in drawn]))


def reliability_bins(hits: np.ndarray, predicted: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per-bin mean predicted probability and observed rate of ``hits`` (0/1), for reliability diagrams."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(predicted, edges[1:-1], right=True), 0, bins - 1)
    return [
        {"low": float(edges[b]), "high": float(edges[b + 1]), "count": int((which == b).sum()),
         "mean_p": float(predicted[which == b].mean()), "observed": float(hits[which == b].mean())}
        for b in range(bins) if (which == b).any()
    ]


@dataclass(frozen=True)
class Report:
    """Everything ``moodbot evaluate`` prints.

    ``classes`` names the rows and columns of ``confusion`` (true by predicted): negative and positive for binary
    data, all three for three-way data. ``macro_recall`` and ``binary_accuracy`` (negative vs positive on the
    non-neutral rows) are for three-way data only.
    """

    n: int
    three_way: bool
    classes: list[str]
    accuracy: float
    macro_recall: float | None
    binary_accuracy: float | None  # None also when every row is neutral
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    ece: float
    ece_noise_floor: float  # the ECE a perfectly calibrated model would measure here (see calibration_noise_floor)
    label_shares: dict[str, float]  # share of texts whose label (argmax over all three classes) is each class
    flag_threshold: float
    flags: int  # texts with p_negative >= flag_threshold: what the bot would flag
    negative_precision_at_flag: float | None  # of the flagged texts, the negative share
    negative_recall_at_flag: float | None  # of the negative texts, the flagged share

    def to_json(self) -> dict[str, object]:
        """The figures at the flag threshold are named after it, e.g. ``negative_precision_at_0_9``."""
        body = asdict(self)
        at = "at_" + f"{body.pop('flag_threshold'):g}".replace(".", "_")
        body[f"flags_{at}"] = body.pop("flags")
        body[f"negative_precision_{at}"] = body.pop("negative_precision_at_flag")
        body[f"negative_recall_{at}"] = body.pop("negative_recall_at_flag")
        return body


def classification_report(
    labels: np.ndarray, probabilities: np.ndarray, three_way: bool, flag_threshold: float = DEFAULT_FLAG_THRESHOLD
) -> Report:
    """The :class:`Report` for true class indices ``labels`` and ``[n, 3]`` probabilities (numpy only)."""
    classes = tuple(range(len(CLASSES))) if three_way else BINARY_CLASSES
    predicted = predicted_classes(probabilities, three_way)
    confusion = np.array([[np.sum((labels == t) & (predicted == p)) for p in classes] for t in classes])
    per_class = {}
    for index, k in enumerate(classes):
        hits, called, support = confusion[index, index], confusion[:, index].sum(), confusion[index].sum()
        precision = hits / called if called else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[CLASSES[k]] = {
            "precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support),
        }
    flagged = probabilities[:, NEGATIVE] >= flag_threshold
    negatives = labels == NEGATIVE
    shares = np.bincount(probabilities.argmax(axis=1), minlength=len(CLASSES)) / max(len(labels), 1)
    return Report(
        n=int(len(labels)),
        three_way=three_way,
        classes=[CLASSES[k] for k in classes],
        accuracy=float(np.mean(predicted == labels)),
        macro_recall=macro_recall(labels, predicted) if three_way else None,
        binary_accuracy=binary_accuracy(labels, probabilities) if three_way else None,
        per_class=per_class,
        confusion=confusion.tolist(),
        ece=expected_calibration_error(labels, probabilities, three_way),
        ece_noise_floor=calibration_noise_floor(probabilities, three_way),
        label_shares={name: float(share) for name, share in zip(CLASSES, shares, strict=True)},
        flag_threshold=flag_threshold,
        flags=int(flagged.sum()),
        negative_precision_at_flag=float(negatives[flagged].mean()) if flagged.any() else None,
        negative_recall_at_flag=float(flagged[negatives].mean()) if negatives.any() else None,
    )
