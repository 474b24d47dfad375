"""What identifies an encoder's features, known without importing torch or loading the model.

The fingerprint (model, weights, pooling, maximum length) ties heads to encoders; the cache
namespace adds the numeric mode. For the bundled model and local folders both come from the
files on disk, so a run whose texts are all cached never has to load the model.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from classifier.bundled import BUNDLED_NAMES, BUNDLED_SHA256, bundled_model_path, file_sha256
from classifier.pooling import Pooling


class EncoderError(RuntimeError):
    """The encoder could not be loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model is loaded from and what identifies its weights."""

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
            raise EncoderError(f"no *.safetensors weights in {path}: save the model with save_pretrained(safe_serialization=True)")
        digest = hashlib.sha256("".join(file_sha256(w) for w in weights).encode()).hexdigest()
        return ModelSource(path.resolve().name, str(path.resolve()), f"sha256:{digest}")
    return ModelSource(name_or_path, name_or_path, "")


def fingerprint(name: str, weights_id: str, pooling: Pooling, max_length: int) -> str:
    """The encoder fingerprint: a hash of model identity, weights, pooling and maximum length."""
    identity = {"model": name, "weights": weights_id, "pooling": str(pooling), "max_length": max_length}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def cuda_available() -> bool:
    """Whether torch would find a CUDA device; on Linux without NVIDIA device files, answered without importing torch."""
    if sys.platform.startswith("linux") and not Path("/dev/nvidiactl").exists():
        return False
    import torch

    return torch.cuda.is_available()


def numeric_mode(device: str, quantize: str) -> str:
    """``fp16`` on CUDA, ``int8`` for a quantized CPU model, else ``fp32``."""
    if device == "cuda" or (device == "auto" and cuda_available()):
        return "fp16"
    return "int8" if quantize == "int8" else "fp32"


def max_length_limits(folder: str, position_limit: int, tokenizer_limit: int | None) -> int:
    """The sentence-transformers ``max_seq_length`` when present, else the tokenizer and position limits (at most 512)."""
    limits = [position_limit, 512] + ([tokenizer_limit] if tokenizer_limit else [])
    st_config = Path(folder) / "sentence_bert_config.json"
    if st_config.is_file():
        limits.append(int(json.loads(st_config.read_text()).get("max_seq_length", 512)))
    return int(min(limits))


@dataclass(frozen=True)
class EncoderIdentity:
    """Name, weights, pooling, maximum length, width and numeric mode of an encoder."""

    name: str
    weights_id: str
    pooling: Pooling
    max_length: int
    hidden_size: int
    mode: str

    @classmethod
    def from_folder(cls, source: ModelSource, pooling: Pooling, device: str, quantize: str) -> EncoderIdentity:
        """Read ``config.json`` and ``tokenizer_config.json`` of a local model folder."""
        folder = Path(source.load_from)
        config = json.loads((folder / "config.json").read_text())
        tokenizer_file = folder / "tokenizer_config.json"
        tokenizer_limit = json.loads(tokenizer_file.read_text()).get("model_max_length") if tokenizer_file.is_file() else None
        hidden_size = config.get("hidden_size", config.get("dim"))  # BERT-style or DistilBERT-style config
        positions = config.get("max_position_embeddings", 512)
        return cls(source.name, source.weights_id, pooling, max_length_limits(str(folder), positions, tokenizer_limit),
                   int(hidden_size), numeric_mode(device, quantize))

    @property
    def dim(self) -> int:
        return self.pooling.output_dim(self.hidden_size)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.name, self.weights_id, self.pooling, self.max_length)

    @property
    def cache_namespace(self) -> str:
        return f"{self.fingerprint}:{self.mode}"

    def describe(self) -> str:
        """One line for logs and reports."""
        return f"{self.name} [{self.pooling}, {self.dim}-dim, {self.mode}, {'cuda' if self.mode == 'fp16' else 'cpu'}]"
