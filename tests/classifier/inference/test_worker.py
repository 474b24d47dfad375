"""The asyncio BatchingWorker on a real (tiny) model: batching, de-duplication, back-pressure, faults, draining."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import numpy as np
import pytest

from classifier.heads.sentiment import CLASSES
from classifier.inference.worker import BatchingWorker, ClassificationError, WorkerClosedError
from classifier.text import EmptyTextError
from tests.support.classifier import InstrumentedClassifier, assert_as_alone
from tests.support.helpers import poll_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def classifier(make_classifier) -> InstrumentedClassifier:
    return make_classifier(cls=InstrumentedClassifier)


async def test_concurrent_calls_are_batched(classifier, tiny_encoder) -> None:
    texts = [f"message {i} about the server" for i in range(40)]
    embed_calls, forward_calls = tiny_encoder.embed_calls, tiny_encoder.forward_calls
    async with BatchingWorker(classifier, max_batch=16, max_wait_ms=500, queue_size=100) as worker:
        predictions = await asyncio.gather(*(worker.classify(t) for t in texts))
    sizes = [len(b) for b in classifier.batches]
    assert sum(sizes) == 40 and max(sizes) == 16 and len(sizes) <= 4  # 40 callers, a handful of model calls
    assert sorted(t for b in classifier.batches for t in b) == sorted(texts)
    assert tiny_encoder.embed_calls - embed_calls == len(sizes)
    assert tiny_encoder.forward_calls - forward_calls == len(sizes)
    assert worker.stats.batches == len(sizes) and worker.stats.largest_batch == 16 and worker.stats.computed == 40
    assert not any(p.cached for p in predictions)
    direct = classifier.head.probabilities_for(tiny_encoder.embed(texts), CLASSES)
    got = [[p.p_negative, p.p_neutral, p.p_positive] for p in predictions]
    np.testing.assert_allclose(got, direct, rtol=1e-5)
    assert [p.label for p in predictions] == [CLASSES[i] for i in direct.argmax(axis=1)]
    assert_as_alone(predictions, texts, tiny_encoder, classifier.head)  # each caller got its own text's answer


async def test_batches_are_cut_at_max_batch(classifier, tiny_encoder) -> None:
    """With the model busy, 40 callers queue up; the worker then cuts 16, 16, and 8 after max_wait."""
    classifier.gate = threading.Event()
    texts = [f"queued message {i}" for i in range(40)]
    async with BatchingWorker(classifier, max_batch=16, max_wait_ms=50, queue_size=100) as worker:
        blocker = asyncio.ensure_future(worker.classify("blocker"))
        await asyncio.to_thread(classifier.entered.wait, 10)
        callers = [asyncio.ensure_future(worker.classify(t)) for t in texts]
        await poll_until(lambda: worker.queued == 40)
        embed_calls, forward_calls = tiny_encoder.embed_calls, tiny_encoder.forward_calls
        classifier.gate.set()
        predictions = await asyncio.gather(*callers)
        await blocker
    assert [len(b) for b in classifier.batches] == [1, 16, 16, 8]
    assert [t for b in classifier.batches[1:] for t in b] == texts  # first come, first served
    assert tiny_encoder.embed_calls - embed_calls == 4 and tiny_encoder.forward_calls - forward_calls == 4
    assert len(predictions) == 40 and worker.stats.largest_batch == 16
    assert_as_alone(predictions, texts, tiny_encoder, classifier.head)


async def test_lone_text_waits_max_wait_then_runs_alone(classifier, tiny_encoder) -> None:
    async with BatchingWorker(classifier, max_batch=16, max_wait_ms=150) as worker:
        started = time.perf_counter()
        prediction = await worker.classify("just me")
        elapsed = time.perf_counter() - started
    assert classifier.batches == [["just me"]]
    assert elapsed >= 0.14  # the batch was held open for max_wait_ms for company
    assert elapsed < 10
    assert_as_alone([prediction], ["just me"], tiny_encoder, classifier.head)


async def test_zero_wait_runs_immediately(classifier) -> None:
    async with BatchingWorker(classifier, max_batch=16, max_wait_ms=0) as worker:
        first = await worker.classify("alone")
        second = await worker.classify("alone again")
    assert classifier.batches == [["alone"], ["alone again"]]
    assert not first.cached and not second.cached


async def test_identical_texts_in_flight_are_computed_once(classifier) -> None:
    classifier.gate = threading.Event()
    async with BatchingWorker(classifier, max_batch=8, max_wait_ms=1) as worker:
        blocker = asyncio.ensure_future(worker.classify("first batch"))
        await asyncio.to_thread(classifier.entered.wait, 10)  # the model thread is busy
        same = [asyncio.ensure_future(worker.classify("  the  same\ttext ")) for _ in range(10)]
        many = asyncio.ensure_future(worker.classify_many(["the same text", "other", "other"]))
        await poll_until(lambda: worker.stats.joined_in_flight == 11)
        classifier.gate.set()
        results = await asyncio.gather(*same)
        together = await many
        await blocker
    assert classifier.batches == [["first batch"], ["the same text", "other"]]
    assert len({r.p_positive for r in results}) == 1 and together[0].p_positive == results[0].p_positive
    assert together[1].p_positive == together[2].p_positive
    assert worker.stats.computed == 3


async def test_cache_hits_skip_the_queue(classifier) -> None:
    async with BatchingWorker(classifier, max_batch=8, max_wait_ms=0) as worker:
        fresh = await worker.classify("hello cache")
        again = await worker.classify("hello   cache")  # same prepared text
    assert not fresh.cached and again.cached and again.p_positive == fresh.p_positive
    assert len(classifier.batches) == 1 and worker.stats.memory_hits == 1

    classifier.cache.memory_items = 0
    classifier.cache._memory.clear()
    async with BatchingWorker(classifier, max_batch=8, max_wait_ms=0) as worker:
        from_disk = await worker.classify("hello cache")
    assert from_disk.cached and worker.stats.disk_hits == 1 and len(classifier.batches) == 1


async def test_queue_is_bounded_and_everyone_completes(classifier, tiny_encoder) -> None:
    classifier.gate = threading.Event()
    seen: list[int] = []
    async with BatchingWorker(classifier, max_batch=2, max_wait_ms=1, queue_size=4) as worker:
        tasks = [asyncio.ensure_future(worker.classify(f"caller {i}")) for i in range(30)]
        await poll_until(lambda: worker.queued == 4)  # the model is held: the queue fills up ...
        for _ in range(50):
            await asyncio.sleep(0)
            seen.append(worker.queued)
        assert max(seen) == 4 and not any(t.done() for t in tasks)  # ... and callers wait instead of growing it

        async def watch() -> None:
            while not all(t.done() for t in tasks):
                seen.append(worker.queued)
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(watch())
        classifier.gate.set()
        predictions = await asyncio.gather(*tasks)
        await watcher
    assert max(seen) <= 4
    assert all(len(b) <= 2 for b in classifier.batches) and sum(map(len, classifier.batches)) == 30
    assert_as_alone(predictions, [f"caller {i}" for i in range(30)], tiny_encoder, classifier.head)


async def test_a_failing_batch_fails_only_its_callers(
    classifier, tiny_encoder, caplog: pytest.LogCaptureFixture
) -> None:
    classifier.encoder.fail_marker = "💥"
    async with BatchingWorker(classifier, max_batch=8, max_wait_ms=200) as worker:
        with caplog.at_level(logging.ERROR, logger="classifier.inference.worker"):
            bad = await asyncio.gather(
                worker.classify("boom 💥 text"), worker.classify("innocent bystander"), return_exceptions=True
            )
        assert all(isinstance(e, ClassificationError) for e in bad)
        assert "the model failed on this message's batch: RuntimeError: injected fault" in str(bad[0])
        assert worker.stats.failed_batches == 1
        assert any("model failed on a batch of 2" in r.getMessage() for r in caplog.records)

        good = await asyncio.gather(worker.classify("next batch works"), worker.classify("innocent bystander"))
        assert not any(p.cached for p in good)  # nothing of the failed batch was cached
        assert_as_alone(good, ["next batch works", "innocent bystander"], tiny_encoder, classifier.head)

        mixed = await worker.classify_many(["fine", "again 💥"], return_exceptions=True)
        assert isinstance(mixed[1], ClassificationError) and isinstance(mixed[0], ClassificationError)
        after = await worker.classify_many(["fine", "", "after"], return_exceptions=True)
        assert isinstance(after[1], EmptyTextError)
        assert_as_alone([after[0], after[2]], ["fine", "after"], tiny_encoder, classifier.head)
        assert worker._in_flight == {}
    assert worker.stats.failed_batches == 2


async def test_empty_text_is_rejected_before_the_queue(classifier) -> None:
    async with BatchingWorker(classifier) as worker:
        for text in ("", "   ", "\n\t", "\x00\x00"):
            with pytest.raises(EmptyTextError):
                await worker.classify(text)
        with pytest.raises(EmptyTextError):
            await worker.classify_many(["fine", " "])
    assert classifier.batches == []


async def test_close_drains_pending_work_then_refuses(classifier, tiny_encoder) -> None:
    classifier.gate = threading.Event()
    worker = await BatchingWorker(classifier, max_batch=4, max_wait_ms=1).start()
    pending = [asyncio.ensure_future(worker.classify(f"pending {i}")) for i in range(10)]
    await asyncio.to_thread(classifier.entered.wait, 10)
    closing = asyncio.ensure_future(worker.close())
    await poll_until(lambda: worker._closing)
    with pytest.raises(WorkerClosedError):
        await worker.classify("too late")
    assert not closing.done() and not any(p.done() for p in pending)
    classifier.gate.set()
    await closing
    assert all(p.done() for p in pending)
    assert_as_alone([p.result() for p in pending], [f"pending {i}" for i in range(10)], tiny_encoder, classifier.head)
    assert sum(map(len, classifier.batches)) == 10
    with pytest.raises(WorkerClosedError):
        await worker.classify("after close")
    with pytest.raises(WorkerClosedError):
        await worker.classify_many(["after close"])


async def test_not_started_worker_refuses(classifier) -> None:
    worker = BatchingWorker(classifier)
    with pytest.raises(WorkerClosedError):
        await worker.classify("hello")
    await worker.close()


async def test_event_loop_is_not_blocked_while_the_model_runs(classifier, tiny_encoder) -> None:
    classifier.gate = threading.Event()
    ticks = 0
    async with BatchingWorker(classifier, max_batch=4, max_wait_ms=1) as worker:
        task = asyncio.ensure_future(worker.classify("slow model"))
        await asyncio.to_thread(classifier.entered.wait, 10)
        for _ in range(100):  # the loop keeps running while compute is held in the model thread
            await asyncio.sleep(0)
            ticks += 1
        assert not task.done()
        classifier.gate.set()
        assert_as_alone([await task], ["slow model"], tiny_encoder, classifier.head)
    assert ticks == 100


async def hold_model_and_fill_queue(worker: BatchingWorker, classifier) -> tuple[asyncio.Future, asyncio.Future]:
    """With ``max_batch=1, queue_size=1``: one text held in the model thread, one waiting in the full queue."""
    running = asyncio.ensure_future(worker.classify("running"))
    await asyncio.to_thread(classifier.entered.wait, 10)
    queued = asyncio.ensure_future(worker.classify("queued"))
    await poll_until(lambda: worker.queued == 1)
    return running, queued


async def test_caller_cancelled_while_waiting_for_room_does_not_strand_others(classifier, tiny_encoder) -> None:
    """A caller that gives up while the queue is full must not leave an in-flight text nobody will compute."""
    classifier.gate = threading.Event()
    async with BatchingWorker(classifier, max_batch=1, max_wait_ms=0, queue_size=1) as worker:
        running, queued = await hold_model_and_fill_queue(worker, classifier)
        impatient = asyncio.ensure_future(worker.classify("popular text"))  # blocked: the queue is full
        await poll_until(lambda: "popular text" in worker._in_flight)
        patient = asyncio.ensure_future(worker.classify("popular text"))  # joins the impatient caller's text
        await poll_until(lambda: worker.stats.joined_in_flight == 1)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        classifier.gate.set()
        result = await asyncio.wait_for(patient, 10)
        assert_as_alone([result], ["popular text"], tiny_encoder, classifier.head)
        await asyncio.gather(running, queued)
    assert ["popular text"] in classifier.batches


async def test_cancelled_lone_caller_leaves_nothing_behind(classifier, tiny_encoder) -> None:
    classifier.gate = threading.Event()
    async with BatchingWorker(classifier, max_batch=1, max_wait_ms=0, queue_size=1) as worker:
        running, queued = await hold_model_and_fill_queue(worker, classifier)
        lonely = asyncio.ensure_future(worker.classify("nobody else wants this"))
        await poll_until(lambda: "nobody else wants this" in worker._in_flight)
        lonely.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lonely
        classifier.gate.set()
        await asyncio.gather(running, queued)
        again = await asyncio.wait_for(worker.classify("nobody else wants this"), 10)  # a later caller is served
        assert_as_alone([again], ["nobody else wants this"], tiny_encoder, classifier.head)
    assert worker._in_flight == {}
