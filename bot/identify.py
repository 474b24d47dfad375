"""Shards take turns logging in: Discord starts at most ``max_concurrency`` sessions per 5 s, one per rate-limit
bucket (``shard_id % max_concurrency``), across every process of the bot.

With Redis configured (``MOODBOT_CACHE_URL``) the processes share one lock per bucket: a shard takes its
bucket's lock right before it IDENTIFYs and never releases it, so the lock expires 5 s later and the next shard
of that bucket, in whatever process, goes then. The locks are tiny and expire on their own, so the embedding
cache's Redis serves (an ``allkeys-lru`` eviction of a lock costs at worst one refused login, which discord.py
retries). Without Redis, or while it is unreachable, processes cannot see each other: each waits as if every
process had started together, until its first shard's round (``shard_id // max_concurrency`` times 5 s), and
then 5 s between its own shards (discord.py's default).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: Discord's window: ``max_concurrency`` sessions may start in each.
IDENTIFY_INTERVAL_S = 5.0
LOCK_PREFIX = "moodbot:identify:"


class IdentifyGate:
    """``await gate.wait(shard_id, initial)`` before each IDENTIFY; ``max_concurrency()`` asks Discord (once)."""

    def __init__(
        self,
        max_concurrency: Callable[[], Awaitable[int]],
        redis_url: str | None = None,
        *,
        timeout_s: float = 1.0,
        interval_s: float = IDENTIFY_INTERVAL_S,
    ) -> None:
        self.interval_s = interval_s
        self._fetch_concurrency = max_concurrency
        self._concurrency: int | None = None
        self._redis_url = redis_url
        self._timeout_s = timeout_s
        self._redis = None

    async def wait(self, shard_id: int, initial: bool) -> None:
        """Return when shard ``shard_id`` may IDENTIFY (``initial``: the first IDENTIFY of this process)."""
        if self._concurrency is None:
            self._concurrency = max(1, await self._fetch_concurrency())
        bucket = shard_id % self._concurrency
        if self._redis_url is not None:
            from redis.exceptions import RedisError

            try:
                await self._take_lock(bucket)
                return
            except (RedisError, OSError) as error:
                log.warning("could not take the identify lock for shard %d in Redis (%s): staggering instead",
                            shard_id, error)
        delay = (shard_id // self._concurrency) * self.interval_s if initial else self.interval_s
        if delay:
            log.info("shard %d waits %.0f s for its turn to identify", shard_id, delay)
            await asyncio.sleep(delay)

    async def _take_lock(self, bucket: int) -> None:
        if self._redis is None:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(
                self._redis_url, socket_timeout=self._timeout_s, socket_connect_timeout=self._timeout_s
            )
        lock = self._redis.lock(f"{LOCK_PREFIX}{bucket}", timeout=self.interval_s, sleep=min(0.1, self.interval_s / 10))
        await lock.acquire()  # held until it expires: that is the wait Discord asks between two logins of a bucket

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
