"""The cache tiers in front of the model, read and filled the way the batching worker needs them.

The tiers hold vectors only; the worker scores them with its classifier's heads. The memory tier is read inline on
the event loop. The disk tier is read in one cache thread, where the lookups of every caller of one loop iteration
go as one batch; then, when
configured, the shared Redis tier is read with one MGET for what the disk lacked, awaited on the event loop,
and its hits are copied into the local tiers. A computed batch reaches the memory tier at once (from the model
thread), the disk tier in the cache thread and Redis as one pipeline in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numpy as np

from cache import EmbeddingCache

if TYPE_CHECKING:  # redis is imported only where a shared tier is configured
    from cache.redis_tier import RedisTier

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoredHit(NamedTuple):
    """A stored vector, and whether it came from the shared tier (else the disk)."""

    vector: np.ndarray
    shared: bool


class CacheTiers:
    """Memory, disk and (optional) shared tiers of one encoder's cache; :meth:`close` closes the shared one."""

    def __init__(self, cache: EmbeddingCache, shared: RedisTier | None = None) -> None:
        self.cache = cache
        self.shared = shared
        self._lookups: list[tuple[list[str], asyncio.Future[list[StoredHit | None]]]] = []
        self._background: set[asyncio.Task[object]] = set()  # batched lookups and shared-tier writes
        self._cache_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodbot-cache")

    def from_memory(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Vectors of the texts the memory tier holds (no I/O, no suspension), ``None`` for the others."""
        return self.cache.get_memory(texts)

    async def stored(self, texts: list[str]) -> list[StoredHit | None]:
        """Disk, then shared-tier hits; the lookups of every caller in this loop iteration go as one batch."""
        future: asyncio.Future[list[StoredHit | None]] = asyncio.get_running_loop().create_future()
        if not self._lookups:
            asyncio.get_running_loop().call_soon(self._flush_lookups)
        self._lookups.append((texts, future))
        return await future

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """(model thread) Computed vectors: in the memory tier at once, to the disk tier by the cache thread."""
        items = list(zip(texts, vectors, strict=True))
        self.cache.remember_many(items)  # visible to the next lookup at once
        self._cache_thread.submit(self._write_disk, items)

    def share(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Write a computed batch to the shared tier in the background (the tier handles Redis errors itself)."""
        if self.shared is not None:
            key = self.cache.key
            items = [(key(text), vector) for text, vector in zip(texts, vectors, strict=True)]
            self._in_background(self.shared.set_many(items))

    async def flush(self) -> None:
        """Wait until every vector computed or fetched so far is written to the disk and shared tiers."""
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._cache_thread, int)

    async def close(self) -> None:
        """Finish the pending lookups and writes, stop the cache thread and close the shared tier."""
        await asyncio.gather(*self._background, return_exceptions=True)
        self._cache_thread.shutdown(wait=True)
        if self.shared is not None:
            await self.shared.aclose()

    def _flush_lookups(self) -> None:
        pending, self._lookups = self._lookups, []
        unique = list(dict.fromkeys(text for texts, _ in pending for text in texts))
        lookup = self._in_background(self._lookup(unique))

        def answer(done: asyncio.Task[dict[str, StoredHit]]) -> None:
            for texts, future in pending:
                if future.done():  # its caller was cancelled
                    continue
                if done.cancelled():
                    future.cancel()
                elif (error := done.exception()) is not None:
                    future.set_exception(error)
                else:
                    future.set_result([done.result().get(text) for text in texts])

        lookup.add_done_callback(answer)

    async def _lookup(self, texts: list[str]) -> dict[str, StoredHit]:
        """The disk tier (cache thread), then one shared-tier MGET (on this loop) for what the disk lacks."""
        disk = await asyncio.get_running_loop().run_in_executor(self._cache_thread, self.cache.get_many, texts)
        found = {text: StoredHit(hit, False) for text, hit in zip(texts, disk, strict=True) if hit is not None}
        if self.shared is not None and len(found) < len(texts):
            rest = [text for text in texts if text not in found]
            for text, vector in zip(rest, await self._shared_vectors(rest), strict=True):
                if vector is not None:
                    found[text] = StoredHit(vector, True)
        return found

    async def _shared_vectors(self, texts: list[str]) -> list[np.ndarray | None]:
        """Shared-tier vectors for ``texts``; the hits are copied into the memory and disk tiers."""
        assert self.shared is not None
        vectors = await self.shared.get_many([self.cache.key(text) for text in texts], self.cache.dim)
        hits = [(text, vector) for text, vector in zip(texts, vectors, strict=True) if vector is not None]
        if hits:
            self.cache.remember_many(hits)
            self._cache_thread.submit(self._write_disk, hits)
        return vectors

    def _write_disk(self, items: list[tuple[str, np.ndarray]]) -> None:
        """(cache thread) Write vectors to the disk tier; a failure costs only future cache hits."""
        try:
            self.cache.write_disk(items)
        except Exception as error:
            log.warning("could not cache %d vectors: %s", len(items), error)

    def _in_background(self, coroutine: Coroutine[object, object, T]) -> asyncio.Task[T]:
        """A task held until it is done (the event loop keeps only weak references)."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._background.discard)  # type: ignore[arg-type]
        return task
