"""Who gets auto-flagged: ``wants_flagging`` on real discord.py messages parsed from the fake server's payloads."""

from __future__ import annotations

import discord
import pytest

from bot.cogs.moderation import wants_flagging
from bot.store import GuildConfig
from tests.support.bot import parsed_guild, parsed_message
from tests.support.fake_discord import FakeDiscordServer, FakeMessage, Seed, seed_default


@pytest.fixture
def offline() -> tuple[FakeDiscordServer, Seed]:
    """A seeded fake server that is never started: its payloads go straight to discord.py's parsers."""
    server = FakeDiscordServer()
    return server, seed_default(server)


async def message_by(server: FakeDiscordServer, seed: Seed, author_id: int) -> discord.Message:
    sent = await server.send_message(seed.general_id, author_id, "this update is awful")
    return parsed_message(parsed_guild(server, seed.guild_id), sent)


async def test_flags_everyone_by_default(offline: tuple[FakeDiscordServer, Seed]) -> None:
    server, seed = offline
    config = GuildConfig(seed.guild_id)
    member = await message_by(server, seed, seed.member_id)
    moderator = await message_by(server, seed, seed.moderator_id)
    assert isinstance(moderator.author, discord.Member)
    assert seed.moderator_role_id in {role.id for role in moderator.author.roles}
    assert wants_flagging(config, member) and wants_flagging(config, moderator)


async def test_exempt_role_holders_are_not_flagged(offline: tuple[FakeDiscordServer, Seed]) -> None:
    server, seed = offline
    config = GuildConfig(seed.guild_id, exempt_roles=frozenset({seed.moderator_role_id}))
    assert not wants_flagging(config, await message_by(server, seed, seed.moderator_id))
    assert wants_flagging(config, await message_by(server, seed, seed.member_id))


async def test_auto_flag_off_flags_nobody(offline: tuple[FakeDiscordServer, Seed]) -> None:
    server, seed = offline
    config = GuildConfig(seed.guild_id, auto_flag=False)
    assert not wants_flagging(config, await message_by(server, seed, seed.member_id))
    assert not wants_flagging(config, await message_by(server, seed, seed.moderator_id))


async def test_author_without_roles_is_flagged(offline: tuple[FakeDiscordServer, Seed]) -> None:
    """A message whose author is a plain user (no member object: they left the guild) has no exempt role."""
    server, seed = offline
    sent = await server.send_message(seed.general_id, seed.member_id, "this update is awful")
    payload = {k: v for k, v in sent.data.items() if k != "member"} | {
        "author": {"id": "999", "username": "gone", "discriminator": "0", "avatar": None, "global_name": None}}
    message = parsed_message(parsed_guild(server, seed.guild_id), FakeMessage(payload))
    assert isinstance(message.author, discord.User)
    assert wants_flagging(GuildConfig(seed.guild_id, exempt_roles=frozenset({seed.moderator_role_id})), message)
