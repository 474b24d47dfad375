"""An asyncio front to the model: concurrent callers are batched into few model calls.

Cache hits are answered without touching the model: the memory tier on the event loop; the
disk tier in an I/O thread, where the lookups of all callers of one loop iteration go as one
batch and the head scores the hits at once; then, when configured, the shared Redis tier, awaited
on the event loop as one MGET for what the disk lacked, its hits copied into the local tiers.
Misses join a bounded queue; a batch is cut at ``max_batch`` items or ``max_wait_ms`` after its
first item, and runs in the one model thread (model and head; the cache writes follow: disk in
the cache thread, Redis as one pipeline on the loop), so the event loop never blocks. Identical
texts in flight are computed once. A failing batch fails only its own callers. ``close()`` lets
every accepted call finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar, overload

import numpy as np

from classifier.config import WorkerConfig
from classifier.pipeline import SentimentClassifier
from classifier.prediction import Prediction
from classifier.text import prepare_text

if TYPE_CHECKING:  # redis is imported only where a shared tier is configured
    from cache.redis_tier import RedisTier

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        classifier: SentimentClassifier,
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        queue_size: int = 1024,
        shared_cache: RedisTier | None = None,
    ) -> None:
        self.classifier = classifier
        self.shared = shared_cache
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self.stats = WorkerStats()
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Prediction]]] | None = None
        self._in_flight: dict[str, asyncio.Future[Prediction]] = {}
        self._handoffs: set[asyncio.Task[None]] = set()
        self._lookups: list[tuple[list[str], asyncio.Future[list[tuple[Prediction, bool] | None]]]] = []
        self._background: set[asyncio.Task[object]] = set()  # batched lookups and shared-tier writes
        self._active_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodbot-model")
        self._cache_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodbot-cache")

    @classmethod
    def configured(cls, classifier: SentimentClassifier, config: WorkerConfig) -> BatchingWorker:
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
        predictions = self._hit_predictions(self.classifier.cache.get_memory([prepared[i] for i in indices]))
        for index, prediction in zip(indices, predictions, strict=True):
            if prediction is not None:
                results[index] = prediction
                self.stats.memory_hits += 1

    async def _fill_from_disk_and_model(
        self, prepared: dict[int, str], results: list[Prediction | Exception | None], return_exceptions: bool
    ) -> None:
        """Answer the rest from the disk and shared tiers, then the model (queued, batched, de-duplicated)."""
        rest = [i for i in prepared if results[i] is None and prepared[i] not in self._in_flight]
        if rest:
            stored = await self._read_stored([prepared[i] for i in rest])
            for index, found in zip(rest, stored, strict=True):
                if found is not None:
                    results[index], shared = found
                    if shared:
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

    async def _read_stored(self, texts: list[str]) -> list[tuple[Prediction, bool] | None]:
        """Lookups of every caller in this loop iteration go as one batch; a hit says whether it came from Redis."""
        future: asyncio.Future[list[tuple[Prediction, bool] | None]] = asyncio.get_running_loop().create_future()
        if not self._lookups:
            asyncio.get_running_loop().call_soon(self._flush_lookups)
        self._lookups.append((texts, future))
        return await future

    def _flush_lookups(self) -> None:
        pending, self._lookups = self._lookups, []
        unique = list(dict.fromkeys(text for texts, _ in pending for text in texts))
        lookup = self._in_background(self._lookup(unique))

        def answer(done: asyncio.Task[dict[str, tuple[Prediction, bool]]]) -> None:
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

    async def _lookup(self, texts: list[str]) -> dict[str, tuple[Prediction, bool]]:
        """The disk tier (cache thread), then one shared-tier MGET (on this loop) for what the disk lacks."""
        disk = await asyncio.get_running_loop().run_in_executor(self._cache_thread, self._disk_predictions, texts)
        found = {text: (hit, False) for text, hit in zip(texts, disk, strict=True) if hit is not None}
        if self.shared is not None and len(found) < len(texts):
            rest = [text for text in texts if text not in found]
            for text, prediction in zip(rest, await self._shared_predictions(rest), strict=True):
                if prediction is not None:
                    found[text] = (prediction, True)
        return found

    async def _shared_predictions(self, texts: list[str]) -> list[Prediction | None]:
        """Shared-tier vectors for ``texts``; the hits are copied into the memory and disk tiers."""
        assert self.shared is not None
        cache = self.classifier.cache
        vectors = await self.shared.get_many([cache.key(text) for text in texts], cache.dim)
        hits = [(text, vector) for text, vector in zip(texts, vectors, strict=True) if vector is not None]
        if hits:
            cache.remember_many(hits)
            self._cache_thread.submit(self._store, hits)
        return self._hit_predictions(vectors)

    def _disk_predictions(self, texts: list[str]) -> list[Prediction | None]:
        """(cache thread) Disk-tier vectors for ``texts`` and, for the hits, the head's predictions in one pass."""
        return self._hit_predictions(self.classifier.cache.get_many(texts))

    def _hit_predictions(self, vectors: list[np.ndarray | None]) -> list[Prediction | None]:
        """The head's predictions for the cached vectors (one matrix product), ``None`` where there was none."""
        hits = [i for i, v in enumerate(vectors) if v is not None]
        predictions: list[Prediction | None] = [None] * len(vectors)
        if hits:
            stacked = vectors[hits[0]][None, :] if len(hits) == 1 else np.stack([vectors[i] for i in hits])
            for index, prediction in zip(
                hits, self.classifier.predict_vectors(stacked, [True] * len(hits)), strict=True
            ):
                predictions[index] = prediction
        return predictions

    def _compute(self, texts: list[str]) -> list[Prediction]:
        """(model thread) Run the model on a batch and apply the head to it; the cache thread writes the cache."""
        vectors = self.classifier.embed(texts)
        self.classifier.cache.remember_many(zip(texts, vectors, strict=True))  # visible to the next lookup at once
        self._cache_thread.submit(self._store, list(zip(texts, vectors, strict=True)))
        return self.classifier.predict_vectors(vectors, [False] * len(texts))

    def _store(self, items: list[tuple[str, np.ndarray]]) -> None:
        """(cache thread) Write vectors to the disk tier; a failure costs only future cache hits."""
        try:
            self.classifier.cache.write_disk(items)
        except Exception as error:
            log.warning("could not cache %d vectors: %s", len(items), error)

    def _share(self, texts: list[str], predictions: list[Prediction]) -> None:
        """Write a computed batch to the shared tier in the background (the tier handles Redis errors itself)."""
        if self.shared is not None:
            key = self.classifier.cache.key
            items = [(key(text), prediction.vector) for text, prediction in zip(texts, predictions, strict=True)]
            self._in_background(self.shared.set_many(items))

    def _in_background(self, coroutine: Coroutine[object, object, T]) -> asyncio.Task[T]:
        """A task the worker holds until it is done (the event loop keeps only weak references)."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._background.discard)  # type: ignore[arg-type]
        return task

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
            self._share(texts, predictions)  # after the callers: their answers do not wait for the encoding

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
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._cache_thread, int)

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
        await asyncio.gather(*self._background, return_exceptions=True)
        self._model_thread.shutdown(wait=True)
        self._cache_thread.shutdown(wait=True)
        if self.shared is not None:
            await self.shared.aclose()
