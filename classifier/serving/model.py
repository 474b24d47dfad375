"""The encoder as a replica of ``moodbot serve`` runs it, without a cache: the bot processes own the caches and
apply the heads (an embedding service: every head of the encoder's features reads the same vectors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from classifier.config import ClassifierConfig, WorkerConfig
from classifier.heads.logistic import LogisticHead
from classifier.serving.protocol import ServiceInfo, encode_vector

if TYPE_CHECKING:
    from classifier.encoders.hf import Encoder


class ServedModel:
    """Texts in, vectors out, for the JSON of an embed response; the head only names the features served."""

    def __init__(self, encoder: Encoder, head: LogisticHead, info: ServiceInfo) -> None:
        head.check_encoder(encoder)
        self.encoder = encoder
        self.head = head
        self.info = info

    @classmethod
    def load_all(cls, config: ClassifierConfig, batching: WorkerConfig) -> dict[str, ServedModel]:
        """Every path's encoder (one, or the English and the multilingual one), by encoder fingerprint."""
        english, multilingual = config.path_configs()
        models = [cls.load(path, batching) for path in (english, multilingual) if path is not None]
        return {model.encoder.fingerprint: model for model in models}

    @classmethod
    def load(cls, config: ClassifierConfig, batching: WorkerConfig) -> ServedModel:
        """The head, then the encoder with the head's pooling, as ``Classifier.load`` pairs them."""
        from classifier.encoders.hf import Encoder

        head = LogisticHead.load(config.head_path)
        encoder = Encoder.configured(config, head.encoder.pooling)
        head_id = f"{config.head_path.name} {head.to_dict()['checksum']}"
        return cls(encoder, head, ServiceInfo(encoder.identity, encoder.dim, encoder.mode, head_id,
                                              batching.max_batch, batching.max_wait_ms))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, dim]`` float32 vectors (the encoder's own batching applies)."""
        return self.encoder.embed(texts)

    def results(self, vectors: np.ndarray) -> list[dict[str, object]]:
        """One JSON object per vector."""
        return [{"vector": encode_vector(v)} for v in vectors]
