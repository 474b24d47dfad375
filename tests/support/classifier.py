"""Real classifiers for tests: a tiny random-init model folder, and a classifier with a seam to hold or fail batches.

The tiny encoder is a random-init DistilBERT (dim 32, 2 layers) saved with ``save_pretrained`` next to the real
uncased WordPiece vocabulary, so that ``Encoder.load(folder)`` loads it exactly as a user's local model folder.
"""

from __future__ import annotations

import threading
from pathlib import Path

from classifier.encoders.identity import EncoderLike
from classifier.inference.classifier import Classifier


def build_tiny_model(folder: Path, seed: int) -> Path:
    """A random-init tiny DistilBERT plus the real uncased tokenizer, saved as a local model folder."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    from classifier.encoders.bundled import minilm_model_path

    torch.manual_seed(seed)
    config = DistilBertConfig(
        dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=30522, max_position_embeddings=512
    )
    DistilBertModel(config).save_pretrained(folder)  # safetensors
    AutoTokenizer.from_pretrained(str(minilm_model_path())).save_pretrained(folder)
    return folder


class InstrumentedEncoder:
    """A real encoder with a seam for tests: records each model batch, can hold it at a gate, can fail it.

    ``gate``: when set, ``embed`` signals ``entered`` and then waits for the gate (the model thread blocks,
    the event loop does not). ``fail_marker``: a batch holding a text that contains it raises (fault injection,
    as a CUDA out-of-memory error would).
    """

    def __init__(self, encoder: EncoderLike, fail_marker: str | None = None) -> None:
        self.wrapped = encoder
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        self.fail_marker = fail_marker

    def __getattr__(self, name: str):  # identity, dim, cache_namespace, describe, embed_calls...
        return getattr(self.wrapped, name)

    def embed(self, texts):
        self.batches.append(list(texts))
        self.entered.set()
        if self.gate is not None and not self.gate.wait(timeout=60):
            raise TimeoutError("test gate never opened")
        if self.fail_marker is not None and any(self.fail_marker in text for text in texts):
            raise RuntimeError(f"injected fault in a batch of {len(texts)}")
        return self.wrapped.embed(texts)


class InstrumentedClassifier(Classifier):
    """A real classifier whose encoder is an :class:`InstrumentedEncoder` (every model call passes the seam)."""

    def __init__(self, encoder: EncoderLike, heads, cache, path: str = "", fail_marker: str | None = None) -> None:
        super().__init__(InstrumentedEncoder(encoder, fail_marker), heads, cache, path)

    @property
    def batches(self) -> list[list[str]]:
        return self.encoder.batches

    @property
    def entered(self) -> threading.Event:
        return self.encoder.entered

    @property
    def gate(self) -> threading.Event | None:
        return self.encoder.gate

    @gate.setter
    def gate(self, value: threading.Event | None) -> None:
        self.encoder.gate = value
