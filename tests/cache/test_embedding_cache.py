"""EmbeddingCache on a real diskcache directory: round trips, limits, counters, isolation, corruption, no pickle."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import diskcache
import numpy as np
import pytest

from cache import EmbeddingCache
from cache.embedding_cache import decode_vector, encode_vector


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def test_round_trip_is_exact_float32(tmp_path: Path) -> None:
    texts = [f"message number {i}" for i in range(50)]
    data = vectors(50, 384)
    data[0, :3] = [np.float32(1e-45), np.float32(-0.0), np.float32(3.4e38)]  # denormal, signed zero, huge
    with EmbeddingCache(tmp_path / "c", "ns", dim=384) as cache:
        cache.set_many(zip(texts, data, strict=True))
    with EmbeddingCache(tmp_path / "c", "ns", dim=384, memory_items=0) as cache:  # read back from disk
        found = cache.get_many(texts)
        assert all(v is not None and v.dtype == np.float32 and v.shape == (384,) for v in found)
        assert np.array_equal(np.stack(found), data)
        assert np.signbit(found[0][1])
        assert (cache.disk_hits, cache.memory_hits, cache.misses) == (50, 0, 0)


def test_get_many_mixes_hits_and_misses_and_counts(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c", "ns", dim=8) as cache:
        cache.set_many([("a", vectors(1, 8)[0]), ("b", vectors(1, 8, 1)[0])])
        cache.set_many([])  # no-op
        assert [v is not None for v in cache.get_many(["a", "zzz", "b", "yyy"])] == [True, False, True, False]
        stats = cache.stats()
        assert (stats.memory_hits, stats.disk_hits, stats.misses, stats.entries) == (2, 0, 2, 2)
        assert stats.hit_rate == 0.5 and stats.volume_bytes > 0 and stats.directory == str(tmp_path / "c")
    with EmbeddingCache(tmp_path / "c", "ns", dim=8) as cache:
        cache.get_many(["a", "nope"])  # from disk (a new object has an empty memory tier)
        cache.get_many(["a"])  # now from memory
        assert (cache.disk_hits, cache.memory_hits, cache.misses) == (1, 1, 1)


def test_memory_tier_is_a_bounded_lru_and_get_memory_never_reads_disk(tmp_path: Path) -> None:
    data = vectors(3, 4)
    with EmbeddingCache(tmp_path / "c", "ns", dim=4, memory_items=2) as cache:
        cache.set_many(zip(["a", "b", "c"], data, strict=True))  # "a" falls out of memory (LRU of 2)
        memory = cache.get_memory(["a", "b", "c"])
        assert memory[0] is None and np.array_equal(memory[1], data[1]) and np.array_equal(memory[2], data[2])
        assert cache.memory_hits == 2 and cache.misses == 0 and cache.disk_hits == 0
        assert np.array_equal(cache.get_many(["a"])[0], data[0])  # still on disk
        assert cache.disk_hits == 1
    with EmbeddingCache(tmp_path / "c", "ns", dim=4, memory_items=0) as cache:
        cache.set_many([("d", data[0])])
        assert cache.get_memory(["a", "d"]) == [None, None]  # tier disabled


def test_size_limit_evicts_least_recently_stored(tmp_path: Path) -> None:
    dim = 1024  # 4 KiB per vector
    with EmbeddingCache(tmp_path / "c", "ns", size_limit_mb=1, dim=dim, memory_items=0) as cache:
        for batch in range(8):  # 4 MiB written in all
            texts = [f"text {batch}-{i}" for i in range(128)]
            cache.set_many(zip(texts, vectors(128, dim, seed=batch), strict=True))
            stats = cache.stats()
            assert stats.volume_bytes <= cache.size_limit_bytes
            assert stats.entries >= 128  # the batch just written always survives its own eviction
            assert all(v is not None for v in cache.get_many(texts))
        assert cache.stats().entries < 8 * 128
        assert cache.get_many(["text 0-0"]) == [None]  # the oldest went first


def test_wrong_size_or_malformed_vector_reads_as_miss(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c", "ns") as writer:  # no dim check on the writer
        writer.set_many([("short", np.ones(4, np.float32)), ("right", np.ones(8, np.float32))])
        key = writer.key("garbage")
    raw = diskcache.Cache(str(tmp_path / "c"))
    raw.set(key, b"MBV1\x01\xff\x00\x00\x00 not a vector")
    raw.close()
    with EmbeddingCache(tmp_path / "c", "ns", dim=8, memory_items=0) as cache:
        short, right, garbage = cache.get_many(["short", "right", "garbage"])
        assert short is None and garbage is None and np.array_equal(right, np.ones(8, np.float32))
        assert cache.misses == 2 and cache.disk_hits == 1


def test_encode_decode_vector() -> None:
    vector = vectors(1, 16)[0]
    assert np.array_equal(decode_vector(encode_vector(vector)), vector)
    half = vector.astype(np.float16)
    assert np.array_equal(decode_vector(encode_vector(half)), half.astype(np.float32))
    for bad in (b"", b"XXXX" + encode_vector(vector)[4:], encode_vector(vector)[:-1], "text", None):
        assert decode_vector(bad) is None
    with pytest.raises(ValueError):
        encode_vector(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError):
        encode_vector(np.ones(3, np.int64))


def test_no_message_text_is_stored_on_disk(tmp_path: Path) -> None:
    sentence = "the purple giraffe sings at midnight 7f3a9c"
    with EmbeddingCache(tmp_path / "c", "ns", dim=8) as cache:
        cache.set_many([(sentence, np.ones(8, np.float32))])
        key = cache.key(sentence)
        assert cache.get_many([sentence])[0] is not None
    assert len(key) == 64 and sentence not in key
    stored = all_bytes(tmp_path / "c")
    assert key.encode() in stored  # the entry is there, under its hash
    for needle in (sentence, "purple giraffe", "7f3a9c"):
        assert needle.encode("utf-8") not in stored
        assert needle.encode("utf-16-le") not in stored


def test_namespaces_do_not_share_vectors(tmp_path: Path) -> None:
    a = EmbeddingCache(tmp_path / "c", "encoder-a", dim=4)
    b = EmbeddingCache(tmp_path / "c", "encoder-b", dim=4)
    try:
        assert a.key("hello") != b.key("hello")
        a.set_many([("hello", np.ones(4, np.float32))])
        assert b.get_many(["hello"]) == [None]
        assert a.get_many(["hello"])[0] is not None
    finally:
        a.close()
        b.close()


def test_corrupt_database_is_moved_aside_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "cache"
    with EmbeddingCache(directory, "ns", dim=4) as cache:
        cache.set_many([("kept?", np.ones(4, np.float32))])
    database = directory / "cache.db"
    database.write_bytes(np.random.default_rng(1).bytes(database.stat().st_size or 8192))
    with caplog.at_level(logging.WARNING):
        cache = EmbeddingCache(directory, "ns", dim=4)
    try:
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "moved aside" in warnings[0].getMessage()
        asides = list(tmp_path.glob("cache.corrupt-*"))
        assert len(asides) == 1 and (asides[0] / "cache.db").is_file()
        assert cache.get_many(["kept?"]) == [None]  # fresh cache
        cache.set_many([("new", np.full(4, 2, np.float32))])
        assert np.array_equal(cache.get_many(["new"])[0], np.full(4, 2, np.float32))
        assert cache.stats().entries == 1
    finally:
        cache.close()


def test_cache_path_that_is_a_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cache"
    path.write_bytes(b"not a directory")
    with caplog.at_level(logging.WARNING), EmbeddingCache(path, "ns", dim=4) as cache:
        cache.set_many([("x", np.ones(4, np.float32))])
        assert cache.get_many(["x"])[0] is not None
    assert path.is_dir() and len(list(tmp_path.glob("cache.corrupt-*"))) == 1
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


class _Tripwire:
    """Unpickling this creates a file: proof that pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_values_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "UNPICKLED"
    with EmbeddingCache(tmp_path / "c", "ns", dim=4) as cache:
        key = cache.key("hello")
    raw = diskcache.Cache(str(tmp_path / "c"))  # the default Disk pickles objects
    raw.set(key, _Tripwire(marker))
    raw.close()
    assert b"UNPICKLED" in all_bytes(tmp_path / "c")  # really stored as a pickle
    with pytest.raises(FileNotFoundError):
        pickle.loads(pickle.dumps(_Tripwire(tmp_path / "no-dir" / "x")))  # sanity: unpickling does call it

    with EmbeddingCache(tmp_path / "c", "ns", dim=4, memory_items=0) as cache:
        assert cache.get_many(["hello"]) == [None]
        assert cache.misses == 1
        cache.set_many([("hello", np.ones(4, np.float32))])  # a fresh vector replaces it
        assert np.array_equal(cache.get_many(["hello"])[0], np.ones(4, np.float32))
    assert not marker.exists()
