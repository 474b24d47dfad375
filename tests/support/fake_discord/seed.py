"""A small default world: one guild, a few channels, a moderator and a normal member."""

from __future__ import annotations

from dataclasses import dataclass

from .server import FakeDiscordServer

MODERATOR_PERMISSIONS = (1 << 1) | (1 << 5) | (1 << 13) | (1 << 40)  # kick, manage guild/messages, moderate


@dataclass(frozen=True)
class Seed:
    """Ids of the seeded objects."""

    guild_id: int
    general_id: int
    random_id: int
    mod_log_id: int
    moderator_role_id: int
    moderator_id: int
    member_id: int


def seed_default(server: FakeDiscordServer, *, name: str = "Mood Test Guild", shard: int | None = None) -> Seed:
    """Populate ``server`` with the default world (its guild on ``shard``, if given) and return its ids."""
    guild = server.add_guild(name, shard=shard)
    general = server.add_channel(guild.id, "general")
    random = server.add_channel(guild.id, "random")
    mod_log = server.add_channel(guild.id, "mod-log")
    mod_role = server.add_role(guild.id, "Moderator", permissions=MODERATOR_PERMISSIONS)
    moderator = server.add_member(guild.id, name="moderator", roles=[mod_role.id])
    member = server.add_member(guild.id, name="alice")
    return Seed(guild.id, general.id, random.id, mod_log.id, mod_role.id, moderator.user.id, member.user.id)
