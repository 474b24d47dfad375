"""The logistic-regression head, stored as plain JSON (never pickle) with an integrity checksum."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from classifier.features import EncoderLike

FORMAT = "moodbot-head"
VERSION = 1
CLASSES = ("negative", "positive")
DEFAULT_HEAD_PATH = Path(__file__).with_name("heads") / "minilm-l6-sst2-tweets.json"


class HeadError(ValueError):
    """A head file is missing, malformed, tampered with, or made for another encoder."""


@dataclass(frozen=True)
class EncoderSpec:
    """What a head needs from its encoder: the model, its weights, the pooling, and their fingerprint."""

    name: str
    weights: str
    pooling: str
    max_length: int
    fingerprint: str

    @classmethod
    def of(cls, encoder: EncoderLike) -> EncoderSpec:
        return cls(encoder.name, encoder.weights_id, str(encoder.pooling), encoder.max_length, encoder.fingerprint)


@dataclass
class LogisticHead:
    """``p_positive = sigmoid(slope * (standardised(x) @ weights + bias) + intercept)``."""

    encoder: EncoderSpec
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    calibration_slope: float = 1.0
    calibration_intercept: float = 0.0
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    @cached_property
    def _folded(self) -> tuple[np.ndarray, float]:
        """The standardisation folded into the weights: one dot product per prediction."""
        weights = self.weights / self.scale
        return weights, float(self.bias - self.mean @ weights)

    def decision(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated logits for ``[n, dim]`` features: ``((x - mean) / scale) @ weights + bias``."""
        weights, bias = self._folded
        return np.asarray(features, dtype=np.float64) @ weights + bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Calibrated probability of the positive class for each row."""
        logits = self.calibration_slope * self.decision(features) + self.calibration_intercept
        return 0.5 + 0.5 * np.tanh(0.5 * logits)  # the logistic function, without overflow

    def check_encoder(self, encoder: EncoderLike) -> None:
        """Raise :class:`HeadError` unless ``encoder`` produces the features this head was trained on."""
        if encoder.fingerprint != self.encoder.fingerprint:
            raise HeadError(
                f"this head was trained for encoder {self.encoder.name!r} (pooling {self.encoder.pooling}, "
                f"fingerprint {self.encoder.fingerprint}) but the configured encoder is {encoder.name!r} "
                f"(pooling {encoder.pooling}, fingerprint {encoder.fingerprint}); "
                f"run `moodbot train --model {encoder.name}` to train a head for it and point MOODBOT_HEAD at the result"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content, including the checksum."""
        body: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "classes": list(CLASSES),
            "encoder": self.encoder.__dict__,
            "feature": {"pooling": self.encoder.pooling, "dim": self.dim, "standardize": True},
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": float(self.bias),
            "calibration": {"method": "platt", "slope": float(self.calibration_slope), "intercept": float(self.calibration_intercept)},
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
        """Validate structure, checksum, shapes and finiteness, then build the head."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported version {data.get('version')!r} (this moodbot reads version {VERSION})")
        body = {k: v for k, v in data.items() if k != "checksum"}
        if data.get("checksum") != _checksum(body):
            raise ValueError("checksum mismatch: the file was modified after it was written")
        arrays = {name: _vector(data[name], name) for name in ("mean", "scale", "weights")}
        if len({a.shape for a in arrays.values()}) != 1:
            raise ValueError("mean, scale and weights must have the same length")
        if np.any(arrays["scale"] <= 0):
            raise ValueError("scale values must be positive")
        numbers = (data["bias"], data["calibration"]["slope"], data["calibration"]["intercept"])
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in numbers):
            raise ValueError("bias and calibration must be finite numbers")
        return cls(
            encoder=EncoderSpec(**data["encoder"]),
            weights=arrays["weights"],
            bias=float(data["bias"]),
            mean=arrays["mean"],
            scale=arrays["scale"],
            calibration_slope=float(data["calibration"]["slope"]),
            calibration_intercept=float(data["calibration"]["intercept"]),
            training=dict(data.get("training", {})),
        )


def _vector(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a non-empty list of finite numbers")
    return array


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
