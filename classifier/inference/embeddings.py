"""Feature vectors through the embedding cache: each distinct text is embedded once, ever."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from cache import EmbeddingCache
from classifier.encoders.identity import EncoderLike

PROGRESS_CHUNK = 256


class CachedEncoder:
    """An encoder whose vectors are read from and written to an :class:`EmbeddingCache`.

    Local tiers only: the shared Redis tier belongs to the asyncio worker. This synchronous path serves
    one-off CLI runs (classify, evaluate, train), whose bulk data sets would otherwise flood the shared
    LRU and evict the chat vectors every bot process reads, and it would need a second, blocking client.
    """

    def __init__(self, encoder: EncoderLike, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache

    @classmethod
    def open(cls, encoder: EncoderLike, cache_dir: str, cache_size_mb: int = 512) -> CachedEncoder:
        """Open the cache namespace that belongs to ``encoder``."""
        return cls(encoder, EmbeddingCache(cache_dir, encoder.cache_namespace, cache_size_mb, dim=encoder.dim))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Run the model on ``texts`` (no cache involved)."""
        return self.encoder.embed(texts)

    def compute(self, texts: Sequence[str]) -> np.ndarray:
        """Run the model on ``texts`` and store the vectors in the cache."""
        vectors = self.embed(texts)
        self.cache.set_many(zip(texts, vectors, strict=True))
        return vectors

    def vectors(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Vectors for cleaned ``texts`` (cache first, each distinct miss computed once) and which were cached."""
        if not texts:
            return np.empty((0, self.encoder.dim), np.float32), []
        found = self.cache.get_many(texts)
        missing = list(dict.fromkeys(t for t, v in zip(texts, found, strict=True) if v is None))
        computed = dict(zip(missing, self.compute(missing), strict=True)) if missing else {}
        vectors = np.stack([v if v is not None else computed[t] for t, v in zip(texts, found, strict=True)])
        return vectors, [v is not None for v in found]

    def dataset_vectors(self, texts: Sequence[str], description: str = "embedding") -> tuple[np.ndarray, int]:
        """Vectors for a whole data set with a progress bar on stderr; also returns how many were cache hits."""
        parts, hits = [], 0
        with tqdm(total=len(texts), desc=description, unit="text", leave=False) as progress:
            for start in range(0, len(texts), PROGRESS_CHUNK):
                vectors, cached = self.vectors(texts[start : start + PROGRESS_CHUNK])
                parts.append(vectors)
                hits += sum(cached)
                progress.update(len(vectors))
        return (np.concatenate(parts) if parts else np.empty((0, self.encoder.dim), np.float32)), hits

    def close(self) -> None:
        """Close the cache."""
        self.cache.close()
