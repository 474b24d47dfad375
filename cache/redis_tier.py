"""Redis as the shared embedding-cache tier, behind each process's local memory and disk tiers.

Keys are the local tiers' keys (SHA-256 of encoder namespace and text, see :meth:`EmbeddingCache.key`)
under one prefix; values are the same raw float bytes (:func:`encode_vector`), so nothing is ever
unpickled and anything else stored under a key reads as a miss. Lookups are one ``MGET`` per batch,
writes one pipeline of ``SET ... EX`` per batch.

The tier is an optimisation, so it never fails a caller: while Redis is unreachable every lookup
is a miss and every write is skipped without touching the network, one warning marks the outage,
and a background PING (never a caller) retries after a backoff until Redis answers again. It is
asyncio-only (redis-py asyncio): the batching worker awaits it on its event loop, where waiting on
the network costs no thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from cache.embedding_cache import decode_vector, encode_vector

log = logging.getLogger(__name__)

KEY_PREFIX = "moodbot:emb:"
_ERRORS = (RedisError, OSError)  # OSError covers refused connections and asyncio's TimeoutError

T = TypeVar("T")


def redacted(url: str) -> str:
    """``url`` without its user and password, for logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


@dataclass
class SharedStats:
    """Counters of one tier: hits, misses and written count keys; errors and skipped count calls."""

    hits: int = 0
    misses: int = 0
    written: int = 0
    errors: int = 0
    skipped: int = 0  # calls answered without the network while Redis was down


class RedisTier:
    """Shared vectors in Redis. Use it from one event loop and ``aclose()`` it before that loop ends.

    ``ttl_s`` (0: none) is set on every write so vectors of retired encoders leave on their own;
    ``max_connections`` bounds the pool, and a caller beyond it waits up to ``timeout_s`` for a free
    connection (redis-py's plain async pool would raise instead); ``timeout_s`` also bounds connecting
    and each reply. After a failure the tier is down: a PING retries after ``retry_after_s``, the wait
    doubling up to ``max_retry_after_s`` while Redis stays away.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: int,
        max_connections: int,
        timeout_s: float,
        retry_after_s: float = 1.0,
        max_retry_after_s: float = 30.0,
    ) -> None:
        self.url = url
        self.where = redacted(url)
        self.ttl_s = ttl_s
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.max_retry_after_s = max_retry_after_s
        self.stats = SharedStats()
        self._client: Redis | None = None
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = retry_after_s
        self._probe: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """False from a failure until Redis answers again."""
        return self._down_since is None

    def _redis(self) -> Redis:
        if self._client is None:  # created in the running loop on first use: its connections belong to that loop
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=self.timeout_s,
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                # one immediate reconnect (a restarted server closed the pooled connections), never a sleep;
                # a timeout is not retried: it already cost timeout_s
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
            self._client = Redis.from_pool(pool)
        return self._client

    async def get_many(self, keys: Sequence[str], dim: int | None = None) -> list[np.ndarray | None]:
        """One ``MGET``; a missing key, a non-vector value, a wrong dimension or Redis being down read as ``None``."""
        if not keys:
            return []
        blobs = await self._call(lambda redis: redis.mget([KEY_PREFIX + key for key in keys]))
        if blobs is None:
            return [None] * len(keys)
        vectors = [self._decode(blob, dim) for blob in blobs]
        hits = sum(vector is not None for vector in vectors)
        self.stats.hits += hits
        self.stats.misses += len(keys) - hits
        return vectors

    async def set_many(self, items: Iterable[tuple[str, np.ndarray]]) -> bool:
        """Store ``(key, vector)`` pairs in one pipeline with the TTL; False when Redis did not take them."""
        pairs = [(KEY_PREFIX + key, encode_vector(vector)) for key, vector in items]
        if not pairs:
            return True

        async def write(redis: Redis) -> bool:
            async with redis.pipeline(transaction=False) as pipe:
                for key, blob in pairs:
                    pipe.set(key, blob, ex=self.ttl_s or None)
                await pipe.execute()
            return True

        stored = await self._call(write, default=False)
        if stored:
            self.stats.written += len(pairs)
        return bool(stored)

    @staticmethod
    def _decode(blob: object, dim: int | None) -> np.ndarray | None:
        vector = decode_vector(blob) if isinstance(blob, bytes) else None
        return None if vector is None or (dim is not None and vector.shape[0] != dim) else vector

    async def _call(self, operation: Callable[[Redis], Awaitable[T]], default: T | None = None) -> T | None:
        """Run ``operation``; ``default`` when Redis is down (no network touched) or when it fails now."""
        if self._down_since is not None:
            self.stats.skipped += 1
            if self._probe is None and time.monotonic() >= self._retry_at:
                self._probe = asyncio.ensure_future(self._ping())
            return default
        try:
            return await operation(self._redis())
        except _ERRORS as error:
            self.stats.errors += 1
            if self._down_since is None:  # concurrent calls may fail together: one warning per outage
                self._down_since = time.monotonic()
                self._backoff = self.retry_after_s
                self._retry_at = self._down_since + self._backoff
                log.warning(
                    "shared embedding cache at %s is unavailable (%s: %s); "
                    "using the local cache and the model until it is back",
                    self.where,
                    error.__class__.__name__,
                    error,
                )
            return default

    async def _ping(self) -> None:
        """(background) Is Redis back? Ends the outage, or schedules the next try further out."""
        try:
            await self._redis().ping()
        except _ERRORS:
            self._backoff = min(self._backoff * 2, self.max_retry_after_s)
            self._retry_at = time.monotonic() + self._backoff
        else:
            if self._down_since is not None:
                down_for = time.monotonic() - self._down_since
                log.info("shared embedding cache at %s is back after %.1f s", self.where, down_for)
            self._down_since = None
        finally:
            self._probe = None

    async def aclose(self) -> None:
        """Close the pool's connections; the next call opens a new pool (in whatever loop then runs)."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> RedisTier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
