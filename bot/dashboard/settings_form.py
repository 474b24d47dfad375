"""The settings form: everything ``/moodbot config`` sets, checked against the guild of the URL, applied as diffs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.dashboard.access import GuildAccess
from bot.store import AsyncStore, GuildConfig
from bot.store.channel_kind import ChannelKind
from classifier.flag_policy import FLAG_THRESHOLD_RANGE


@dataclass(frozen=True)
class WantedSettings:
    modlog_channel_id: int | None
    flag_threshold: float | None  # None: the bot's default
    auto_flag: bool
    history: bool
    live_channels: frozenset[int]
    disabled_channels: frozenset[int]
    exempt_roles: frozenset[int]


def _ids(form: Any, name: str, allowed: set[int], what: str) -> frozenset[int]:
    chosen = set()
    for raw in form.getall(name, []):
        if not str(raw).isdigit() or int(raw) not in allowed:
            raise web.HTTPBadRequest(text=f"{what} {raw!r} is not in this server.")
        chosen.add(int(raw))
    return frozenset(chosen)


def parse(form: Mapping[str, Any], access: GuildAccess) -> WantedSettings:
    """The submitted form; any id that is not this guild's is refused (400), never stored."""
    channels = {channel.id for channel in access.text_channels}
    roles = {role.id for role in access.guild.roles if not role.is_default()}
    modlog_raw = str(form.get("modlog", ""))
    modlog = _ids(form, "modlog", channels, "Channel") if modlog_raw else frozenset()
    threshold_raw = str(form.get("threshold", "")).strip()
    threshold = None
    if threshold_raw:
        low, high = FLAG_THRESHOLD_RANGE
        try:
            threshold = float(threshold_raw)
        except ValueError:
            threshold = -1.0
        if not low <= threshold <= high:
            raise web.HTTPBadRequest(text=f"The flag threshold must be a number between {low} and {high}.")
    return WantedSettings(
        modlog_channel_id=next(iter(modlog), None),
        flag_threshold=threshold,
        auto_flag=form.get("auto_flag") == "on",
        history=form.get("history") == "on",
        live_channels=_ids(form, "live", channels, "Channel"),
        disabled_channels=_ids(form, "disabled", channels, "Channel"),
        exempt_roles=_ids(form, "exempt", roles, "Role"),
    )


def _role_name(access: GuildAccess, role_id: int) -> str:
    role = access.guild.get_role(role_id)
    return f"@{role.name}" if role is not None else f"role {role_id} (deleted)"


async def apply(store: AsyncStore, access: GuildAccess, current: GuildConfig, wanted: WantedSettings) -> list[str]:
    """Write what differs from ``current``; returns one line per change, for the audit log."""
    guild_id = access.guild.id
    changes = []
    values: dict[str, object] = {}
    if wanted.modlog_channel_id != current.modlog_channel_id:
        values["modlog_channel_id"] = wanted.modlog_channel_id
        shown = access.channel_name(wanted.modlog_channel_id) if wanted.modlog_channel_id else "none"
        changes.append(f"mod-log channel → {shown}")
    if wanted.flag_threshold is not None and wanted.flag_threshold != current.flag_threshold:
        values["flag_threshold"] = wanted.flag_threshold
        changes.append(f"flag threshold → {wanted.flag_threshold:.2f}")
    for name in ("auto_flag", "history"):
        if getattr(wanted, name) != getattr(current, name):
            values[name] = getattr(wanted, name)
            changes.append(f"{name.replace('_', '-')} → {'on' if getattr(wanted, name) else 'off'}")
    if values:
        await store.update_guild(guild_id, **values)
    for kind, now, then in (
        (ChannelKind.LIVE, wanted.live_channels, current.live_channels),
        (ChannelKind.DISABLED, wanted.disabled_channels, current.disabled_channels),
    ):
        for channel_id in sorted(now ^ then):
            await store.set_channel(guild_id, channel_id, kind, channel_id in now)
            changes.append(f"{kind.value} channel {access.channel_name(channel_id)} "
                           f"{'added' if channel_id in now else 'removed'}")
    for role_id in sorted(wanted.exempt_roles ^ current.exempt_roles):
        await store.set_exempt_role(guild_id, role_id, role_id in wanted.exempt_roles)
        changes.append(f"exempt role {_role_name(access, role_id)} "
                       f"{'added' if role_id in wanted.exempt_roles else 'removed'}")
    return changes
