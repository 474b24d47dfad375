"""Encoder and head as a replica of ``moodbot serve`` runs them, without a cache: the bot processes own the caches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from classifier.config import ClassifierConfig, WorkerConfig
from classifier.heads.logistic import LogisticHead
from classifier.inference.prediction import predictions
from classifier.serving.protocol import ServiceInfo, encode_vector

if TYPE_CHECKING:
    from classifier.encoders.hf import Encoder


class ServedModel:
    """Texts in, vectors and the head's probabilities out, for the JSON of an embed response."""

    def __init__(self, encoder: Encoder, head: LogisticHead, info: ServiceInfo) -> None:
        head.check_encoder(encoder)
        self.encoder = encoder
        self.head = head
        self.info = info

    @classmethod
    def load(cls, config: ClassifierConfig, batching: WorkerConfig) -> ServedModel:
        """The head, then the encoder with the head's pooling, as ``SentimentClassifier.load`` pairs them."""
        from classifier.encoders.hf import Encoder

        head = LogisticHead.load(config.head_path)
        encoder = Encoder.load(config.model, pooling=head.encoder.pooling, device=config.device,
                               quantize=config.quantize, precision=config.precision,
                               max_batch_tokens=config.max_batch_tokens, models_dir=config.models_dir)
        head_id = f"{config.head_path.name} {head.to_dict()['checksum']}"
        return cls(encoder, head, ServiceInfo(encoder.identity, encoder.dim, encoder.mode, head_id,
                                              batching.max_batch, batching.max_wait_ms))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, dim]`` float32 vectors (the encoder's own batching applies)."""
        return self.encoder.embed(texts)

    def results(self, vectors: np.ndarray) -> list[dict[str, object]]:
        """One JSON object per vector: the vector itself and the head's prediction."""
        if not len(vectors):
            return []
        found = predictions(self.head.predict_proba(vectors), [False] * len(vectors), vectors)
        return [{"vector": encode_vector(v), "label": p.label, "p_negative": p.p_negative, "p_neutral": p.p_neutral,
                 "p_positive": p.p_positive} for v, p in zip(vectors, found, strict=True)]
