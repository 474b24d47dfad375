"""PNG figures for ``moodbot evaluate --plot``: reliability diagram and confusion matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from classifier.evaluation.metrics import Report, binary_p_positive, reliability_bins  # noqa: E402
from classifier.heads.sentiment import NEUTRAL, POSITIVE  # noqa: E402


def save_evaluation_plot(
    path: str | Path, labels: np.ndarray, probabilities: np.ndarray, report: Report, title: str
) -> None:
    """Write a two-panel PNG: reliability diagram (with ECE) and confusion matrix.

    Binary data: predicted negative-vs-positive ``p_positive`` against the observed positive rate; three-way data:
    the top class's probability against how often that class was right.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=110)
    if report.three_way:
        hits, predicted = probabilities.argmax(axis=1) == labels, probabilities.max(axis=1)
        names = ("fraction correct", "predicted label's probability", "observed accuracy")
    else:
        polar = labels != NEUTRAL
        hits, predicted = labels[polar] == POSITIVE, binary_p_positive(probabilities[polar])
        names = ("fraction positive", "predicted p_positive (negative vs positive)", "observed positive rate")
    bins = reliability_bins(hits.astype(float), predicted)
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    left.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    left.bar(centres, [b["observed"] for b in bins], width=0.09, alpha=0.6, color="tab:blue", label=names[2])
    left.plot([b["mean_p"] for b in bins], [b["observed"] for b in bins], marker="o", color="tab:orange",
              label="mean prediction per bin")
    left.set(xlim=(0, 1), ylim=(0, 1), xlabel=names[1], ylabel=names[0],
             title=f"Reliability (ECE {report.ece:.3f}, floor {report.ece_noise_floor:.3f})")
    left.legend(loc="upper left", fontsize=8)
    matrix = np.asarray(report.confusion)
    right.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        right.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=14)
    ticks = list(range(len(report.classes)))
    right.set(xticks=ticks, yticks=ticks, xticklabels=report.classes, yticklabels=report.classes,
              xlabel="predicted", ylabel="true", title=f"Confusion (accuracy {report.accuracy:.3f}, n={report.n})")
    figure.suptitle(title)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)
