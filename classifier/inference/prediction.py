"""The result of classifying one text: every head's scores on one vector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from classifier.heads.logistic import LogisticHead
from classifier.heads.tasks import SENTIMENT, task_named


@dataclass(frozen=True)
class Scores:
    """One head's calibrated probabilities over its classes, and a moderation head's own flag threshold."""

    classes: tuple[str, ...]
    probabilities: tuple[float, ...]
    threshold: float | None = None

    def __getitem__(self, name: str) -> float:
        """The probability of class ``name``; 0 for a class this head lacks (neutral, for a binary sentiment head)."""
        return self.probabilities[self.classes.index(name)] if name in self.classes else 0.0

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.classes[int(np.argmax(self.probabilities))]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.classes, self.probabilities, strict=True))


@dataclass(frozen=True)
class Prediction:
    """Every head's scores for one text, which encoder path read it, whether its vector was cached, and the vector.

    Sentiment is always there; its ``label`` is the most probable class, so it may be ``neutral``: flags read
    scores (see :mod:`classifier.moderation.policy`), never the label alone.
    """

    scores: Mapping[str, Scores]
    cached: bool
    vector: np.ndarray = field(repr=False, compare=False)
    path: str = ""  # the encoder path that answered (the bundled encoder's short name, or its model name)
    language: str | None = None  # ISO 639-1 code when the language gate knew it

    @property
    def sentiment(self) -> Scores:
        return self.scores[SENTIMENT.name]

    @property
    def label(self) -> str:
        """The sentiment label."""
        return self.sentiment.label

    @property
    def p_negative(self) -> float:
        return self.sentiment["negative"]

    @property
    def p_neutral(self) -> float:
        return self.sentiment["neutral"]

    @property
    def p_positive(self) -> float:
        return self.sentiment["positive"]

    @property
    def probabilities(self) -> dict[str, float]:
        """Each sentiment class's probability, negative, neutral, positive."""
        return {name: self.sentiment[name] for name in SENTIMENT.classes}

    @property
    def confidence(self) -> float:
        """Probability of the sentiment label."""
        return self.sentiment[self.label]

    def signal(self, head: str) -> float | None:
        """A moderation head's score (``p_offensive``...), ``None`` when this path has no such head."""
        scores = self.scores.get(head)
        return None if scores is None else scores[task_named(head).signal]

    @property
    def signals(self) -> dict[str, float]:
        """Every moderation head's score, by head."""
        return {head: scores[task_named(head).signal] for head, scores in self.scores.items()
                if task_named(head).moderation}

    @property
    def thresholds(self) -> dict[str, float]:
        """Each moderation head's flag threshold (chosen by its training), by head."""
        return {head: scores.threshold for head, scores in self.scores.items() if scores.threshold is not None}

    def with_route(self, path: str, language: str | None) -> Prediction:
        """This prediction as answered by encoder ``path`` for a text in ``language``."""
        return Prediction(self.scores, self.cached, self.vector, path, language)

    def to_json(self, text: str) -> dict[str, object]:
        """The CLI's JSON object: sentiment as ``label`` and ``p_*`` first, then each moderation signal's ``p_*``."""
        body: dict[str, object] = {
            "text": text,
            "label": self.label,
            "p_negative": round(self.p_negative, 6),
            "p_neutral": round(self.p_neutral, 6),
            "p_positive": round(self.p_positive, 6),
        }
        body |= {f"p_{head}": round(score, 6) for head, score in self.signals.items()}
        body["encoder"] = self.path
        body["language"] = self.language
        body["cached"] = self.cached
        return body


def predictions(
    heads: Mapping[str, LogisticHead], vectors: np.ndarray, cached: Sequence[bool], path: str = ""
) -> list[Prediction]:
    """One prediction per row of ``vectors``, each head applied to all rows at once."""
    per_head = {name: head.predict_proba(vectors).tolist() for name, head in heads.items()}
    return [
        Prediction(
            {name: Scores(heads[name].classes, tuple(rows[i]), heads[name].flag_threshold)
             for name, rows in per_head.items()},
            hit, vector, path,
        )
        for i, (hit, vector) in enumerate(zip(cached, vectors, strict=True))
    ]
