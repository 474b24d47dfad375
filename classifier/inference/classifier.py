"""One encoder path: an encoder's cached embeddings and the heads that read its vectors.

The synchronous classification path of the CLI, and what the batching worker runs per path. Composition, not
inheritance: the embeddings (cache first) make vectors, the heads score vectors, and the worker, which has cache
tiers of its own, combines the two.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from cache import EmbeddingCache
from classifier.config import ClassifierConfig
from classifier.encoders.identity import EncoderLike, local_identity, resolve_model
from classifier.encoders.lazy import LazyEncoder
from classifier.heads.logistic import HeadError, LogisticHead
from classifier.heads.tasks import SENTIMENT
from classifier.inference.embeddings import CachedEncoder
from classifier.inference.prediction import Prediction, predictions

if TYPE_CHECKING:
    from classifier.encoders.hf import Encoder

log = logging.getLogger(__name__)


def by_task(*heads: LogisticHead) -> dict[str, LogisticHead]:
    """Heads keyed by their task; two heads for one task are an error."""
    found: dict[str, LogisticHead] = {}
    for head in heads:
        if head.task in found:
            raise HeadError(f"two {head.task} heads for one encoder")
        found[head.task] = head
    return found


class Classifier:
    """Classifies cleaned texts (see :func:`classifier.text.prepare_text`) with every head of one encoder.

    ``heads`` must hold a sentiment head; each head must have been trained on ``encoder``'s features.
    ``path``: the name predictions report as the encoder that answered.
    """

    def __init__(
        self, encoder: EncoderLike, heads: Mapping[str, LogisticHead], cache: EmbeddingCache, path: str = ""
    ) -> None:
        if SENTIMENT.name not in heads:
            raise HeadError("a classifier needs a sentiment head")
        for head in heads.values():
            head.check_encoder(encoder)
        self.embeddings = CachedEncoder(encoder, cache)
        self.heads = dict(heads)
        self.path = path

    @property
    def encoder(self) -> EncoderLike:
        return self.embeddings.encoder

    @property
    def cache(self) -> EmbeddingCache:
        return self.embeddings.cache

    @property
    def head(self) -> LogisticHead:
        """The sentiment head."""
        return self.heads[SENTIMENT.name]

    @classmethod
    def load(cls, config: ClassifierConfig) -> Classifier:
        """Load the heads, then the encoder with their pooling, then open the cache in its namespace.

        For the bundled model and local folders the model itself loads on first use (see :class:`LazyEncoder`);
        with ``inference_url`` it runs in ``moodbot serve`` and this process never imports torch.
        """
        heads = load_heads(config)
        head = heads[SENTIMENT.name]
        if config.inference_url:
            from classifier.serving.client import RemoteEncoder

            encoder: EncoderLike = RemoteEncoder(
                config.inference_url, config.inference_timeout_s, head.encoder.fingerprint
            )
        else:
            encoder = local_encoder(config, head)
        cache = EmbeddingCache(config.cache_dir, encoder.cache_namespace, config.cache_size_mb, dim=encoder.dim)
        log.info("classifier ready: %s, heads %s", encoder.describe(), ", ".join(sorted(heads)))
        return cls(encoder, heads, cache, config.path_name)

    def close(self) -> None:
        """Close the cache and, for a remote encoder, its connections."""
        self.embeddings.close()
        close_encoder = getattr(self.encoder, "close", None)
        if close_encoder is not None:
            close_encoder()

    def warm_up(self) -> None:
        """Load the model now and run it once, so that the first real message is not the slow one."""
        self.embed(["warm-up"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Run the model on ``texts``: the worker's model step, which has cache tiers of its own."""
        return self.encoder.embed(texts)

    def score(self, vectors: np.ndarray, cached: Sequence[bool]) -> list[Prediction]:
        """Every head applied to precomputed vectors (one matrix product per head)."""
        if not len(vectors):
            return []
        return predictions(self.heads, vectors, cached, self.path)

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions for cleaned texts, through the cache."""
        vectors, cached = self.embeddings.vectors(texts)
        return self.score(vectors, cached)


def load_heads(config: ClassifierConfig) -> dict[str, LogisticHead]:
    """The sentiment head (``config.head`` or the shipped one) and the shipped heads of the same features.

    A shipped moderation head trained on other features than the sentiment head (a user's own head with another
    pooling) is left out with a warning: one path reads one kind of vector.
    """
    sentiment = LogisticHead.load(config.head_path)
    if sentiment.task != SENTIMENT.name:
        raise HeadError(f"{config.head_path} is a {sentiment.task} head, not a sentiment head")
    heads = {SENTIMENT.name: sentiment}
    for task, path in config.extra_head_paths.items():
        head = LogisticHead.load(path)
        if head.encoder.fingerprint != sentiment.encoder.fingerprint:
            log.warning("%s head %s reads other features than the sentiment head %s: not used",
                        task, path, config.head_path)
            continue
        heads[task] = head
    return heads


def local_encoder(config: ClassifierConfig, head: LogisticHead) -> EncoderLike:
    """The configured model with the head's pooling: lazily loaded for the bundled model and local folders."""
    pooling = head.encoder.pooling
    source = resolve_model(config.model, config.models_dir)

    def load_encoder() -> Encoder:  # torch and transformers are imported only here
        from classifier.encoders.hf import Encoder

        return Encoder.configured(config, pooling, source)

    if source.is_local:
        identity, hidden_size = local_identity(source, pooling)
        return LazyEncoder(identity, pooling.output_dim(hidden_size), config.numeric_mode, load_encoder)
    return load_encoder()
