"""Real classifiers for tests: a tiny random-init model folder, and a classifier with a seam to hold or fail batches.

The tiny encoder is a random-init DistilBERT (dim 32, 2 layers) saved with ``save_pretrained`` next to the real
uncased WordPiece vocabulary, so that ``Encoder.load(folder)`` loads it exactly as a user's local model folder.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from classifier.encoders.identity import EncoderLike
from classifier.heads.logistic import LogisticHead
from classifier.heads.tasks import SENTIMENT
from classifier.inference.classifier import Classifier
from classifier.inference.prediction import Prediction, Scores
from classifier.text import prepare_text

#: How far a prediction's probability may be from the one computed alone: batch padding and Serve's float32 JSON
#: round trip move the tiny model's probabilities by ~1e-7; the CLI prints 6 decimals.
ALONE_TOLERANCE = 1e-5


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


def alone(encoder: EncoderLike, head: LogisticHead, text: str) -> Scores:
    """``head``'s sentiment scores for ``text`` (raw: it is prepared here, as the worker and the CLI prepare it) when
    the model reads it on its own: a batch of one, no cache, no worker, no service.

    What every prediction of that text must show, however it was batched, de-duplicated, cached, served or printed;
    pass the plain encoder (``tiny_encoder``), not an :class:`InstrumentedEncoder`, whose batches a test counts.
    """
    probabilities = head.probabilities_for(encoder.embed([prepare_text(text)]), SENTIMENT.classes)[0]
    return Scores(SENTIMENT.classes, tuple(float(p) for p in probabilities))


def assert_as_alone(
    predictions: Sequence[Prediction | Mapping[str, object]], texts: Sequence[str], encoder: EncoderLike,
    head: LogisticHead,
) -> None:
    """Each prediction (a :class:`Prediction`, or a CLI JSON object) is its own text's prediction computed
    :func:`alone`: the same probabilities, which sum to 1, and so the same label, their argmax.

    A caller handed another caller's result, a vector cached under the wrong text or a garbled service answer fails
    here; the tiny model's texts differ by ~1e-3 in probability, 100 times the tolerance.
    """
    assert len(predictions) == len(texts)
    for prediction, text in zip(predictions, texts, strict=True):
        expected = alone(encoder, head, text)
        if isinstance(prediction, Prediction):
            label, got = prediction.label, [prediction.sentiment[c] for c in SENTIMENT.classes]
        else:
            label, got = prediction["label"], [float(prediction[f"p_{c}"]) for c in SENTIMENT.classes]  # type: ignore[arg-type]
        assert math.isclose(sum(got), 1.0, abs_tol=ALONE_TOLERANCE), (text, got)
        assert label == SENTIMENT.classes[int(np.argmax(got))], (text, label, got)
        assert np.allclose(got, expected.probabilities, rtol=0, atol=ALONE_TOLERANCE), (text, got, expected)
        assert label == expected.label, (text, label, expected)
