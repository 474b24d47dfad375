"""Gateway shards: a process sees and works only for its shards' guilds, logins take turns, commands sync once.

Real bot (``BotService``, as ``moodbot run`` with ``MOODBOT_SHARD_COUNT``/``MOODBOT_SHARD_IDS``), the fake Discord
server sharding as Discord does, a real SQLite file and, for the identify locks, a real redis-server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import discord
import numpy as np
import pytest
from discord import app_commands

from bot.command_sync import tree_digest
from bot.identify import LOCK_PREFIX, IdentifyGate
from bot.runner import BotService
from bot.sharding import ShardConfig, shard_of
from bot.store import Store
from classifier.inference.router import Paths
from tests.support.bot import THRESHOLD, handled, mod_log_posts
from tests.support.fake_discord import FakeDiscordServer, Seed, seed_default
from tests.support.helpers import NEGATIVE_MESSAGE, WAIT, free_port, poll_until
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def two_shards(fake_discord: FakeDiscordServer) -> tuple[Seed, Seed]:
    """A guild on shard 0 and a guild on shard 1 of 2."""
    fake_discord.shard_count = 2
    return seed_default(fake_discord, name="Guild 0", shard=0), seed_default(fake_discord, name="Guild 1", shard=1)


def unposted_flag(store: Store, guild: Seed) -> int:
    flag = store.add_flag(
        guild_id=guild.guild_id, channel_id=guild.general_id, message_id=guild.general_id + 1,
        author_id=guild.member_id, p_negative=0.97, text="stored before a crash", vector=np.ones(8, np.float32),
        namespace="test",
    )
    assert flag is not None
    return flag.id


async def test_a_shard_process_handles_only_its_guilds(fake_discord, two_shards, settings, start_bot) -> None:
    guild0, guild1 = two_shards
    assert [shard_of(g.guild_id, 2) for g in two_shards] == [0, 1]
    with Store.open_sync(settings.database_path) as store:
        for guild in two_shards:
            store.update_guild(guild.guild_id, modlog_channel_id=guild.mod_log_id, flag_threshold=THRESHOLD)
        flag0, flag1 = unposted_flag(store, guild0), unposted_flag(store, guild1)

    async with start_bot(shards=ShardConfig(2, (1,))) as service:
        assert [g.id for g in service.bot.guilds] == [guild1.guild_id]  # READY listed only shard 1's guild
        [(_, shard_id, count)] = fake_discord.gateway.identifies
        assert (shard_id, count) == (1, 2)
        # The re-poster posts the card of its own guild's unposted flag, and leaves the other shard's alone.
        [card] = await mod_log_posts(fake_discord, guild1.mod_log_id, 1)
        assert f"Flag #{flag1}" in card.embeds[0]["footer"]["text"]
        # A message in the other shard's guild never reaches this process; one in its own guild is flagged.
        other = await fake_discord.send_message(guild0.general_id, guild0.member_id, NEGATIVE_MESSAGE)
        mine = await fake_discord.send_message(guild1.general_id, guild1.member_id, NEGATIVE_MESSAGE)
        await mod_log_posts(fake_discord, guild1.mod_log_id, 2)
        stats = await handled(service.bot, 1)
        # Events reach a shard's websocket in order: had the other guild's message been sent to this process, it
        # would have been read (and cached by discord.py) before the one just handled.
        received = {message.id for message in service.bot.cached_messages}
        assert mine.id in received and other.id not in received
        assert (stats.admitted, stats.handled, stats.failed) == (1, 1, 0)
        assert fake_discord.bot_messages_in(guild0.mod_log_id) == []
    with Store.open_sync(settings.database_path) as store:
        assert store.flag(flag0).modlog_message_id is None
        assert store.flags(guild0.guild_id)[1] == 1 and store.flags(guild1.guild_id)[1] == 2

    # The process of shard 0 takes over its guild's card; the unchanged commands are not synced again.
    async with start_bot(shards=ShardConfig(2, (0,))) as service:
        assert [g.id for g in service.bot.guilds] == [guild0.guild_id]
        [card] = await mod_log_posts(fake_discord, guild0.mod_log_id, 1)
        assert f"Flag #{flag0}" in card.embeds[0]["footer"]["text"]
    syncs = fake_discord.requests_matching("PUT", rf"/applications/{fake_discord.application_id}/commands")
    assert len(syncs) == 1 and syncs[0].status == 200
    assert fake_discord.find_command("sentiment", None) is not None


async def test_one_process_on_every_shard_sees_every_guild(fake_discord, two_shards, start_bot) -> None:
    async with start_bot(shards=ShardConfig(2, None)) as service:  # MOODBOT_SHARD_COUNT=2 alone
        assert {g.id for g in service.bot.guilds} == {g.guild_id for g in two_shards}
        assert sorted(s.shard for s in fake_discord.gateway.connected) == [(0, 2), (1, 2)]
        assert all(service.bot.owns_guild(g.guild_id) for g in two_shards)


async def test_commands_are_synced_again_when_they_change(fake_discord, seeded_guild, start_bot) -> None:
    route = rf"/applications/{fake_discord.application_id}/commands"
    async with start_bot():
        pass
    async with start_bot() as service:
        assert len(fake_discord.requests_matching("PUT", route)) == 1
        before = tree_digest(service.bot.tree)

        @app_commands.command(name="extra", description="a command added by an upgrade")
        async def extra(interaction) -> None:  # pragma: no cover - never invoked
            pass

        service.bot.tree.add_command(extra)
        assert tree_digest(service.bot.tree) != before
        service.bot.tree.remove_command("extra")
        assert tree_digest(service.bot.tree) == before


async def concurrency(value: int) -> int:
    return value


async def identify_times(gates: list[tuple[IdentifyGate, int]]) -> list[float]:
    """When each ``(gate, shard)`` may identify, as processes starting together would ask."""
    started = time.monotonic()

    async def one(gate: IdentifyGate, shard: int) -> float:
        await gate.wait(shard, initial=True)
        return time.monotonic() - started

    try:
        return await asyncio.gather(*(one(gate, shard) for gate, shard in gates))
    finally:
        for gate, _ in gates:
            await gate.aclose()


async def test_logins_take_turns_per_bucket_through_redis(redis_server: RedisServer) -> None:
    def gate(limit: int) -> IdentifyGate:  # one per process
        return IdentifyGate(lambda: concurrency(limit), redis_server.url, interval_s=1.0)

    one_bucket = sorted(await identify_times([(gate(1), 0), (gate(1), 1), (gate(1), 2)]))
    assert one_bucket[0] < 0.5 and one_bucket[1] >= 0.95 and one_bucket[2] >= 1.95
    admin = redis_server.client()
    await poll_until(lambda: not admin.exists(f"{LOCK_PREFIX}0"), what="the last login's lock to expire")
    two_buckets = await identify_times([(gate(2), 0), (gate(2), 1)])
    assert max(two_buckets) < 0.5  # max_concurrency 2: shards 0 and 1 are in different buckets


async def test_without_redis_processes_stagger(caplog: pytest.LogCaptureFixture) -> None:
    def gate(url: str | None) -> IdentifyGate:
        return IdentifyGate(lambda: concurrency(1), url, interval_s=0.5, timeout_s=0.2)

    times = await identify_times([(gate(None), 0), (gate(None), 2)])
    assert times[0] < 0.3 and times[1] >= 0.95  # shard 2 goes in the third round
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    [late] = await identify_times([(gate(unreachable), 1)])
    assert late >= 0.45 and "could not take the identify lock for shard 1 in Redis" in caplog.text


async def test_a_sharded_bot_refused_at_login_stops_cleanly(
    fake_discord, two_shards, settings, shipped_classifier
) -> None:
    """discord.py's ``AutoShardedBot.close()`` fails on a bot that never connected: the runner must not call it."""
    fake_discord.token = "another-token"
    service = BotService(replace(settings, shards=ShardConfig(2, (0,))), Paths.single(shipped_classifier))
    with pytest.raises(discord.LoginFailure):
        await asyncio.wait_for(service.run(asyncio.Event()), WAIT)
