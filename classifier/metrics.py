"""Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix, calibration error."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from classifier.head import CLASSES


def expected_calibration_error(labels: np.ndarray, p_positive: np.ndarray, bins: int = 15) -> float:
    """ECE of the predicted label's confidence over ``bins`` equal-width bins."""
    predicted = (p_positive >= 0.5).astype(int)
    confidence = np.where(predicted == 1, p_positive, 1.0 - p_positive)
    correct = (predicted == labels).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def reliability_bins(labels: np.ndarray, p_positive: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per-bin mean predicted ``p_positive`` and observed positive rate, for reliability diagrams."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_positive, edges[1:-1], right=True), 0, bins - 1)
    return [
        {"low": float(edges[b]), "high": float(edges[b + 1]), "count": int((which == b).sum()),
         "mean_p": float(p_positive[which == b].mean()), "observed": float(labels[which == b].mean())}
        for b in range(bins) if (which == b).any()
    ]


@dataclass(frozen=True)
class Report:
    """Everything ``moodbot evaluate`` prints."""

    n: int
    accuracy: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    ece: float
    negative_precision_at_0_9: float | None
    negative_recall_at_0_9: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def classification_report(labels: np.ndarray, p_positive: np.ndarray) -> Report:
    """Compute the :class:`Report` for true ``labels`` and predicted ``p_positive`` (numpy only: evaluate stays light)."""
    predicted = (p_positive >= 0.5).astype(int)
    confusion = np.array([[np.sum((labels == t) & (predicted == p)) for p in (0, 1)] for t in (0, 1)])
    per_class = {}
    for index, name in enumerate(CLASSES):
        hits, called, support = confusion[index, index], confusion[:, index].sum(), confusion[index].sum()
        precision = hits / called if called else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support)}
    flagged = (1.0 - p_positive) >= 0.9
    negatives = labels == 0
    return Report(
        n=int(len(labels)),
        accuracy=float(np.mean(predicted == labels)),
        per_class=per_class,
        confusion=confusion.tolist(),
        ece=expected_calibration_error(labels, p_positive),
        negative_precision_at_0_9=float(negatives[flagged].mean()) if flagged.any() else None,
        negative_recall_at_0_9=float(flagged[negatives].mean()) if negatives.any() else 0.0,
    )
