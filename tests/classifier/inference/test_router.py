"""Two encoder paths behind one front: the language gate sends each text to one path, which alone embeds and caches
it; a guild's pin overrides the gate; the worker front batches each path's share on that path's worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from cache import EmbeddingCache
from classifier.config import WorkerConfig
from classifier.heads.logistic import LogisticHead
from classifier.inference.classifier import by_task
from classifier.inference.router import AsyncGate, Paths, RoutedWorker, Router
from classifier.language import LanguageGate
from tests.support.classifier import InstrumentedClassifier

pytestmark = pytest.mark.timeout(120)

ENGLISH_TEXTS = ["the meeting moved to friday afternoon", "thanks everyone for coming to the stream tonight"]
OTHER_TEXTS = [
    "спасибо всем, увидимся завтра",
    "la reunión se movió al viernes por la tarde",
    "kal milte hain yaar, kya scene hai",
]


@pytest.fixture
def paths(tmp_path: Path, tiny_encoder, tiny_head, other_encoder) -> Paths:
    """'en' reads with the tiny encoder, 'xx' with the other one (each with its own head and cache namespace)."""
    rng = np.random.default_rng(0)
    other_head = LogisticHead(other_encoder.identity, rng.standard_normal((3, other_encoder.dim)), np.zeros(3),
                              np.zeros(other_encoder.dim), np.ones(other_encoder.dim))
    made = {}
    for name, encoder, head in (("en", tiny_encoder, tiny_head), ("xx", other_encoder, other_head)):
        cache = EmbeddingCache(tmp_path / "cache", encoder.cache_namespace, dim=encoder.dim)
        made[name] = InstrumentedClassifier(encoder, by_task(head), cache, name)
    yield Paths(made, english="en", multilingual="xx")
    for classifier in made.values():
        classifier.close()


def test_each_text_is_embedded_once_by_the_path_its_language_needs(paths: Paths) -> None:
    router = Router(paths)
    predictions = router.classify(ENGLISH_TEXTS + OTHER_TEXTS)
    assert [p.path for p in predictions] == ["en", "en", "xx", "xx", "xx"]
    assert [p.language for p in predictions[2:]] == ["ru", "es", "hi"]
    assert paths.classifiers["en"].batches == [ENGLISH_TEXTS]
    assert paths.classifiers["xx"].batches == [OTHER_TEXTS]
    again = router.classify(OTHER_TEXTS)  # cached in the path's own namespace: no model call
    assert all(p.cached and p.path == "xx" for p in again) and len(paths.classifiers["xx"].batches) == 1
    assert paths.classifiers["en"].cache.get_many(OTHER_TEXTS) == [None] * 3  # never in the other namespace


def test_a_pin_overrides_the_gate(paths: Paths) -> None:
    router = Router(paths)
    assert {p.path for p in router.classify(OTHER_TEXTS, pin="english")} == {"en"}
    pinned = router.classify(ENGLISH_TEXTS, pin="de")
    assert {(p.path, p.language) for p in pinned} == {("xx", "de")}


def test_one_path_needs_no_gate(paths: Paths) -> None:
    single = Router(Paths.single(paths.classifiers["en"]))
    assert single.gate is None
    assert {(p.path, p.language) for p in single.classify(OTHER_TEXTS)} == {("en", None)}


async def test_the_routed_worker_batches_each_paths_share_on_its_own_worker(paths: Paths) -> None:
    config = WorkerConfig(max_batch=16, max_wait_ms=50)
    async with RoutedWorker.configured(paths, config) as worker:
        found = await worker.classify_many(ENGLISH_TEXTS + OTHER_TEXTS + [""], return_exceptions=True)
        one = await worker.classify(OTHER_TEXTS[0])
    assert [p.path for p in found[:5]] == ["en", "en", "xx", "xx", "xx"] and isinstance(found[5], ValueError)
    assert one.cached and one.path == "xx" and one.language == "ru"
    assert worker.namespace(one) == paths.classifiers["xx"].encoder.cache_namespace
    assert worker.stats.computed == 5 and worker.stats.memory_hits == 1


async def test_the_gate_reads_each_text_once_off_the_loop_and_batches_one_loop_iteration() -> None:
    gate = AsyncGate(LanguageGate())
    try:
        texts = ENGLISH_TEXTS + OTHER_TEXTS
        first = await asyncio.gather(*(gate.routes([text]) for text in texts))  # one loop iteration, one batch
        assert [route.path for [route] in first] == ["english"] * 2 + ["multilingual"] * 3
        assert gate.detected == 5
        again = await gate.routes(texts + texts)
        assert again == [route for [route] in first] * 2 and gate.detected == 5  # remembered: not read again
        pinned = await gate.routes(OTHER_TEXTS, pin="english")
        assert {route.path for route in pinned} == {"english"} and gate.detected == 5
    finally:
        gate.close()
