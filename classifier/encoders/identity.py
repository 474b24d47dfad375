"""What identifies an encoder's features, known without importing torch or loading the model.

:class:`EncoderIdentity` is the one description of an encoder's features: a head records it (and is
refused by any other encoder), the cache namespaces vectors by it plus the numeric mode (bf16, int8
and fp16 vectors differ slightly from fp32, yet any head of the identity takes them: the same feature).
For the bundled models and local folders it comes from the files on disk, so a run whose texts are all
cached never has to load the model.
:class:`EncoderLike` is "something that embeds": the loaded :class:`~classifier.encoders.hf.Encoder`
and the :class:`~classifier.encoders.lazy.LazyEncoder` that stands in for it until first use.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from classifier.encoders.bundled import DEFAULT_MODELS_DIR, bundled_encoder, file_sha256
from classifier.encoders.pooling import Pooling

if TYPE_CHECKING:
    import numpy as np

#: The numeric modes of an encoder: fp32 or bf16 on CPU, fp16 on CUDA, int8 for a dynamically quantized CPU model.
MODES = ("fp32", "bf16", "fp16", "int8")
#: What ``MOODBOT_PRECISION`` may ask of a CPU; ``auto`` is bf16 where the CPU computes it natively.
PRECISIONS = ("auto", "fp32", "bf16")
#: ``/proc/cpuinfo`` flags of native bf16 matrix products (AVX-512 BF16 dot products, AMX tiles).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


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


def resolve_model(name_or_path: str, models_dir: Path = DEFAULT_MODELS_DIR) -> ModelSource:
    """Map a bundled encoder's names to its verified folder (split models are rebuilt in ``models_dir`` once);
    local folders get their weights hashed."""
    bundled = bundled_encoder(name_or_path)
    if bundled is not None:
        return ModelSource(bundled.name, str(bundled.folder(models_dir)), bundled.weights_id)
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


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (read from ``/proc/cpuinfo``: no torch import)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: bf16 only when asked for
        return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return not BF16_CPU_FLAGS.isdisjoint(flags)


def numeric_mode(device: str = "auto", quantize: str = "none", precision: str = "auto") -> str:
    """The one decision of an encoder's numeric mode (see :data:`MODES`): ``fp16`` on CUDA; on CPU ``int8`` for a
    quantized model, else ``precision``, where ``auto`` is ``bf16`` on a CPU with native bf16 and ``fp32`` elsewhere.
    """
    if precision not in PRECISIONS:
        raise EncoderError(f"unknown precision {precision!r}: expected one of {'|'.join(PRECISIONS)}")
    if device == "cuda" or (device == "auto" and cuda_available()):
        return "fp16"
    if quantize == "int8":
        if precision == "bf16":
            raise EncoderError("int8 quantization runs fp32 activations: it cannot be combined with bf16 precision")
        return "int8"
    if precision == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return precision
