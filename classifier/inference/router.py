"""Several encoder paths behind one front: each text goes to the path its language needs.

A path is one :class:`~classifier.inference.classifier.Classifier` (an encoder, its cache namespace, its heads) and,
in the bot, one :class:`~classifier.inference.worker.BatchingWorker`. The language gate
(:mod:`classifier.language`) picks the English or the multilingual path per message, or a guild's pin does; a
configuration with one path (``MOODBOT_MODEL`` naming one encoder) never asks the gate. A text is embedded by at
most the one encoder its route names, and cached in that encoder's namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Literal, overload

from classifier.config import ClassifierConfig, WorkerConfig
from classifier.inference.classifier import Classifier
from classifier.inference.prediction import Prediction
from classifier.inference.worker import BatchingWorker, WorkerStats
from classifier.language import MULTILINGUAL, LanguageGate, Route, parse_language_pin

log = logging.getLogger(__name__)

#: Routes the bot remembers (by message text): a repeated message is routed without reading it again.
REMEMBERED_ROUTES = 65_536


@dataclass(frozen=True)
class Paths:
    """The classifiers of a configuration, by path name, and which one reads English and which the rest."""

    classifiers: Mapping[str, Classifier]
    english: str
    multilingual: str | None = None  # None: one path, no language gate

    def __post_init__(self) -> None:
        if self.english not in self.classifiers or (self.multilingual or self.english) not in self.classifiers:
            raise ValueError("the English and multilingual paths must be among the classifiers")

    @property
    def routed(self) -> bool:
        """Whether a language gate chooses between two paths."""
        return self.multilingual is not None and self.multilingual != self.english

    def path_of(self, route: Route) -> str:
        """The path name of a gate's route."""
        return self.multilingual if route.path == MULTILINGUAL and self.multilingual else self.english

    @classmethod
    def load(cls, config: ClassifierConfig) -> Paths:
        """The classifiers ``config`` asks for: one encoder, or the English and the multilingual one."""
        english, multilingual = config.path_configs()
        classifiers = {english.path_name: Classifier.load(english)}
        if multilingual is not None:
            classifiers[multilingual.path_name] = Classifier.load(multilingual)
        return cls(classifiers, english.path_name, multilingual.path_name if multilingual is not None else None)

    @classmethod
    def single(cls, classifier: Classifier) -> Paths:
        """One path, no language gate."""
        name = classifier.path or "default"
        return cls({name: classifier}, name)

    @property
    def english_classifier(self) -> Classifier:
        return self.classifiers[self.english]

    def close(self) -> None:
        for classifier in self.classifiers.values():
            classifier.close()

    def warm_up(self) -> None:
        for classifier in self.classifiers.values():
            classifier.warm_up()
        if self.routed:
            LanguageGate.preload()


class Router:
    """Routes texts to paths: synchronous for the CLI (:meth:`classify`), and for the bot's workers."""

    def __init__(self, paths: Paths, gate: LanguageGate | None = None) -> None:
        self.paths = paths
        self.gate = (gate or LanguageGate()) if paths.routed else None

    def routes(self, texts: Sequence[str], pin: str | None = None) -> list[tuple[str, str | None]]:
        """``(path name, language)`` per text. Unpinned, a text cached by exactly one path was routed there before
        (the gate is deterministic), so only the others are read by the gate: a run whose texts are all cached
        needs no language detection."""
        if self.gate is None:
            return [(self.paths.english, None)] * len(texts)
        routes: list[tuple[str, str | None] | None] = [None] * len(texts)
        if parse_language_pin(pin) is None:
            routes = self._cached_routes(texts)
        rest = [i for i, route in enumerate(routes) if route is None]
        for i, route in zip(rest, self.gate.route_many([texts[i] for i in rest], pin), strict=True):
            routes[i] = (self.paths.path_of(route), route.language)
        return routes  # type: ignore[return-value]  # every None was filled

    def _cached_routes(self, texts: Sequence[str]) -> list[tuple[str, str | None] | None]:
        """The path of each text cached by exactly one path (its vector is kept in that path's memory tier, so the
        classification that follows reads it from there), else ``None``."""
        holders: list[list[str]] = [[] for _ in texts]
        for name, classifier in self.paths.classifiers.items():
            for holder, vector in zip(holders, classifier.cache.get_many(texts), strict=True):
                if vector is not None:
                    holder.append(name)
        return [(holder[0], None) if len(holder) == 1 else None for holder in holders]

    def classify(self, texts: Sequence[str], pin: str | None = None) -> list[Prediction]:
        """Predictions for cleaned texts, each from its path (through that path's cache)."""
        results: list[Prediction | None] = [None] * len(texts)
        routes = self.routes(texts, pin)
        for path, classifier in self.paths.classifiers.items():
            indices = [i for i, (name, _) in enumerate(routes) if name == path]
            if indices:
                found = classifier.classify([texts[i] for i in indices])
                for i, prediction in zip(indices, found, strict=True):
                    results[i] = prediction.with_route(path, routes[i][1])
        return results  # type: ignore[return-value]


class AsyncGate:
    """The language gate on the event loop: a text routed before is answered at once (a bounded memory of routes);
    the others of one loop iteration are routed together in the gate's own thread, so that lingua's reading, which
    holds the GIL in short chunks, never runs on the loop itself. Pinned texts need no detection."""

    def __init__(self, gate: LanguageGate, remembered: int = REMEMBERED_ROUTES) -> None:
        self.gate = gate
        self.remembered = remembered
        self.detected = 0  # texts lingua read (the others were remembered or pinned)
        self._routes: OrderedDict[str, Route] = OrderedDict()
        self._pending: list[tuple[list[str], asyncio.Future[None]]] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodbot-language")

    async def routes(self, texts: Sequence[str], pin: str | None = None) -> list[Route]:
        """A route per text, in order."""
        if parse_language_pin(pin) is not None:
            return self.gate.route_many(texts, pin)
        missing = list(dict.fromkeys(text for text in texts if text not in self._routes))
        if missing:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if not self._pending:
                asyncio.get_running_loop().call_soon(self._flush)
            self._pending.append((missing, future))
            await future
        routes = [self._routes.get(text) for text in texts]
        for text in texts:
            if text in self._routes:
                self._routes.move_to_end(text)
        return [route or self.gate.route(text) for route, text in zip(routes, texts, strict=True)]  # evicted

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        texts = list(dict.fromkeys(text for batch, _ in pending for text in batch))
        routed = asyncio.get_running_loop().run_in_executor(self._thread, self.gate.route_many, texts)

        def remember(done: asyncio.Future[list[Route]]) -> None:
            error = None if done.cancelled() else done.exception()
            if not done.cancelled() and error is None:
                self.detected += len(texts)
                for text, route in zip(texts, done.result(), strict=True):
                    self._routes[text] = route
                while len(self._routes) > self.remembered:
                    self._routes.popitem(last=False)
            for _, future in pending:
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(None)

        routed.add_done_callback(remember)

    def close(self) -> None:
        self._thread.shutdown(wait=True)


class RoutedWorker:
    """``await worker.classify(text)`` over every path: one batching worker per path, one language gate in front
    (an :class:`AsyncGate`; :meth:`Paths.warm_up` loads its models before the bot connects)."""

    def __init__(self, router: Router, workers: Mapping[str, BatchingWorker]) -> None:
        self.router = router
        self.workers = dict(workers)
        self.gate = AsyncGate(router.gate) if router.gate is not None else None

    async def _routes(self, texts: Sequence[str], pin: str | None) -> list[tuple[str, str | None]]:
        """``(path name, language)`` per text."""
        if self.gate is None:
            return [(self.router.paths.english, None)] * len(texts)
        paths = self.router.paths
        return [(paths.path_of(route), route.language) for route in await self.gate.routes(texts, pin)]

    @classmethod
    def configured(cls, paths: Paths, config: WorkerConfig) -> RoutedWorker:
        return cls(Router(paths), {name: BatchingWorker.configured(c, config) for name, c in paths.classifiers.items()})

    def classifier(self, path: str) -> Classifier:
        return self.workers[path].classifier

    def namespace(self, prediction: Prediction) -> str:
        """The cache namespace of the encoder that made ``prediction``'s vector (flags keep it with the vector)."""
        return self.classifier(prediction.path or self.router.paths.english).encoder.cache_namespace

    @property
    def stats(self) -> WorkerStats:
        """Every path's counters added up."""
        total = WorkerStats()
        for worker in self.workers.values():
            for item in fields(WorkerStats):
                combine = max if item.name == "largest_batch" else int.__add__
                setattr(total, item.name, combine(getattr(total, item.name), getattr(worker.stats, item.name)))
        return total

    @property
    def queued(self) -> int:
        return sum(worker.queued for worker in self.workers.values())

    async def start(self) -> RoutedWorker:
        for worker in self.workers.values():
            await worker.start()
        return self

    async def __aenter__(self) -> RoutedWorker:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def classify(self, text: str, pin: str | None = None) -> Prediction:
        """Classify one text on its path. Raises what :meth:`BatchingWorker.classify` raises."""
        ((path, language),) = await self._routes([text], pin)
        return (await self.workers[path].classify(text)).with_route(path, language)

    @overload
    async def classify_many(
        self, texts: Sequence[str], pin: str | None = None, *, return_exceptions: Literal[False] = False
    ) -> list[Prediction]: ...
    @overload
    async def classify_many(
        self, texts: Sequence[str], pin: str | None = None, *, return_exceptions: Literal[True]
    ) -> list[Prediction | Exception]: ...

    async def classify_many(
        self, texts: Sequence[str], pin: str | None = None, *, return_exceptions: bool = False
    ) -> list[Prediction] | list[Prediction | Exception]:
        """Classify several texts, each path's share in one call; errors raise or are returned."""
        routes = await self._routes(texts, pin)
        results: list[Prediction | Exception | None] = [None] * len(texts)
        by_path = {path: [i for i, (name, _) in enumerate(routes) if name == path] for path in self.workers}
        answers = await asyncio.gather(*(
            self.workers[path].classify_many([texts[i] for i in indices], return_exceptions=return_exceptions)
            for path, indices in by_path.items() if indices
        ))
        for (path, indices), found in zip([(p, i) for p, i in by_path.items() if i], answers, strict=True):
            for i, outcome in zip(indices, found, strict=True):
                results[i] = outcome.with_route(path, routes[i][1]) if isinstance(outcome, Prediction) else outcome
        return results  # type: ignore[return-value]

    async def flush_cache_writes(self) -> None:
        await asyncio.gather(*(worker.flush_cache_writes() for worker in self.workers.values()))

    async def close(self) -> None:
        """Close every path's worker (each finishes its accepted calls), then the gate's thread."""
        await asyncio.gather(*(worker.close() for worker in self.workers.values()))
        if self.gate is not None:
            self.gate.close()
