"""An asyncio front to the model: concurrent callers are batched into few model calls.

Cache hits are answered by the cache tiers (:mod:`classifier.inference.tiers`) without touching the model.
Misses join a bounded queue; a batch is cut at ``max_batch`` items or ``max_wait_ms`` after its
first item, and runs in the one model thread (model and head; the tiers' writes follow), so the event
loop never blocks. Identical texts in flight are computed once. A failing batch fails only its own
callers. ``close()`` lets every accepted call finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from classifier.config import WorkerConfig
from classifier.inference.classifier import Classifier
from classifier.inference.prediction import Prediction
from classifier.inference.tiers import CacheTiers
from classifier.text import prepare_text

if TYPE_CHECKING:  # redis is imported only where a shared tier is configured
    from cache.redis_tier import RedisTier

log = logging.getLogger(__name__)


class ClassificationError(RuntimeError):
    """The model failed on the batch that held this text."""


class WorkerClosedError(RuntimeError):
    """The worker is closed (or not started) and accepts no new texts."""


@dataclass
class WorkerStats:
    """Counters for monitoring and tests."""

    batches: int = 0
    computed: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    shared_hits: int = 0
    joined_in_flight: int = 0
    failed_batches: int = 0
    largest_batch: int = 0


class BatchingWorker:
    """``await worker.classify(text)`` from anywhere on the event loop.

    ``shared_cache``: the Redis tier behind the local ones (optional); the worker closes it in :meth:`close`.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        queue_size: int = 1024,
        shared_cache: RedisTier | None = None,
    ) -> None:
        self.classifier = classifier
        self.tiers = CacheTiers(classifier.cache, shared_cache)
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.stats = WorkerStats()
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Prediction]]] | None = None
        self._in_flight: dict[str, asyncio.Future[Prediction]] = {}
        self._handoffs: set[asyncio.Task[None]] = set()
        self._active_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodbot-model")

    @property
    def shared(self) -> RedisTier | None:
        """The shared (Redis) tier, when configured."""
        return self.tiers.shared

    @classmethod
    def configured(cls, classifier: Classifier, config: WorkerConfig) -> BatchingWorker:
        """A worker built from config values; a ``cache_url`` gives it a Redis tier of its own."""
        shared = None
        if config.cache_url:
            from cache.redis_tier import RedisTier  # redis is imported only when it is configured

            shared = RedisTier(
                config.cache_url, ttl_s=config.cache_ttl_s, max_connections=config.cache_pool_size,
                timeout_s=config.cache_timeout_s,
            )
            log.info("shared embedding cache: %s", shared.where)
        return cls(
            classifier, max_batch=config.max_batch, max_wait_ms=config.max_wait_ms, queue_size=config.queue_size,
            shared_cache=shared,
        )

    async def start(self) -> BatchingWorker:
        """Start the batching loop on the running event loop."""
        if self._runner is None:
            self._queue = asyncio.Queue(maxsize=self.queue_size)
            self._runner = asyncio.create_task(self._run(), name="moodbot-batching-worker")
        return self

    async def __aenter__(self) -> BatchingWorker:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def classify(self, text: str) -> Prediction:
        """Classify one text. Raises ``EmptyTextError``, ``ClassificationError`` or ``WorkerClosedError``."""
        self._check_open()
        prepared, results = {0: prepare_text(text)}, [None]
        self._fill_from_memory(prepared, results)
        if results[0] is None:  # else the hot path: a memory-tier hit is answered without suspending
            self._enter()
            try:
                await self._fill_from_disk_and_model(prepared, results, return_exceptions=False)
            finally:
                self._leave()
        return results[0]  # type: ignore[return-value]

    @overload
    async def classify_many(
        self, texts: Sequence[str], *, return_exceptions: Literal[False] = False
    ) -> list[Prediction]: ...
    @overload
    async def classify_many(
        self, texts: Sequence[str], *, return_exceptions: Literal[True]
    ) -> list[Prediction | Exception]: ...

    async def classify_many(
        self, texts: Sequence[str], *, return_exceptions: bool = False
    ) -> list[Prediction] | list[Prediction | Exception]:
        """Classify several texts with one cache lookup; like ``asyncio.gather``, errors raise or are returned."""
        self._check_open()
        self._enter()
        try:
            return await self._classify_many(texts, return_exceptions)
        finally:
            self._leave()

    async def _classify_many(
        self, texts: Sequence[str], return_exceptions: bool
    ) -> list[Prediction] | list[Prediction | Exception]:
        results: list[Prediction | Exception | None] = [None] * len(texts)
        prepared: dict[int, str] = {}
        for index, text in enumerate(texts):
            try:
                prepared[index] = prepare_text(text)
            except ValueError as error:
                if not return_exceptions:
                    raise
                results[index] = error
        self._fill_from_memory(prepared, results)
        await self._fill_from_disk_and_model(prepared, results, return_exceptions)
        return results  # type: ignore[return-value]

    def _check_open(self) -> None:
        if self._closing or self._queue is None:
            raise WorkerClosedError("the classification worker is not running")

    def _fill_from_memory(self, prepared: dict[int, str], results: list[Prediction | Exception | None]) -> None:
        """Answer what the memory tier holds, inline (no I/O, no suspension)."""
        indices = list(prepared)
        found = self.tiers.from_memory([prepared[i] for i in indices])
        hits = [(index, vector) for index, vector in zip(indices, found, strict=True) if vector is not None]
        for (index, _), prediction in zip(hits, self._score_hits([vector for _, vector in hits]), strict=True):
            results[index] = prediction
            self.stats.memory_hits += 1

    async def _fill_from_disk_and_model(
        self, prepared: dict[int, str], results: list[Prediction | Exception | None], return_exceptions: bool
    ) -> None:
        """Answer the rest from the disk and shared tiers, then the model (queued, batched, de-duplicated)."""
        rest = [i for i in prepared if results[i] is None and prepared[i] not in self._in_flight]
        if rest:
            stored = await self.tiers.stored([prepared[i] for i in rest])
            hits = [(index, found) for index, found in zip(rest, stored, strict=True) if found is not None]
            scored = self._score_hits([found.vector for _, found in hits])
            for (index, found), prediction in zip(hits, scored, strict=True):
                results[index] = prediction
                if found.shared:
                    self.stats.shared_hits += 1
                else:
                    self.stats.disk_hits += 1
        misses = {i: t for i, t in prepared.items() if results[i] is None}
        futures = {i: await self._submit(t) for i, t in misses.items()}
        outcomes = await asyncio.gather(*(asyncio.shield(f) for f in futures.values()), return_exceptions=True)
        for index, outcome in zip(futures, outcomes, strict=True):
            if isinstance(outcome, BaseException) and (not return_exceptions or not isinstance(outcome, Exception)):
                raise outcome
            results[index] = outcome

    def _score_hits(self, vectors: list[np.ndarray]) -> list[Prediction]:
        """The heads' predictions for cached vectors, all at once."""
        if not vectors:
            return []
        stacked = vectors[0][None, :] if len(vectors) == 1 else np.stack(vectors)
        return self.classifier.score(stacked, [True] * len(vectors))

    def _compute(self, texts: list[str]) -> list[Prediction]:
        """(model thread) Run the model on a batch, hand its vectors to the cache tiers and apply the heads."""
        vectors = self.classifier.embed(texts)
        self.tiers.remember(texts, vectors)
        return self.classifier.score(vectors, [False] * len(texts))

    async def _submit(self, text: str) -> asyncio.Future[Prediction]:
        """The future of ``text``'s vector: joins an identical text in flight, else queues it."""
        future = self._in_flight.get(text)
        if future is not None:
            self.stats.joined_in_flight += 1
            return future
        future = asyncio.get_running_loop().create_future()
        self._in_flight[text] = future
        assert self._queue is not None
        try:
            await self._queue.put((text, future))  # waits while the queue is full: back-pressure
        except asyncio.CancelledError:
            # This caller gave up waiting for room, but others may have joined its text: queue it anyway.
            handoff = asyncio.ensure_future(self._queue.put((text, future)))
            self._handoffs.add(handoff)
            handoff.add_done_callback(self._handoffs.discard)
            raise
        return future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if self._queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                    except TimeoutError:
                        break
                else:
                    batch.append(self._queue.get_nowait())
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[tuple[str, asyncio.Future[Prediction]]]) -> None:
        texts = [text for text, _ in batch]
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        try:
            predictions = await asyncio.get_running_loop().run_in_executor(self._model_thread, self._compute, texts)
        except Exception as error:  # one bad batch must not stop the worker
            self.stats.failed_batches += 1
            log.error("model failed on a batch of %d texts: %s", len(texts), error, exc_info=error)
            failure = ClassificationError(
                f"the model failed on this message's batch: {error.__class__.__name__}: {error}"
            )
            for text, future in batch:
                self._settle(text, future, exception=failure)
        else:
            self.stats.computed += len(texts)
            for (text, future), prediction in zip(batch, predictions, strict=True):
                self._settle(text, future, result=prediction)
            # after the callers: their answers do not wait for the encoding
            self.tiers.share(texts, [prediction.vector for prediction in predictions])

    def _settle(
        self,
        text: str,
        future: asyncio.Future[Prediction],
        *,
        result: Prediction | None = None,
        exception: Exception | None = None,
    ) -> None:
        if self._in_flight.get(text) is future:
            del self._in_flight[text]
        if future.done():
            return
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)

    def _enter(self) -> None:
        self._active_calls += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._active_calls -= 1
        if self._active_calls == 0:
            self._idle.set()

    async def flush_cache_writes(self) -> None:
        """Wait until every vector computed or fetched so far has been written to the disk cache and shared tier."""
        await self.tiers.flush()

    @property
    def queued(self) -> int:
        """Texts waiting for the model."""
        return self._queue.qsize() if self._queue is not None else 0

    async def close(self) -> None:
        """Refuse new texts, finish every accepted call, then stop the threads."""
        self._closing = True
        await self._idle.wait()
        for handoff in list(self._handoffs):  # texts of cancelled callers that nobody waits for any more
            handoff.cancel()
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
        self._model_thread.shutdown(wait=True)
        await self.tiers.close()
