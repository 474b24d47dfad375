"""Builders for Discord API v10 JSON payloads from the in-memory model."""

from __future__ import annotations

import datetime
import re
from typing import Any

from .models import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


def iso_now() -> str:
    """Current time as Discord's ISO-8601 timestamp."""
    return datetime.datetime.now(datetime.UTC).isoformat()


def user_payload(user: FakeUser) -> dict[str, Any]:
    """A user object."""
    return {
        "id": str(user.id),
        "username": user.name,
        "discriminator": "0",
        "global_name": user.global_name,
        "avatar": None,
        "bot": user.bot,
        "public_flags": 0,
    }


def member_payload(
    member: FakeMember, *, with_user: bool = True, permissions: int | None = None
) -> dict[str, Any]:
    """A guild member object; ``permissions`` is only present in interactions."""
    data: dict[str, Any] = {
        "roles": [str(r) for r in member.roles],
        "nick": member.nick,
        "avatar": None,
        "joined_at": member.joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if with_user:
        data["user"] = user_payload(member.user)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def role_payload(role: FakeRole) -> dict[str, Any]:
    """A role object."""
    data: dict[str, Any] = {
        "id": str(role.id),
        "name": role.name,
        "permissions": str(role.permissions),
        "position": role.position,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "managed": role.bot_id is not None,
        "mentionable": role.mentionable,
        "flags": 0,
    }
    if role.bot_id is not None:
        data["tags"] = {"bot_id": str(role.bot_id)}
    return data


def channel_payload(channel: FakeChannel) -> dict[str, Any]:
    """A guild text channel object."""
    return {
        "id": str(channel.id),
        "type": 0,
        "guild_id": str(channel.guild_id),
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": [],
        "topic": channel.topic,
        "nsfw": False,
        "parent_id": None,
        "rate_limit_per_user": 0,
        "last_message_id": str(channel.last_message_id) if channel.last_message_id else None,
    }


def guild_payload(guild: FakeGuild, *, full: bool) -> dict[str, Any]:
    """A guild object; ``full`` adds the GUILD_CREATE-only fields (channels, members...)."""
    data: dict[str, Any] = {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_progress_bar_enabled": False,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "preferred_locale": "en-US",
        "features": [],
        "roles": [role_payload(r) for r in guild.roles.values()],
        "emojis": [],
        "stickers": [],
    }
    if full:
        data.update(
            joined_at=iso_now(),
            large=False,
            unavailable=False,
            member_count=len(guild.members),
            channels=[channel_payload(c) for c in guild.channels.values()],
            threads=[],
            members=[member_payload(m) for m in guild.members.values()],
            presences=[],
            voice_states=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
    return data


def resolve_mentions(
    content: str, guild: FakeGuild, allowed: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Users, role ids and @everyone that ``content`` actually pings under ``allowed`` mentions."""
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse", []))
    explicit_users = set() if allowed is None else {int(u) for u in allowed.get("users", [])}
    explicit_roles = set() if allowed is None else {int(r) for r in allowed.get("roles", [])}
    users: list[dict[str, Any]] = []
    for raw in dict.fromkeys(USER_MENTION.findall(content)):
        uid = int(raw)
        member = guild.members.get(uid)
        if member is not None and ("users" in parse or uid in explicit_users):
            users.append({**user_payload(member.user), "member": member_payload(member, with_user=False)})
    roles = [
        r
        for r in dict.fromkeys(ROLE_MENTION.findall(content))
        if int(r) in guild.roles and ("roles" in parse or int(r) in explicit_roles)
    ]
    everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
    return users, roles, everyone
