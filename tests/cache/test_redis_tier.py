"""The shared Redis tier on a real redis-server (loopback, no persistence) behind real local tiers and a real model.

Each "process" is a classifier with its own empty cache directory and its own RedisTier (its own pool),
so a hit in the second one can only have come through Redis.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.settings import Settings, SettingsError, load_settings
from cache import EmbeddingCache
from cache.embedding_cache import decode_vector, encode_vector
from cache.redis_tier import KEY_PREFIX, RedisTier
from classifier.config import ClassifierConfig, WorkerConfig
from classifier.inference.worker import BatchingWorker
from tests.support.bot import running_bot
from tests.support.classifier import InstrumentedClassifier, assert_as_alone
from tests.support.helpers import NEGATIVE_MESSAGE, TOKEN, WAIT
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


def tier(server: RedisServer, **options) -> RedisTier:
    settings = {"ttl_s": 3600, "max_connections": 4, "timeout_s": 0.5, "retry_after_s": 0.1, "max_retry_after_s": 0.4}
    return RedisTier(server.url, **(settings | options))


def process(make_classifier, tmp_path: Path, name: str) -> InstrumentedClassifier:
    """A classifier with its own, empty local cache directory (memory and disk tiers), as another process has."""
    return make_classifier(cls=InstrumentedClassifier, cache_dir=tmp_path / f"cache-{name}")


def redis_key(classifier, text: str) -> str:
    return KEY_PREFIX + classifier.cache.key(text)


def warnings_from_tier(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cache.redis_tier" and r.levelno == logging.WARNING]


async def test_a_vector_computed_in_one_process_is_a_redis_hit_in_another(
    make_classifier, redis_server, tmp_path
) -> None:
    texts = [f"shared message number {i}" for i in range(20)]
    first, second = process(make_classifier, tmp_path, "a"), process(make_classifier, tmp_path, "b")
    async with BatchingWorker(first, max_batch=64, max_wait_ms=1, shared_cache=tier(redis_server)) as worker:
        computed = await worker.classify_many(texts)
        await worker.flush_cache_writes()
    assert sorted(t for batch in first.batches for t in batch) == sorted(texts) and not any(p.cached for p in computed)

    shared = tier(redis_server)
    async with BatchingWorker(second, max_batch=64, max_wait_ms=1, shared_cache=shared) as worker:
        found = await worker.classify_many(texts)
        again = await worker.classify(texts[0])
        await worker.flush_cache_writes()
    assert second.batches == []  # the model never ran in the second process
    assert all(p.cached for p in found) and again.cached
    assert np.array_equal(np.stack([p.vector for p in found]), np.stack([p.vector for p in computed]))
    assert [p.label for p in found] == [p.label for p in computed]
    assert (worker.stats.shared_hits, worker.stats.memory_hits, worker.stats.disk_hits, worker.stats.computed) == (
        20,
        1,
        0,
        0,
    )
    assert (shared.stats.hits, shared.stats.misses, shared.stats.written) == (20, 0, 0)
    # A Redis hit fills the local tiers: the second process's own directory now holds every vector.
    with EmbeddingCache(tmp_path / "cache-b", second.cache.namespace, dim=second.cache.dim, memory_items=0) as disk:
        assert all(v is not None for v in disk.get_many(texts)) and disk.disk_hits == 20


async def test_keys_are_namespaced_hashes_with_the_ttl(make_classifier, other_encoder, redis_server, tmp_path) -> None:
    admin = redis_server.client()
    classifier = process(make_classifier, tmp_path, "a")
    async with BatchingWorker(classifier, max_wait_ms=1, shared_cache=tier(redis_server, ttl_s=3600)) as worker:
        prediction = await worker.classify("a private message")
        await worker.flush_cache_writes()
    key = redis_key(classifier, "a private message")
    assert admin.keys("*") == [key.encode()]  # the key is a hash: the text itself is stored nowhere
    assert 3590 <= admin.ttl(key) <= 3600
    assert np.array_equal(decode_vector(admin.get(key)), prediction.vector)

    # Another encoder (other weights and pooling, same dimension) derives another key and reads nothing.
    with EmbeddingCache(tmp_path / "cache-other", other_encoder.cache_namespace, dim=other_encoder.dim) as other:
        other_key = other.key("a private message")
    assert other_key != classifier.cache.key("a private message") and other.dim == classifier.cache.dim
    async with tier(redis_server) as reader:
        assert await reader.get_many([other_key], other.dim) == [None]
        assert np.array_equal(
            (await reader.get_many([classifier.cache.key("a private message")]))[0], prediction.vector
        )
        assert await reader.get_many([classifier.cache.key("a private message")], dim=64) == [None]  # wrong size

    async with tier(redis_server, ttl_s=0) as forever:
        assert await forever.set_many([(classifier.cache.key("kept"), prediction.vector)])
    assert admin.ttl(redis_key(classifier, "kept")) == -1  # 0: no expiry


async def test_one_mget_per_lookup_batch_and_one_set_per_vector(make_classifier, redis_server, tmp_path) -> None:
    admin = redis_server.client()
    texts = [f"batched text {i}" for i in range(64)]
    first, second = process(make_classifier, tmp_path, "a"), process(make_classifier, tmp_path, "b")
    admin.config_resetstat()
    async with BatchingWorker(first, max_batch=64, max_wait_ms=50, shared_cache=tier(redis_server)) as worker:
        await asyncio.gather(*(worker.classify(text) for text in texts))
        await worker.flush_cache_writes()
    stats = admin.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1  # 64 concurrent misses: one lookup
    assert stats["cmdstat_set"]["calls"] == 64 and len(first.batches) == 1
    assert all(admin.ttl(redis_key(first, text)) > 0 for text in texts)

    admin.config_resetstat()
    async with BatchingWorker(second, max_batch=64, max_wait_ms=50, shared_cache=tier(redis_server)) as worker:
        found = await asyncio.gather(*(worker.classify(text) for text in texts))
        await worker.flush_cache_writes()
    stats = admin.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1 and "cmdstat_set" not in stats  # hits are not written back
    assert all(p.cached for p in found) and second.batches == [] and worker.stats.shared_hits == 64


async def test_anything_but_a_vector_under_a_key_is_a_miss_and_never_unpickled(
    make_classifier, tiny_encoder, redis_server, tmp_path
) -> None:
    admin = redis_server.client()
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    classifier = process(make_classifier, tmp_path, "a")
    texts = ["a pickled value", "a short value", "a vector of the wrong size", "a list", "a bad header"]
    admin.set(redis_key(classifier, texts[0]), pickle.dumps(Exploit()))
    admin.set(redis_key(classifier, texts[1]), b"MBV1")
    admin.set(redis_key(classifier, texts[2]), encode_vector(np.ones(16, np.float32)))
    admin.rpush(redis_key(classifier, texts[3]), b"not a string")
    admin.set(redis_key(classifier, texts[4]), b"XXXX" + encode_vector(np.ones(32, np.float32))[4:])
    async with BatchingWorker(classifier, max_wait_ms=1, shared_cache=tier(redis_server)) as worker:
        predictions = await worker.classify_many(texts)
        await worker.flush_cache_writes()
    assert not marker.exists()
    assert [p.cached for p in predictions] == [False] * 5
    assert_as_alone(predictions, texts, tiny_encoder, classifier.head)  # computed: no garbage vector was used
    assert sorted(t for batch in classifier.batches for t in batch) == sorted(texts)
    for text, prediction in zip(texts, predictions, strict=True):  # the computed vector replaced the garbage
        assert np.array_equal(decode_vector(admin.get(redis_key(classifier, text))), prediction.vector)


async def test_outage_mid_run_degrades_with_one_warning_and_recovers(
    make_classifier, tiny_encoder, redis_server, tmp_path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="cache.redis_tier")
    classifier = process(make_classifier, tmp_path, "a")
    shared = tier(redis_server)
    async with BatchingWorker(classifier, max_batch=16, max_wait_ms=1, shared_cache=shared) as worker:
        await worker.classify_many(["before the outage"])
        await worker.flush_cache_writes()
        assert shared.stats.written == 1 and warnings_from_tier(caplog) == []

        redis_server.stop()
        during, asked = [], []
        for round_ in range(4):  # single calls and batches, concurrently, over several backoff periods
            singles = [f"single {round_} {i}" for i in range(8)]
            batch = [f"batch {round_} {i}" for i in range(8)]
            results = await asyncio.gather(*map(worker.classify, singles), worker.classify_many(batch))
            during += [*results[:-1], *results[-1]]
            asked += [*singles, *batch]
            await worker.flush_cache_writes()
            await asyncio.sleep(0.15)
        assert len(during) == 64 and not any(p.cached for p in during)  # the model answered all ...
        assert_as_alone(during, asked, tiny_encoder, classifier.head)  # ... each its own text
        assert worker.stats.computed == 65 and worker.stats.failed_batches == 0
        assert not shared.available and shared.stats.skipped > 0  # most calls never touched the network
        (warning,) = warnings_from_tier(caplog)
        assert str(redis_server.port) in warning and "unavailable" in warning

        redis_server.start()  # same port, empty (no persistence)
        deadline = time.monotonic() + 10
        while not shared.available:  # the first call after the backoff starts a background PING
            assert time.monotonic() < deadline, "the tier never noticed that Redis is back"
            await worker.classify(f"while recovering {time.monotonic()}")
            await asyncio.sleep(0.05)
        await worker.classify("after the outage")
        await worker.flush_cache_writes()
    assert len(warnings_from_tier(caplog)) == 1
    assert sum("is back after" in r.getMessage() for r in caplog.records) == 1

    other = process(make_classifier, tmp_path, "b")
    async with BatchingWorker(other, max_wait_ms=1, shared_cache=tier(redis_server)) as worker:
        later = await worker.classify("after the outage")  # written after the recovery: a hit elsewhere
    assert later.cached and other.batches == []


async def test_a_restart_between_calls_is_invisible(make_classifier, redis_server, tmp_path, caplog) -> None:
    """The pooled connections die with the server; the next command reconnects once, immediately."""
    admin = redis_server.client()
    classifier = process(make_classifier, tmp_path, "a")
    shared = tier(redis_server)
    async with BatchingWorker(classifier, max_wait_ms=1, shared_cache=shared) as worker:
        await worker.classify("before the restart")
        await worker.flush_cache_writes()
        redis_server.restart()
        await worker.classify("after the restart")
        await worker.flush_cache_writes()
    assert warnings_from_tier(caplog) == [] and shared.available and shared.stats.errors == 0
    assert admin.exists(redis_key(classifier, "after the restart")) and not admin.exists(
        redis_key(classifier, "before the restart")
    )


async def test_a_server_that_stops_answering_costs_one_timeout(
    make_classifier, tiny_encoder, redis_server, tmp_path, caplog
) -> None:
    classifier = process(make_classifier, tmp_path, "a")
    shared = tier(redis_server, timeout_s=0.2)
    async with BatchingWorker(classifier, max_wait_ms=1, shared_cache=shared) as worker:
        await worker.classify("warm the pool")
        await worker.flush_cache_writes()
        redis_server.pause()
        try:
            started = time.perf_counter()
            first = await worker.classify("nobody answers")
            slow = time.perf_counter() - started
            started = time.perf_counter()
            second = await worker.classify("still nobody")
            fast = time.perf_counter() - started
            await worker.flush_cache_writes()
        finally:
            redis_server.resume()
    assert_as_alone([first, second], ["nobody answers", "still nobody"], tiny_encoder, classifier.head)
    assert 0.2 <= slow < 5 and fast < slow  # one timeout, then the tier is skipped
    (warning,) = warnings_from_tier(caplog)
    assert "Timeout" in warning


async def test_connection_refused_from_the_start(make_classifier, tiny_encoder, tmp_path, caplog) -> None:
    classifier = process(make_classifier, tmp_path, "a")
    dead = RedisServer(tmp_path / "never-started")  # a free port nobody listens on
    shared = tier(dead)
    async with BatchingWorker(classifier, max_wait_ms=1, shared_cache=shared) as worker:
        for round_ in range(3):
            texts = [f"refused {round_} {i}" for i in range(5)]
            assert_as_alone(await worker.classify_many(texts), texts, tiny_encoder, classifier.head)
    assert len(warnings_from_tier(caplog)) == 1 and not shared.available and worker.stats.computed == 15


async def test_pool_exhaustion_waits_for_a_connection(redis_server) -> None:
    admin = redis_server.client()
    vector = np.arange(32, dtype=np.float32)
    keys = [f"pool-{i}" for i in range(50)]
    async with tier(redis_server, max_connections=2, timeout_s=5) as shared:
        assert await shared.set_many([(key, vector) for key in keys])
        results = await asyncio.gather(*(shared.get_many(keys, 32) for _ in range(50)))
        assert all(np.array_equal(v, vector) for found in results for v in found)
        assert shared.available and shared.stats.errors == 0 and shared.stats.hits == 50 * 50
        assert int(admin.info("clients")["connected_clients"]) <= 2 + 1  # the pool's two, and this admin client

    # What the blocking pool is for: redis-py's plain async pool raises under the same load.
    plain = redis.asyncio.Redis(
        connection_pool=redis.asyncio.ConnectionPool.from_url(redis_server.url, max_connections=2)
    )
    try:
        with pytest.raises(RedisConnectionError):
            await asyncio.gather(*(plain.mget([KEY_PREFIX + key for key in keys]) for _ in range(50)))
    finally:
        await plain.aclose()


def test_settings_configure_the_shared_tier() -> None:
    settings = load_settings(
        {
            "MOODBOT_CACHE_URL": "redis://:s3cret@cache.internal:6380/2",
            "MOODBOT_CACHE_TTL_S": "0",
            "MOODBOT_CACHE_POOL_SIZE": "8",
            "MOODBOT_CACHE_TIMEOUT_S": "0.25",
        },
        dotenv_path=None,
    )
    config = settings.worker
    assert (config.cache_url, config.cache_ttl_s, config.cache_pool_size, config.cache_timeout_s) == (
        "redis://:s3cret@cache.internal:6380/2",
        0,
        8,
        0.25,
    )
    assert "s3cret" not in repr(settings)
    defaults = load_settings({}, dotenv_path=None).worker
    assert defaults.cache_url is None and defaults == WorkerConfig()
    assert defaults.cache_ttl_s == 30 * 24 * 3600


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MOODBOT_CACHE_URL", "http://cache.internal:6379"),
        ("MOODBOT_CACHE_URL", "redis://"),
        ("MOODBOT_CACHE_URL", "redis://:hunter2@cache.internal:port/0"),
        ("MOODBOT_CACHE_TTL_S", "-1"),
        ("MOODBOT_CACHE_POOL_SIZE", "0"),
        ("MOODBOT_CACHE_TIMEOUT_S", "soon"),
    ],
)
def test_bad_shared_cache_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value}, dotenv_path=None)
    message = str(raised.value)
    assert message.startswith(f"{name}=") and "\n" not in message and "hunter2" not in message


async def test_the_worker_builds_and_closes_its_tier_from_the_config(make_classifier, redis_server, tmp_path) -> None:
    admin = redis_server.client()
    classifier = process(make_classifier, tmp_path, "a")
    config = WorkerConfig(max_batch=8, max_wait_ms=1, cache_url=redis_server.url, cache_ttl_s=60)
    worker = BatchingWorker.configured(classifier, config)
    assert worker.shared is not None and worker.shared.ttl_s == 60
    async with worker:
        await worker.classify("configured")
        await worker.flush_cache_writes()
    assert 0 < admin.ttl(redis_key(classifier, "configured")) <= 60
    deadline = time.monotonic() + 5
    while int(admin.info("clients")["connected_clients"]) > 1:  # the worker closed its pool: only this client is left
        assert time.monotonic() < deadline, "the worker left its Redis connections open"
        await asyncio.sleep(0.01)
    assert BatchingWorker.configured(classifier, WorkerConfig()).shared is None


async def test_moodbot_run_with_a_cache_url_shares_vectors_between_bot_processes(
    make_classifier, redis_server, fake_discord, seeded_guild, restore_discord_endpoints, tmp_path
) -> None:
    """Two bot runs (``BotService``, the path of ``moodbot run``) with their own data and cache folders, one Redis."""
    admin = redis_server.client()
    answers, workers = [], []
    for name in ("a", "b"):
        classifier = process(make_classifier, tmp_path, name)
        settings = Settings(
            discord_token=TOKEN,
            data_dir=tmp_path / f"var-{name}",
            classifier=ClassifierConfig(cache_dir=tmp_path / f"cache-{name}", device="cpu"),
            worker=WorkerConfig(max_wait_ms=2.0, cache_url=redis_server.url),
            discord_api_base=fake_discord.api_base,
            discord_gateway_url=fake_discord.gateway_url,
        )
        async with running_bot(settings, classifier) as service:
            interaction = await fake_discord.send_slash_command(
                seeded_guild.guild_id,
                seeded_guild.general_id,
                seeded_guild.member_id,
                "sentiment",
                {"text": NEGATIVE_MESSAGE},
            )
            answers.append((await interaction.response(WAIT)).content)
            await service.bot.worker.flush_cache_writes()
            workers.append((classifier, service.bot.worker.stats))
        if name == "a":
            assert admin.dbsize() == 1  # the first run stored its vector in Redis
    (first, first_stats), (second, second_stats) = workers
    assert first_stats.computed == 1 and len(first.batches) == 1
    assert second_stats.shared_hits == 1 and second.batches == []  # the second run never ran its model
    assert answers[0].split("**")[1] == answers[1].split("**")[1]  # the same label
