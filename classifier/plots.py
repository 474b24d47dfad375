"""PNG figures for ``moodbot evaluate --plot``: reliability diagram and confusion matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from classifier.head import CLASSES  # noqa: E402
from classifier.metrics import Report, reliability_bins  # noqa: E402


def save_evaluation_plot(path: str | Path, labels: np.ndarray, p_positive: np.ndarray, report: Report, title: str) -> None:
    """Write a two-panel PNG: reliability diagram (with ECE) and confusion matrix."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=110)
    bins = reliability_bins(labels, p_positive)
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    left.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    left.bar(centres, [b["observed"] for b in bins], width=0.09, alpha=0.6, color="tab:blue", label="observed positive rate")
    left.plot([b["mean_p"] for b in bins], [b["observed"] for b in bins], marker="o", color="tab:orange", label="mean p_positive per bin")
    left.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted p_positive", ylabel="fraction positive", title=f"Reliability (ECE {report.ece:.3f})")
    left.legend(loc="upper left", fontsize=8)
    matrix = np.asarray(report.confusion)
    right.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        right.text(col, row, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black", fontsize=14)
    right.set(xticks=[0, 1], yticks=[0, 1], xticklabels=CLASSES, yticklabels=CLASSES, xlabel="predicted", ylabel="true",
              title=f"Confusion (accuracy {report.accuracy:.3f}, n={report.n})")
    figure.suptitle(title)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)
