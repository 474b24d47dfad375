"""A per-process cache of values read on every message (guild settings, opt-outs), fresh for under a second.

Several processes may share one database and any of them may change a setting or an opt-out, so a value is kept
only for ``ttl_s``: a change made anywhere is seen everywhere at most ``ttl_s`` (plus one read) after it committed.
Within that window a burst costs one read per key instead of one per message: concurrent misses share one load,
and the misses of one event-loop turn are loaded together (one ``IN (...)`` query instead of one each). A change
made through this process invalidates its keys at once, and a load that overlapped the change is not kept, so
the process that made the change never reads its own old value.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Below a second, the cross-process guarantee: a change made through any process holds in every process within 1 s.
DEFAULT_TTL_S = 0.5
DEFAULT_MAX_ENTRIES = 100_000


@dataclass
class ReadCacheStats:
    hits: int = 0
    joined: int = 0  # misses that waited for a load already under way
    loads: int = 0  # calls of the loader (each covers several keys)
    loaded_keys: int = 0


class ReadCache(Generic[K, V]):
    """``await cache.get(key)``: the cached value while fresh, else one batched ``load(keys) -> {key: value}``.

    ``load`` must return a value for every key it is given. At most ``max_entries`` values are kept (expired ones
    are dropped first, then the oldest), so memory stays bounded whatever the number of members.
    """

    def __init__(
        self,
        load: Callable[[list[K]], Awaitable[dict[K, V]]],
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_entries < 1:
            raise ValueError(f"ttl_s must be > 0 and max_entries >= 1, not {ttl_s!r} and {max_entries!r}")
        self._load = load
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}  # key -> (expires at, value), oldest first
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._batch: dict[K, asyncio.Future[V]] = {}  # misses of this loop turn, not yet handed to the loader
        self._generation = 0  # bumped by every invalidation: a load that overlapped one is not kept
        self.stats = ReadCacheStats()

    def __len__(self) -> int:
        """Values held (fresh or not yet dropped)."""
        return len(self._values)

    async def get(self, key: K) -> V:
        entry = self._values.get(key)
        if entry is not None and entry[0] > self._clock():
            self.stats.hits += 1
            return entry[1]
        future = self._loading.get(key)
        if future is not None:
            self.stats.joined += 1
        else:
            future = asyncio.get_running_loop().create_future()
            self._loading[key] = future
            if not self._batch:
                asyncio.get_running_loop().call_soon(self._flush)
            self._batch[key] = future
        return await asyncio.shield(future)  # a cancelled caller must not cancel the load the others wait for

    def invalidate(self, keys: Iterable[K]) -> None:
        """Forget ``keys`` (just changed through this process): the next read of each goes to the database."""
        self._generation += 1
        for key in keys:
            self._values.pop(key, None)
            self._loading.pop(key, None)  # a load under way may have read the old value: later callers start anew

    def _flush(self) -> None:
        batch, self._batch = self._batch, {}
        if batch:
            asyncio.ensure_future(self._run_load(batch))

    async def _run_load(self, batch: dict[K, asyncio.Future[V]]) -> None:
        generation = self._generation
        self.stats.loads += 1
        self.stats.loaded_keys += len(batch)
        try:
            values = await self._load(list(batch))
        except Exception as error:
            for key, future in batch.items():
                self._settle(key, future, error=error)
            return
        except BaseException:  # cancelled (the loop is closing): so are the callers' waits
            for key, future in batch.items():
                self._settle(key, future, cancel=True)
            raise
        expires = self._clock() + self.ttl_s
        for key, future in batch.items():
            if generation == self._generation and self._loading.get(key) is future:
                self._store(key, expires, values[key])
            self._settle(key, future, value=values[key])

    def _settle(
        self, key: K, future: asyncio.Future[V], *, value: V | None = None, error: Exception | None = None,
        cancel: bool = False,
    ) -> None:
        if self._loading.get(key) is future:
            del self._loading[key]
        if future.done():
            return
        if cancel:
            future.cancel()
        elif error is not None:
            future.set_exception(error)
            future.exception()  # retrieved: every caller re-raises it; none may be left to
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def _store(self, key: K, expires: float, value: V) -> None:
        self._values.pop(key, None)  # re-inserted at the end: the dict stays ordered oldest first
        self._values[key] = (expires, value)
        if len(self._values) > self.max_entries:
            now = self._clock()
            for old in [k for k, (at, _) in self._values.items() if at <= now]:
                del self._values[old]
            while len(self._values) > self.max_entries:
                del self._values[next(iter(self._values))]
