"""The result of classifying one text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from classifier.heads.sentiment import CLASSES


@dataclass(frozen=True)
class Prediction:
    """Label, calibrated class probabilities, whether the vector came from the cache, and the vector itself.

    ``label`` is the most probable class, so it may be ``neutral``; flags read ``p_negative``, not the label.
    """

    label: str
    p_negative: float
    p_neutral: float
    p_positive: float
    cached: bool
    vector: np.ndarray = field(repr=False, compare=False)

    @property
    def probabilities(self) -> dict[str, float]:
        """Each class's probability, in :data:`CLASSES` order."""
        return {"negative": self.p_negative, "neutral": self.p_neutral, "positive": self.p_positive}

    @property
    def confidence(self) -> float:
        """Probability of the predicted label."""
        return self.probabilities[self.label]

    def to_json(self, text: str) -> dict[str, object]:
        """The CLI's JSON object for this prediction."""
        return {
            "text": text,
            "label": self.label,
            "p_negative": round(self.p_negative, 6),
            "p_neutral": round(self.p_neutral, 6),
            "p_positive": round(self.p_positive, 6),
            "cached": self.cached,
        }


def predictions(probabilities: np.ndarray, cached: Sequence[bool], vectors: np.ndarray) -> list[Prediction]:
    """One prediction per row of :meth:`LogisticHead.predict_proba` (``[n, 3]``, :data:`CLASSES` order)."""
    labels = [CLASSES[i] for i in probabilities.argmax(axis=1).tolist()]
    return [
        Prediction(label, negative, neutral, positive, hit, vector)
        for label, (negative, neutral, positive), hit, vector in zip(
            labels, probabilities.tolist(), cached, vectors, strict=True
        )
    ]
