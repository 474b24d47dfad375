"""The result of classifying one text."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """Label, calibrated probability, whether the vector came from the cache, and the vector itself."""

    label: str
    p_positive: float
    cached: bool
    vector: np.ndarray = field(repr=False, compare=False)

    @property
    def p_negative(self) -> float:
        return 1.0 - self.p_positive

    @property
    def confidence(self) -> float:
        """Probability of the predicted label."""
        return max(self.p_positive, self.p_negative)

    def to_json(self, text: str) -> dict[str, object]:
        """The CLI's JSON object for this prediction."""
        return {"text": text, "label": self.label, "p_positive": round(self.p_positive, 6), "cached": self.cached}
