"""The cache tiers in front of the model (vectors only: the worker scores them), on a real tiny model and real
diskcache folders (Redis: test_redis_tier)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from classifier.inference.tiers import CacheTiers, StoredHit

pytestmark = pytest.mark.timeout(60)

TEXTS = ["the pinned notes moved", "who runs the event tonight", "the upload finished"]


async def test_a_computed_vector_is_a_memory_hit_at_once_and_a_disk_hit_after_a_restart(make_classifier) -> None:
    classifier = make_classifier()
    vectors = classifier.embed(TEXTS)
    tiers = CacheTiers(classifier.cache)
    assert tiers.from_memory(TEXTS) == [None] * 3
    tiers.remember(TEXTS, vectors)
    from_memory = tiers.from_memory(TEXTS)
    assert all(v is not None for v in from_memory)
    np.testing.assert_allclose(from_memory, vectors)
    await tiers.close()  # finishes the disk writes it has accepted

    restarted = make_classifier(cache_dir=classifier.cache.directory)
    fresh = CacheTiers(restarted.cache)
    try:
        assert fresh.from_memory(TEXTS) == [None] * 3
        stored = await fresh.stored(TEXTS)
        assert all(isinstance(hit, StoredHit) and not hit.shared for hit in stored)
        np.testing.assert_allclose([hit.vector for hit in stored], vectors)
        assert restarted.cache.disk_hits == 3
        assert all(p is not None for p in fresh.from_memory(TEXTS))  # disk hits are copied into memory
    finally:
        await fresh.close()


async def test_lookups_of_one_loop_iteration_go_to_disk_once_per_distinct_text(make_classifier) -> None:
    classifier = make_classifier()
    tiers = CacheTiers(classifier.cache)
    try:
        tiers.remember(TEXTS[:1], classifier.embed(TEXTS[:1]))
        await tiers.flush()
        restarted = make_classifier(cache_dir=classifier.cache.directory)  # an empty memory tier: reads go to disk
        reader = CacheTiers(restarted.cache)
        callers = [["a b", TEXTS[0]], ["c d", TEXTS[0]], ["a b", "e f", TEXTS[0]]]
        answers = await asyncio.gather(*(reader.stored(texts) for texts in callers))
        await reader.close()
    finally:
        await tiers.close()
    assert [[hit is not None for hit in answer] for answer in answers] == [[False, True], [False, True],
                                                                           [False, False, True]]
    # one batch of the 4 distinct texts: 1 disk hit and 3 misses, not 3 hits and 4 misses
    assert (restarted.cache.disk_hits, restarted.cache.misses) == (1, 3)


async def test_flush_waits_for_the_disk_writes(make_classifier) -> None:
    classifier = make_classifier()
    tiers = CacheTiers(classifier.cache)
    try:
        tiers.remember(TEXTS, classifier.embed(TEXTS))
        await tiers.flush()
        on_disk = make_classifier(cache_dir=classifier.cache.directory).cache.get_many(TEXTS)
    finally:
        await tiers.close()
    assert all(vector is not None for vector in on_disk)
