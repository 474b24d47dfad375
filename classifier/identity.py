"""What identifies an encoder's features, known without importing torch or loading the model.

:class:`EncoderIdentity` is the one description of an encoder's features: a head records it (and is
refused by any other encoder), the cache namespaces vectors by it (plus the numeric mode, since
int8 and fp16 vectors differ slightly from fp32). For the bundled model and local folders it comes
from the files on disk, so a run whose texts are all cached never has to load the model.
:class:`EncoderLike` is "something that embeds": the loaded :class:`~classifier.encoder.Encoder`
and the :class:`~classifier.lazy.LazyEncoder` that stands in for it until first use.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from classifier.bundled import BUNDLED_NAMES, BUNDLED_SHA256, bundled_model_path, file_sha256
from classifier.pooling import Pooling

if TYPE_CHECKING:
    import numpy as np

#: The numeric modes of an encoder: fp32 on CPU, fp16 on CUDA, int8 for a dynamically quantized CPU model.
MODES = ("fp32", "fp16", "int8")


class EncoderError(RuntimeError):
    """The encoder could not be loaded; the message says what to do."""


@dataclass(frozen=True)
class EncoderIdentity:
    """Model name, weights, pooling and maximum length: two encoders with equal identities produce the same features."""

    name: str
    weights_id: str
    pooling: Pooling
    max_length: int

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the identity: ties heads to encoders and namespaces the cache."""
        identity = {
            "model": self.name,
            "weights": self.weights_id,
            "pooling": str(self.pooling),
            "max_length": self.max_length,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]

    def cache_namespace(self, mode: str) -> str:
        """The cache namespace of these features in numeric ``mode`` (see :data:`MODES`)."""
        return f"{self.fingerprint}:{mode}"

    def describe(self, dim: int, mode: str) -> str:
        """One line for logs and reports."""
        return f"{self.name} [{self.pooling}, {dim}-dim, {mode}, {'cuda' if mode == 'fp16' else 'cpu'}]"

    def to_json(self) -> dict[str, Any]:
        """The ``encoder`` section of a head file (its keys and order are part of the file format)."""
        return {
            "name": self.name, "weights": self.weights_id, "pooling": str(self.pooling),
            "max_length": self.max_length, "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EncoderIdentity:
        """Read a head file's ``encoder`` section; its recorded fingerprint must be this identity's."""
        if not isinstance(data, Mapping) or set(data) != {"name", "weights", "pooling", "max_length", "fingerprint"}:
            raise ValueError("encoder must hold exactly name, weights, pooling, max_length and fingerprint")
        identity = cls(
            str(data["name"]), str(data["weights"]), Pooling.parse(str(data["pooling"])), int(data["max_length"])
        )
        if identity.fingerprint != data["fingerprint"]:
            raise ValueError(
                f"encoder fingerprint {data['fingerprint']!r} does not match its name, weights, pooling and max_length"
            )
        return identity


class EncoderLike(Protocol):
    """Something that embeds: the identity of its features, their width, its cache namespace, and ``embed``."""

    @property
    def identity(self) -> EncoderIdentity: ...

    @property
    def dim(self) -> int: ...

    @property
    def cache_namespace(self) -> str: ...

    def describe(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are loaded from, and its weights' id when they are on disk (``""`` for a hub name)."""

    name: str
    load_from: str
    weights_id: str

    @property
    def is_local(self) -> bool:
        return Path(self.load_from).is_dir()


def resolve_model(name_or_path: str) -> ModelSource:
    """Map the bundled model's names to its verified folder; local folders get their weights hashed."""
    if name_or_path in BUNDLED_NAMES:
        return ModelSource(BUNDLED_NAMES[0], str(bundled_model_path()), f"sha256:{BUNDLED_SHA256}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            raise EncoderError(
                f"no *.safetensors weights in {path}: save the model with save_pretrained(safe_serialization=True)"
            )
        digest = hashlib.sha256("".join(file_sha256(w) for w in weights).encode()).hexdigest()
        return ModelSource(path.resolve().name, str(path.resolve()), f"sha256:{digest}")
    return ModelSource(name_or_path, name_or_path, "")


def local_identity(source: ModelSource, pooling: Pooling) -> tuple[EncoderIdentity, int]:
    """The identity and hidden size of a local model folder, read from ``config.json`` and the tokenizer's files."""
    folder = Path(source.load_from)
    config = json.loads((folder / "config.json").read_text())
    tokenizer_file = folder / "tokenizer_config.json"
    tokenizer_limit = (
        json.loads(tokenizer_file.read_text()).get("model_max_length") if tokenizer_file.is_file() else None
    )
    hidden_size = config.get("hidden_size", config.get("dim"))  # BERT-style or DistilBERT-style config
    max_length = max_length_limits(str(folder), config.get("max_position_embeddings", 512), tokenizer_limit)
    return EncoderIdentity(source.name, source.weights_id, pooling, max_length), int(hidden_size)


def max_length_limits(folder: str, position_limit: int, tokenizer_limit: int | None) -> int:
    """The sentence-transformers ``max_seq_length`` if present, else the tokenizer and position limits (at most 512)."""
    limits = [position_limit, 512] + ([tokenizer_limit] if tokenizer_limit else [])
    st_config = Path(folder) / "sentence_bert_config.json"
    if st_config.is_file():
        limits.append(int(json.loads(st_config.read_text()).get("max_seq_length", 512)))
    return int(min(limits))


def cuda_available() -> bool:
    """Whether torch would find a CUDA device (on Linux without NVIDIA device files: no, without importing torch)."""
    if sys.platform.startswith("linux") and not Path("/dev/nvidiactl").exists():
        return False
    import torch

    return torch.cuda.is_available()


def numeric_mode(device: str, quantize: str) -> str:
    """``fp16`` on CUDA, ``int8`` for a quantized CPU model, else ``fp32``."""
    if device == "cuda" or (device == "auto" and cuda_available()):
        return "fp16"
    return "int8" if quantize == "int8" else "fp32"
