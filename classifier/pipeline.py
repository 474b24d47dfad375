"""Encoder + cache + head: the synchronous classification path shared by the CLI and the worker."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cache import EmbeddingCache
from classifier.features import CachedEncoder, EncoderLike
from classifier.head import CLASSES, DEFAULT_HEAD_PATH, LogisticHead
from classifier.identity import EncoderIdentity, resolve_model
from classifier.lazy import LazyEncoder
from classifier.pooling import Pooling
from classifier.prediction import Prediction

if TYPE_CHECKING:
    from classifier.encoder import Encoder

log = logging.getLogger(__name__)


class SentimentClassifier(CachedEncoder):
    """Classifies cleaned texts (see :func:`classifier.text.prepare_text`), reading and filling the cache."""

    def __init__(self, encoder: EncoderLike, head: LogisticHead, cache: EmbeddingCache) -> None:
        head.check_encoder(encoder)
        super().__init__(encoder, cache)
        self.head = head

    @classmethod
    def load(
        cls,
        model: str,
        head_path: Path | None,
        cache_dir: Path,
        *,
        cache_size_mb: int = 512,
        device: str = "auto",
        quantize: str = "none",
        max_batch_tokens: int = 8192,
    ) -> SentimentClassifier:
        """Load the head, then the encoder with the head's pooling, then open the cache in its namespace.

        For the bundled model and local folders the model itself loads on first use (see :class:`LazyEncoder`).
        """
        head = LogisticHead.load(head_path or DEFAULT_HEAD_PATH)
        pooling = Pooling.parse(head.encoder.pooling)

        source = resolve_model(model)

        def load_encoder() -> Encoder:  # torch and transformers are imported only here
            from classifier.encoder import Encoder

            return Encoder.load(model, pooling=pooling, device=device, quantize=quantize, max_batch_tokens=max_batch_tokens, source=source)

        encoder = LazyEncoder(EncoderIdentity.from_folder(source, pooling, device, quantize), load_encoder) if source.is_local else load_encoder()
        cache = EmbeddingCache(cache_dir, encoder.cache_namespace, cache_size_mb, dim=encoder.dim)
        log.info("classifier ready: %s, head %s", encoder.describe(), head_path or DEFAULT_HEAD_PATH)
        return cls(encoder, head, cache)

    def warm_up(self) -> None:
        """Load the model now and run it once, so that the first real message is not the slow one."""
        self.embed(["warm-up"])

    def predict_vectors(self, vectors: np.ndarray, cached: Sequence[bool]) -> list[Prediction]:
        """Apply the head to precomputed vectors."""
        probabilities = self.head.predict_proba(vectors) if len(vectors) else []
        return [Prediction(CLASSES[int(p >= 0.5)], float(p), hit, vector) for p, hit, vector in zip(probabilities, cached, vectors)]

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions for cleaned texts."""
        vectors, cached = self.vectors(texts)
        return self.predict_vectors(vectors, cached)
