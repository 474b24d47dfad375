"""Which scores flag a message: the flag policy and the reasons it gives.

Two kinds of signal flag. ``harmful``: any moderation head (offensive, hate, threat, self-harm...) at or above its
own threshold, which its training chose and its file records. ``negative``: sentiment ``p_negative`` at or above the
guild's flag threshold (strongly negative, the only signal before moderation heads). The default flags on either,
so nothing flagged before is lost; a server may keep only ``harmful``. Kept free of numpy: the bot's settings and
store import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from classifier.heads.tasks import SENTIMENT, task_named

HARMFUL, NEGATIVE = "harmful", "negative"
SIGNALS = (HARMFUL, NEGATIVE)
#: ``MOODBOT_FLAG_ON`` and ``/moodbot config flag`` unless set.
DEFAULT_FLAG_ON = frozenset(SIGNALS)
#: ``p_negative`` at or above which a message is strongly negative unless a guild chose otherwise.
DEFAULT_FLAG_THRESHOLD = 0.9
#: The thresholds a guild may choose: below 0.5 a flagged message could be one the classifier calls positive.
FLAG_THRESHOLD_RANGE = (0.5, 1.0)


class ScoredText(Protocol):
    """What the policy reads of a prediction: each head's scores, and each moderation head's own threshold."""

    @property
    def signals(self) -> dict[str, float]: ...

    @property
    def thresholds(self) -> dict[str, float]: ...

    @property
    def p_negative(self) -> float: ...


@dataclass(frozen=True)
class Reason:
    """One signal that flagged a message: the head, the label it scored and the score."""

    head: str
    label: str
    score: float

    @property
    def title(self) -> str:
        """How a card names it, e.g. ``Offensive 0.97`` or ``Negative 0.95``."""
        name = "Negative" if self.head == SENTIMENT.name else task_named(self.head).title
        return f"{name} {self.score:.2f}"

    def to_json(self) -> dict[str, object]:
        return {"head": self.head, "label": self.label, "score": round(self.score, 6)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Reason:
        return cls(str(data["head"]), str(data["label"]), float(data["score"]))  # type: ignore[arg-type]


def parse_flag_on(value: str | Iterable[str]) -> frozenset[str]:
    """``harmful``, ``negative`` or both (``harmful,negative``); anything else is a ``ValueError`` saying so."""
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    chosen = frozenset(name for name in names if name)
    unknown = chosen - set(SIGNALS)
    if unknown or not chosen:
        raise ValueError(f"flag signals must be a comma-separated choice of {', '.join(SIGNALS)}, not {value!r}")
    return chosen


def flag_reasons(
    prediction: ScoredText, flag_on: frozenset[str] = DEFAULT_FLAG_ON, threshold: float = DEFAULT_FLAG_THRESHOLD
) -> list[Reason]:
    """The reasons ``prediction`` is flagged under this policy, strongest first; empty: not flagged."""
    reasons = []
    if HARMFUL in flag_on:
        thresholds = prediction.thresholds
        reasons += [
            Reason(head, task_named(head).signal, score)
            for head, score in prediction.signals.items()
            if head in thresholds and score >= thresholds[head]
        ]
    if NEGATIVE in flag_on and prediction.p_negative >= threshold:
        reasons.append(Reason(SENTIMENT.name, "negative", prediction.p_negative))
    return sorted(reasons, key=lambda reason: -reason.score)
