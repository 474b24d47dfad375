"""The settings form: everything ``/moodbot config`` sets, checked against the guild of the URL, applied as diffs.

An id that is not this guild's (a channel, a role) can only come from a forged form: it is refused with a 400 and
nothing is stored. A value a person typed or chose (the threshold, the flag signals, the language pin) is checked
by the store's own parsers; a wrong one shows the form again with the message next to the field, nothing stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from bot.cogs.config import SIGNAL_NAMES
from bot.dashboard.access import GuildAccess
from bot.store import AsyncStore, GuildConfig
from bot.store.channel_kind import ChannelKind
from classifier.flag_policy import FLAG_THRESHOLD_RANGE, HARMFUL, NEGATIVE, SIGNALS, parse_flag_on
from classifier.language import AUTO, ENGLISH, MULTILINGUAL, parse_language_pin

T = TypeVar("T")

#: The flag-signal choices of ``/moodbot config flag``, as the form's option values (the store's own spelling).
FLAG_ON_CHOICES = {
    ",".join(sorted(choice)): " or ".join(SIGNAL_NAMES[signal] for signal in SIGNALS if signal in choice)
    for choice in (frozenset({HARMFUL, NEGATIVE}), frozenset({HARMFUL}), frozenset({NEGATIVE}))
}
#: Suggestions for the language field; any ISO 639-1 code is accepted too.
LANGUAGE_SUGGESTIONS = {
    AUTO: "detect per message", ENGLISH: "always the English encoder", MULTILINGUAL: "always the multilingual encoder",
}


class InvalidSettingsError(Exception):
    """Values the store would refuse: ``errors`` names each field and says what is allowed."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class FormValues:
    """What the form shows: the stored settings, or what was submitted when some of it was refused."""

    modlog: str
    threshold: str
    flag_on: str
    language: str
    auto_flag: bool
    history: bool
    live: frozenset[int]
    disabled: frozenset[int]
    exempt: frozenset[int]

    @classmethod
    def of(cls, config: GuildConfig) -> FormValues:
        return cls(
            modlog=str(config.modlog_channel_id or ""), threshold=f"{config.flag_threshold:.2f}",
            flag_on=",".join(sorted(config.flag_on)), language=config.language or AUTO,
            auto_flag=config.auto_flag, history=config.history, live=config.live_channels,
            disabled=config.disabled_channels, exempt=config.exempt_roles,
        )


@dataclass(frozen=True)
class WantedSettings:
    modlog_channel_id: int | None
    flag_threshold: float | None  # None: the bot's default
    flag_on: frozenset[str]
    language: str | None  # None: detect per message
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


def submitted(form: Mapping[str, Any], access: GuildAccess) -> FormValues:
    """The submitted form as the page shows it; any id that is not this guild's is refused (400), never stored."""
    channels = {channel.id for channel in access.text_channels}
    roles = {role.id for role in access.guild.roles if not role.is_default()}
    modlog = str(form.get("modlog", ""))
    if modlog:
        _ids(form, "modlog", channels, "Channel")
    return FormValues(
        modlog=modlog, threshold=str(form.get("threshold", "")).strip(), flag_on=str(form.get("flag_on", "")),
        language=str(form.get("language", "")).strip(), auto_flag=form.get("auto_flag") == "on",
        history=form.get("history") == "on", live=_ids(form, "live", channels, "Channel"),
        disabled=_ids(form, "disabled", channels, "Channel"), exempt=_ids(form, "exempt", roles, "Role"),
    )


def _threshold(raw: str) -> float | None:
    if not raw:
        return None
    low, high = FLAG_THRESHOLD_RANGE
    try:
        threshold = float(raw)
    except ValueError:
        threshold = -1.0
    if not low <= threshold <= high:
        raise ValueError(f"The flag threshold must be a number between {low} and {high}, not {raw!r}.")
    return threshold


def _checked(errors: dict[str, str], name: str, parse: Callable[[str], T], raw: str) -> T | None:
    """``parse(raw)``, or ``None`` with its message in ``errors[name]``."""
    try:
        return parse(raw)
    except ValueError as refused:
        errors[name] = str(refused)
        return None


def parse(values: FormValues) -> WantedSettings:
    """The settings ``values`` ask for, checked as the store checks them; :class:`InvalidSettingsError` names every
    refused field."""
    errors: dict[str, str] = {}
    threshold = _checked(errors, "threshold", _threshold, values.threshold)
    flag_on = _checked(errors, "flag_on", parse_flag_on, values.flag_on)
    language = _checked(errors, "language", parse_language_pin, values.language)
    if errors:
        raise InvalidSettingsError(errors)
    assert flag_on is not None
    return WantedSettings(
        modlog_channel_id=int(values.modlog) if values.modlog else None, flag_threshold=threshold, flag_on=flag_on,
        language=language, auto_flag=values.auto_flag, history=values.history, live_channels=values.live,
        disabled_channels=values.disabled, exempt_roles=values.exempt,
    )


def _role_name(access: GuildAccess, role_id: int) -> str:
    role = access.guild.get_role(role_id)
    return f"@{role.name}" if role is not None else f"role {role_id} (deleted)"


def _setting_changes(access: GuildAccess, current: GuildConfig, wanted: WantedSettings) -> dict[str, tuple[Any, str]]:
    """The guild settings row's changed values, each with its audit-log line."""
    changes: dict[str, tuple[Any, str]] = {}
    if wanted.modlog_channel_id != current.modlog_channel_id:
        shown = access.channel_name(wanted.modlog_channel_id) if wanted.modlog_channel_id else "none"
        changes["modlog_channel_id"] = (wanted.modlog_channel_id, f"mod-log channel → {shown}")
    if wanted.flag_threshold is not None and wanted.flag_threshold != current.flag_threshold:
        changes["flag_threshold"] = (wanted.flag_threshold, f"flag threshold → {wanted.flag_threshold:.2f}")
    if wanted.flag_on != current.flag_on:
        value = ",".join(sorted(wanted.flag_on))
        changes["flag_on"] = (value, f"flag on → {FLAG_ON_CHOICES[value]}")
    if wanted.language != current.language:
        changes["language"] = (wanted.language, f"language → {wanted.language or 'auto (detect per message)'}")
    for name in ("auto_flag", "history"):
        switch = getattr(wanted, name)
        if switch != getattr(current, name):
            changes[name] = (switch, f"{name.replace('_', '-')} → {'on' if switch else 'off'}")
    return changes


async def apply(store: AsyncStore, access: GuildAccess, current: GuildConfig, wanted: WantedSettings) -> list[str]:
    """Write what differs from ``current``; returns one line per change, for the audit log."""
    guild_id = access.guild.id
    settings = _setting_changes(access, current, wanted)
    if settings:
        await store.update_guild(guild_id, **{name: value for name, (value, _) in settings.items()})
    changes = [line for _, line in settings.values()]
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
