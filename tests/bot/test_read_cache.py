"""The per-process cache of guild settings and opt-outs (bot/store/read_cache.py), with a plain loader that records
what it was asked for."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.read_cache import ReadCache


class Source:
    """A dict behind a loader that records each call, and can hold a load until released or fail it."""

    def __init__(self, values: dict[int, str]) -> None:
        self.values = values
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def load(self, keys: list[int]) -> dict[int, str]:
        self.calls.append(keys)
        snapshot = {key: self.values[key] for key in keys}  # read before the wait: what a slow query returns
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_of_misses_is_one_load_and_later_reads_are_hits() -> None:
    source = Source({key: f"v{key}" for key in range(100)})
    cache = ReadCache(source.load, ttl_s=0.5, clock=Clock())
    values = await asyncio.gather(*(cache.get(index % 100) for index in range(10_000)))
    assert values == [f"v{index % 100}" for index in range(10_000)]
    assert len(source.calls) == 1 and sorted(source.calls[0]) == list(range(100))
    assert await cache.get(7) == "v7" and len(source.calls) == 1
    assert cache.stats.hits == 1 and cache.stats.joined == 10_000 - 100


async def test_a_value_is_read_again_once_its_ttl_passed() -> None:
    source, clock = Source({1: "old"}), Clock()
    cache = ReadCache(source.load, ttl_s=0.5, clock=clock)
    assert await cache.get(1) == "old"
    source.values[1] = "new"  # changed by another process
    clock.now = 0.49
    assert await cache.get(1) == "old"
    clock.now = 0.5
    assert await cache.get(1) == "new"
    assert len(source.calls) == 2


async def test_an_invalidation_during_a_load_keeps_its_result_out_of_the_cache() -> None:
    source = Source({1: "old"})
    cache = ReadCache(source.load, ttl_s=60, clock=Clock())
    source.release.clear()
    slow = asyncio.create_task(cache.get(1))  # reads "old", then waits
    await asyncio.sleep(0.01)
    source.values[1] = "new"
    cache.invalidate([1])  # this process just wrote "new"
    source.release.set()
    assert await slow == "old"  # that caller asked before the write
    assert await cache.get(1) == "new"  # nobody after the write sees the old value


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept() -> None:
    source = Source({1: "v"})
    cache = ReadCache(source.load, clock=Clock())
    source.fail = OSError("connection refused")
    results = await asyncio.gather(*(cache.get(1) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results) and len(source.calls) == 1
    source.fail = None
    assert await cache.get(1) == "v"


async def test_the_cache_holds_at_most_max_entries() -> None:
    source, clock = Source({key: str(key) for key in range(1000)}), Clock()
    cache = ReadCache(source.load, ttl_s=10, max_entries=100, clock=clock)
    for start in range(0, 1000, 50):
        await asyncio.gather(*(cache.get(key) for key in range(start, start + 50)))
    assert len(cache) == 100
    assert await cache.get(999) == "999" and len(source.calls) == 20  # the newest are kept


def test_a_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        ReadCache(Source({}).load, ttl_s=0)
