"""Embedding cache on diskcache."""

from cache.embedding_cache import CacheStats, EmbeddingCache

__all__ = ["CacheStats", "EmbeddingCache"]
