"""The dashboard's pages: guild picker, overview, review queue, settings and audit log.

Every guild page starts with :func:`guild_page`: the logged-in user, then their live permissions in the guild of
the URL (Manage Server to view and configure; Manage Messages in a flag's channel to review it). Every object id
in a URL or form (a flag, a channel, a role) is checked against that guild before it is used.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session

from bot.cogs.moderation.cards import REASON_NAMES
from bot.dashboard import settings_form
from bot.dashboard.access import GuildAccess, NoAccessError, guild_access
from bot.dashboard.auth import User, require_user
from bot.dashboard.charts import history_chart
from bot.dashboard.csrf import csrf_token
from bot.dashboard.keys import CONFIG, STORES
from bot.dashboard.review import review
from bot.dashboard.urls import safe_next
from bot.store import FlagStatus, ReviewAction
from bot.store.dashboard import FlagFilter
from bot.store.history import MoodCounts, SignalCounts, hour_of, hour_start

log = logging.getLogger(__name__)

RANGES = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24}
QUEUE_PAGE_SIZE = 25
AUDIT_PAGE_SIZE = 50
routes = web.RouteTableDef()


async def render(request: web.Request, template: str, context: Mapping[str, Any], status: int = 200) -> web.Response:
    """A page with the user, the CSRF token and the messages waiting to be shown."""
    session = await get_session(request)
    notes = session.pop("flash", [])
    return aiohttp_jinja2.render_template(
        template, request,
        {"csrf_token": csrf_token(session), "flash": notes, "user_name": session.get("user_name"), **context},
        status=status,
    )


async def flash(request: web.Request, message: str) -> None:
    session = await get_session(request)
    session["flash"] = [*session.get("flash", []), message]


def _int(raw: str | None, what: str) -> int:
    try:
        return int(raw or "")
    except ValueError:
        raise web.HTTPBadRequest(text=f"{what} must be a number, not {raw!r}.") from None


async def guild_page(request: web.Request) -> tuple[User, GuildAccess]:
    user = await require_user(request)
    guild_id = _int(request.match_info["guild_id"], "The server id")
    access = await guild_access(request.app[CONFIG].client, guild_id, user.id)
    if access is None:
        raise web.HTTPNotFound(text="That server does not exist, or you or the bot are not in it.")
    return user, access


def _range(request: web.Request) -> str:
    chosen = request.query.get("range", "7d")
    if chosen not in RANGES:
        raise web.HTTPBadRequest(text=f"range must be one of {', '.join(RANGES)}, not {chosen!r}.")
    return chosen


@routes.get("/")
async def picker(request: web.Request) -> web.Response:
    user = await require_user(request)
    client = request.app[CONFIG].client
    found = await asyncio.gather(*(guild_access(client, guild_id, user.id) for guild_id in user.guild_ids))
    guilds = [
        {"id": access.guild.id, "name": access.guild.name, "admin": access.manage_guild}
        for access in found if access is not None and (access.manage_guild or access.reviewable_channels)
    ]
    return await render(request, "picker.html", {"guilds": guilds})


@routes.get("/g/{guild_id}")
async def overview(request: web.Request) -> web.Response:
    _, access = await guild_page(request)
    access.require_manage_guild()
    chosen = _range(request)
    stores = request.app[STORES]
    since = hour_of(dt.datetime.now(dt.UTC)) - RANGES[chosen] + 1
    channels = await stores.history.by_channel(access.guild.id, since)
    flagged = await stores.dashboard.flags_by_channel(access.guild.id, hour_start(since))
    total = MoodCounts()
    for counts in channels.values():
        total.add(counts)
    rows = sorted(  # a channel with flags but no history (history off) still shows its flags
        ({"name": access.channel_name(cid), "counts": channels.get(cid, MoodCounts()), "flags": flagged.get(cid, 0)}
         for cid in channels.keys() | flagged.keys()),
        key=lambda row: (-row["counts"].share("negative"), row["name"]),
    )
    signals = [(REASON_NAMES[head], total.signals[head]) for head in REASON_NAMES if head in total.signals]
    context = {
        "access": access, "tab": "overview", "range": chosen, "ranges": list(RANGES), "total": total,
        "rows": rows, "signals": signals, "flags_in_range": sum(flagged.values()),
        "flag_counts": await stores.dashboard.flag_counts(access.guild.id),
    }
    return await render(request, "overview.html", context)


async def _hourly(request: web.Request) -> tuple[GuildAccess, str, int, dict[int, MoodCounts]]:
    _, access = await guild_page(request)
    access.require_manage_guild()
    chosen = _range(request)
    since = hour_of(dt.datetime.now(dt.UTC)) - RANGES[chosen] + 1
    return access, chosen, since, await request.app[STORES].history.by_hour(access.guild.id, since)


@routes.get("/g/{guild_id}/history.json")
async def history_json(request: web.Request) -> web.Response:
    """The numbers behind the chart, per hour."""
    _, chosen, _, hours = await _hourly(request)
    return web.json_response({
        "range": chosen,
        "hours": [
            {"hour": hour, "start": f"{dt.datetime.fromtimestamp(hour * 3600, dt.UTC):%Y-%m-%dT%H:%MZ}",
             "negative": c.negative, "neutral": c.neutral, "positive": c.positive,
             "mean_mood": None if c.mean_mood is None else round(c.mean_mood, 4), "harmful": c.harmful,
             "signals": {head: _signal_json(signal) for head, signal in sorted(c.signals.items())}}
            for hour, c in hours.items()
        ],
    })


def _signal_json(signal: SignalCounts) -> dict[str, object]:
    mean = signal.mean_score
    return {"scored": signal.scored, "flagged": signal.flagged, "mean_score": None if mean is None else round(mean, 4)}


@routes.get("/g/{guild_id}/chart.png")
async def chart(request: web.Request) -> web.Response:
    access, chosen, since, hours = await _hourly(request)
    png = history_chart(hours, since, since + RANGES[chosen] - 1, f"{access.guild.name}: mood over the last {chosen}")
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"})


def _day(raw: str, what: str) -> dt.datetime | None:
    if not raw:
        return None
    try:
        return dt.datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{what} must be a date like 2026-01-31, not {raw!r}.") from None


def _queue_filter(request: web.Request, access: GuildAccess) -> tuple[FlagFilter, dict[str, str]]:
    query = request.query
    shown = {name: query.get(name, "") for name in ("status", "channel", "reason", "since", "until")}
    shown["status"] = shown["status"] or FlagStatus.OPEN.value
    if shown["status"] != "all" and shown["status"] not in set(FlagStatus):
        raise web.HTTPBadRequest(text=f"status must be all or one of {', '.join(FlagStatus)}.")
    if shown["reason"] and shown["reason"] not in REASON_NAMES:
        raise web.HTTPBadRequest(text=f"reason must be one of {', '.join(REASON_NAMES)}.")
    status = None if shown["status"] == "all" else FlagStatus(shown["status"])
    channel_id = _int(shown["channel"], "channel") if shown["channel"] else None
    until = _day(shown["until"], "until")
    selection = FlagFilter(
        channel_ids=access.reviewable_channels, status=status, channel_id=channel_id, head=shown["reason"] or None,
        since=_day(shown["since"], "since"), until=until + dt.timedelta(days=1) if until else None,
    )
    return selection, shown


@routes.get("/g/{guild_id}/queue")
async def queue(request: web.Request) -> web.Response:
    _, access = await guild_page(request)
    access.require_reviewer()
    selection, shown = _queue_filter(request, access)
    page = max(1, _int(request.query.get("page") or "1", "page"))
    flags, total = await request.app[STORES].dashboard.flag_page(
        access.guild.id, selection, limit=QUEUE_PAGE_SIZE, offset=(page - 1) * QUEUE_PAGE_SIZE
    )
    pages = max(1, -(-total // QUEUE_PAGE_SIZE))
    context = {
        "access": access, "tab": "queue", "flags": flags, "total": total, "page": page, "pages": pages,
        "shown": shown, "statuses": list(FlagStatus), "reasons": REASON_NAMES, "actions": list(ReviewAction),
        "channels": [c for c in access.text_channels if c.id in selection.channel_ids],
        "page_url": lambda n: f"{request.path}?{urlencode({**shown, 'page': n})}", "back": request.path_qs,
    }
    return await render(request, "queue.html", context)


@routes.post("/g/{guild_id}/flags/{flag_id}/review")
async def review_flag(request: web.Request) -> web.StreamResponse:
    user, access = await guild_page(request)
    stores = request.app[STORES]
    flag = await stores.main.flag(_int(request.match_info["flag_id"], "The flag id"))
    if flag is None or flag.guild_id != access.guild.id:
        raise web.HTTPNotFound(text="There is no such flag in this server.")
    if not access.may_review_in(flag.channel_id):
        raise NoAccessError(f"You need the Manage Messages permission in {access.channel_name(flag.channel_id)}.")
    form = await request.post()
    try:
        action, seen = ReviewAction(str(form.get("action"))), FlagStatus(str(form.get("seen")))
    except ValueError:
        raise web.HTTPBadRequest(text="Unknown review action or status.") from None
    outcome = await review(request.app[CONFIG].client, stores.main, flag, user.id, action, seen)
    if outcome.applied:
        await stores.dashboard.audit(
            access.guild.id, user.id, user.name, "review",
            f"flag #{flag.id} in {access.channel_name(flag.channel_id)}: {seen.value} → {outcome.flag.status.value}",
        )
    back = safe_next(str(form.get("back", "")), f"/g/{access.guild.id}/queue")
    if request.headers.get("HX-Request") == "true":  # the queue's buttons: swap the flag's row in place
        context = {"access": access, "flag": outcome.flag, "note": outcome.message, "actions": list(ReviewAction),
                   "back": back, "csrf_token": csrf_token(await get_session(request))}
        return aiohttp_jinja2.render_template("_flag_row.html", request, context)
    await flash(request, outcome.message)  # without JavaScript: the form posts, the queue reloads with the note
    raise web.HTTPSeeOther(back)


async def _settings_form(
    request: web.Request, access: GuildAccess, values: settings_form.FormValues, errors: Mapping[str, str],
    status: int = 200,
) -> web.Response:
    context = {
        "access": access, "tab": "settings", "values": values, "errors": errors, "channels": access.text_channels,
        "roles": [role for role in reversed(access.guild.roles) if not role.is_default() and not role.managed],
        "flag_on_choices": settings_form.FLAG_ON_CHOICES, "languages": settings_form.LANGUAGE_SUGGESTIONS,
    }
    return await render(request, "settings.html", context, status=status)


@routes.get("/g/{guild_id}/settings")
async def settings_page(request: web.Request) -> web.Response:
    _, access = await guild_page(request)
    access.require_manage_guild()
    config = await request.app[STORES].main.guild_config(access.guild.id)
    return await _settings_form(request, access, settings_form.FormValues.of(config), {})


@routes.post("/g/{guild_id}/settings")
async def save_settings(request: web.Request) -> web.StreamResponse:
    user, access = await guild_page(request)
    access.require_manage_guild()
    store = request.app[STORES].main
    values = settings_form.submitted(await request.post(), access)
    try:
        wanted = settings_form.parse(values)
    except settings_form.InvalidSettingsError as refused:  # the form again, as typed, with what to fix
        return await _settings_form(request, access, values, refused.errors, status=400)
    changes = await settings_form.apply(store, access, await store.guild_config(access.guild.id), wanted)
    for change in changes:
        await request.app[STORES].dashboard.audit(access.guild.id, user.id, user.name, "settings", change)
    await flash(request, "Saved: " + "; ".join(changes) + "." if changes else "Nothing changed.")
    raise web.HTTPSeeOther(f"/g/{access.guild.id}/settings")


@routes.get("/g/{guild_id}/audit")
async def audit(request: web.Request) -> web.Response:
    _, access = await guild_page(request)
    access.require_manage_guild()
    page = max(1, _int(request.query.get("page") or "1", "page"))
    entries, total = await request.app[STORES].dashboard.audit_log(
        access.guild.id, limit=AUDIT_PAGE_SIZE, offset=(page - 1) * AUDIT_PAGE_SIZE
    )
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    context = {"access": access, "tab": "audit", "entries": entries, "page": page, "pages": pages}
    return await render(request, "audit.html", context)
