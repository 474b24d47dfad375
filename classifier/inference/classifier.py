"""Encoder + cache + head: the synchronous classification path shared by the CLI and the worker."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cache import EmbeddingCache
from classifier.config import ClassifierConfig
from classifier.encoders.identity import EncoderLike, local_identity, resolve_model
from classifier.encoders.lazy import LazyEncoder
from classifier.heads.logistic import LogisticHead
from classifier.inference.embeddings import CachedEncoder
from classifier.inference.prediction import Prediction, predictions

if TYPE_CHECKING:
    from classifier.encoders.hf import Encoder

log = logging.getLogger(__name__)


class SentimentClassifier(CachedEncoder):
    """Classifies cleaned texts (see :func:`classifier.text.prepare_text`), reading and filling the cache."""

    def __init__(self, encoder: EncoderLike, head: LogisticHead, cache: EmbeddingCache) -> None:
        head.check_encoder(encoder)
        super().__init__(encoder, cache)
        self.head = head

    @classmethod
    def load(cls, config: ClassifierConfig) -> SentimentClassifier:
        """Load the head, then the encoder with the head's pooling, then open the cache in its namespace.

        For the bundled model and local folders the model itself loads on first use (see :class:`LazyEncoder`);
        with ``inference_url`` it runs in ``moodbot serve`` and this process never imports torch.
        """
        head = LogisticHead.load(config.head_path)
        if config.inference_url:
            from classifier.serving.client import RemoteEncoder

            encoder: EncoderLike = RemoteEncoder(config.inference_url, config.inference_timeout_s)
        else:
            encoder = _local_encoder(config, head)
        cache = EmbeddingCache(config.cache_dir, encoder.cache_namespace, config.cache_size_mb, dim=encoder.dim)
        log.info("classifier ready: %s, head %s", encoder.describe(), config.head_path)
        return cls(encoder, head, cache)

    def close(self) -> None:
        """Close the cache and, for a remote encoder, its connections."""
        super().close()
        close_encoder = getattr(self.encoder, "close", None)
        if close_encoder is not None:
            close_encoder()

    def warm_up(self) -> None:
        """Load the model now and run it once, so that the first real message is not the slow one."""
        self.embed(["warm-up"])

    def predict_vectors(self, vectors: np.ndarray, cached: Sequence[bool]) -> list[Prediction]:
        """Apply the head to precomputed vectors."""
        if not len(vectors):
            return []
        return predictions(self.head.predict_proba(vectors), cached, vectors)

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions for cleaned texts."""
        vectors, cached = self.vectors(texts)
        return self.predict_vectors(vectors, cached)


def _local_encoder(config: ClassifierConfig, head: LogisticHead) -> EncoderLike:
    """The configured model with the head's pooling: lazily loaded for the bundled model and local folders."""
    pooling = head.encoder.pooling
    source = resolve_model(config.model, config.models_dir)

    def load_encoder() -> Encoder:  # torch and transformers are imported only here
        from classifier.encoders.hf import Encoder

        return Encoder.load(
            config.model, pooling=pooling, device=config.device, quantize=config.quantize,
            precision=config.precision, max_batch_tokens=config.max_batch_tokens, source=source,
        )

    if source.is_local:
        identity, hidden_size = local_identity(source, pooling)
        return LazyEncoder(identity, pooling.output_dim(hidden_size), config.numeric_mode, load_encoder)
    return load_encoder()
