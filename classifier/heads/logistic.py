"""The logistic-regression head, stored as plain JSON (never pickle) with an integrity checksum.

A head reads one encoder's vectors and answers one task (:mod:`classifier.heads.tasks`: sentiment, or a moderation
signal) over that task's classes, calibrated by a temperature. Version 3 files name their task; version 2 files
(three-way sentiment heads) and version 1 files (binary sentiment heads with Platt calibration, e.g. heads users
trained for their own encoders) still load as sentiment heads with the same probabilities as before.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from classifier.encoders.identity import EncoderIdentity, EncoderLike
from classifier.heads.tasks import SENTIMENT, task_named

FORMAT = "moodbot-head"
VERSION = 3


class HeadError(ValueError):
    """A head file is missing, malformed, tampered with, or made for another encoder."""


@dataclass
class LogisticHead:
    """``p = softmax((standardised(x) @ weights.T + biases) / temperature)`` over ``classes``, for ``task``.

    ``weights`` is ``[len(classes), dim]``; ``classes`` must be one of the task's class lists.
    """

    encoder: EncoderIdentity
    weights: np.ndarray
    biases: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    classes: tuple[str, ...] = SENTIMENT.classes
    temperature: float = 1.0
    training: dict[str, Any] = field(default_factory=dict)
    task: str = SENTIMENT.name

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        task = task_named(self.task)
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float64)  # as loaded from JSON: same sums
        self.biases = np.asarray(self.biases, dtype=np.float64)
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.scale = np.asarray(self.scale, dtype=np.float64)
        if self.classes not in task.class_sets:
            raise ValueError(
                f"a {task.name} head's classes must be one of {[list(c) for c in task.class_sets]}, "
                f"got {list(self.classes)}"
            )
        k = len(self.classes)
        if self.weights.ndim != 2 or self.weights.shape[0] != k or self.weights.shape[1] == 0:
            raise ValueError(f"weights must be a [{k}, dim] matrix, got shape {list(self.weights.shape)}")
        if self.biases.shape != (k,):
            raise ValueError(f"biases must have {k} values, one per class")
        if not self.mean.shape == self.scale.shape == (self.dim,):
            raise ValueError("mean, scale and weights must have the same length")
        arrays = (self.weights, self.biases, self.mean, self.scale)
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise ValueError("weights, biases, mean and scale must be finite numbers")
        if np.any(self.scale <= 0):
            raise ValueError("scale values must be positive")
        self.temperature = _number(self.temperature, "temperature")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    @property
    def three_way(self) -> bool:
        """Whether a sentiment head predicts neutral (version-1 binary heads do not)."""
        return len(self.classes) == len(SENTIMENT.classes)

    @property
    def flag_threshold(self) -> float | None:
        """A moderation head's flag threshold, as its training chose it (``None`` for sentiment: guilds choose)."""
        value = self.training.get("flag_threshold")
        return float(value) if task_named(self.task).moderation and value is not None else None

    @cached_property
    def _folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Standardisation and temperature folded into the weights: one matrix product per prediction
        (``[dim, k]`` weights, ``[k]`` biases)."""
        weights = self.weights / self.scale
        biases = self.biases - weights @ self.mean
        return np.ascontiguousarray(weights.T / self.temperature), biases / self.temperature

    def decision(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated logits ``[n, len(classes)]``: ``standardised(x) @ weights.T + biases``."""
        weights, biases = self._folded
        return (np.asarray(features, dtype=np.float64) @ weights + biases) * self.temperature

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``[n, len(classes)]`` in the head's class order, for ``[n, dim]`` features."""
        weights, biases = self._folded
        logits = np.asarray(features) @ weights + biases  # float64: float32 vectors are cast inside the product
        logits -= logits.max(axis=1, keepdims=True)  # softmax without overflow
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def probabilities_for(self, features: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
        """Calibrated probabilities ``[n, len(classes)]`` in the order of ``classes``; one the head lacks is 0
        (neutral, for a binary sentiment head)."""
        return in_columns(self.predict_proba(features), self.classes, classes)

    def check_encoder(self, encoder: EncoderLike) -> None:
        """Raise :class:`HeadError` unless ``encoder`` produces the features this head was trained on."""
        theirs, ours = encoder.identity, self.encoder
        if theirs.fingerprint != ours.fingerprint:
            raise HeadError(
                f"this head was trained for encoder {ours.name!r} (pooling {ours.pooling}, "
                f"fingerprint {ours.fingerprint}) but the configured encoder is {theirs.name!r} "
                f"(pooling {theirs.pooling}, fingerprint {theirs.fingerprint}); "
                f"run `moodbot train --model {theirs.name}` to train a head for it and point MOODBOT_HEAD at the result"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content (always the current version), including the checksum."""
        body: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "task": self.task,
            "classes": list(self.classes),
            "encoder": self.encoder.to_json(),
            "feature": {"pooling": str(self.encoder.pooling), "dim": self.dim, "standardize": True},
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "biases": self.biases.tolist(),
            "calibration": {"method": "temperature", "temperature": self.temperature},
            "training": self.training,
        }
        body["checksum"] = _checksum(body)
        return body

    def save(self, path: str | Path) -> None:
        """Write the head as JSON (atomically: a crash never leaves half a file)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        temporary.replace(target)

    @classmethod
    def load(cls, path: str | Path) -> LogisticHead:
        """Read and validate a head file; any defect is a :class:`HeadError` naming the file."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except OSError as error:
            raise HeadError(f"cannot read head file {path}: {error.strerror or error}") from error
        except (ValueError, KeyError, TypeError) as error:
            raise HeadError(f"invalid head file {path}: {error}") from error

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogisticHead:
        """Validate structure, checksum, shapes and finiteness, then build the head (from version 1 or 2)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        version = data.get("version")
        if version not in (1, 2, VERSION):
            raise ValueError(f"unsupported version {version!r} (this moodbot reads versions 1 to {VERSION})")
        body = {k: v for k, v in data.items() if k != "checksum"}
        if data.get("checksum") != _checksum(body):
            raise ValueError("checksum mismatch: the file was modified after it was written")
        encoder = EncoderIdentity.from_json(data["encoder"])
        mean, scale = _array(data["mean"], "mean", 1), _array(data["scale"], "scale", 1)
        training = dict(data.get("training", {}))
        if version == 1:
            return _from_version_1(data, encoder, mean, scale, training)
        calibration = data["calibration"]
        if not isinstance(calibration, dict) or calibration.get("method") != "temperature":
            raise ValueError("calibration must be {'method': 'temperature', 'temperature': T}")
        return cls(
            encoder=encoder,
            weights=_array(data["weights"], "weights", 2),
            biases=_array(data["biases"], "biases", 1),
            mean=mean,
            scale=scale,
            classes=tuple(_names(data["classes"])),
            temperature=_number(calibration["temperature"], "temperature"),
            training=training,
            task=str(data["task"]) if version == VERSION else SENTIMENT.name,
        )


def _from_version_1(
    data: dict[str, Any], encoder: EncoderIdentity, mean: np.ndarray, scale: np.ndarray, training: dict[str, Any]
) -> LogisticHead:
    """A binary head ``p_positive = sigmoid(slope * (w.x + b) + intercept)`` as softmax over (0, that logit)."""
    if _names(data["classes"]) != ["negative", "positive"]:
        raise ValueError("a version-1 head must have the classes ['negative', 'positive']")
    weights = _array(data["weights"], "weights", 1)
    if not weights.shape == mean.shape == scale.shape:
        raise ValueError("mean, scale and weights must have the same length")
    bias = _number(data["bias"], "bias")
    slope = _number(data["calibration"]["slope"], "calibration slope")
    intercept = _number(data["calibration"]["intercept"], "calibration intercept")
    return LogisticHead(
        encoder=encoder,
        weights=np.stack([np.zeros_like(weights), slope * weights]),
        biases=np.array([0.0, slope * bias + intercept]),
        mean=mean,
        scale=scale,
        classes=("negative", "positive"),
        training=training,
    )


def in_columns(probabilities: np.ndarray, have: tuple[str, ...], want: tuple[str, ...]) -> np.ndarray:
    """``probabilities`` over classes ``have`` rearranged into the columns of ``want`` (absent classes: 0)."""
    if have == want:
        return probabilities
    out = np.zeros((len(probabilities), len(want)))
    for column, name in enumerate(have):
        if name in want:
            out[:, want.index(name)] = probabilities[:, column]
    return out


def _array(values: Any, name: str, ndim: int) -> np.ndarray:
    """JSON numbers only: a string such as "1.0" is an error, not a number to convert."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged rows
        array = np.empty(0)
    if array.dtype.kind not in "iuf":
        array = np.empty(0)
    array = array.astype(np.float64)
    if array.ndim != ndim or array.size == 0 or not np.all(np.isfinite(array)):
        shape = "a non-empty list" if ndim == 1 else "a non-empty matrix"
        raise ValueError(f"{name} must be {shape} of finite numbers")
    return array


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return float(value)


def _names(values: Any) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("classes must be a list of class names")
    return values


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
