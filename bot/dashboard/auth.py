"""Login with Discord: OAuth2 authorization-code grant, scopes ``identify`` and ``guilds``.

A random one-time ``state`` is bound to the pre-login session and must come back unchanged; the login starts a new
session (no fixation); the access token is used for ``/users/@me`` and ``/users/@me/guilds`` and then dropped,
so the dashboard holds no Discord credential of the user. The guild list only narrows the picker.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
import discord
from aiohttp import web
from aiohttp_session import get_session, new_session

from bot.dashboard.csrf import csrf_token
from bot.dashboard.keys import CONFIG, DiscordLogin
from bot.dashboard.urls import safe_next

log = logging.getLogger(__name__)

SCOPES = "identify guilds"
#: Guild-level bits that can make the dashboard useful to someone: the picker's first, coarse narrowing.
USEFUL_PERMISSIONS = discord.Permissions(administrator=True, manage_guild=True, manage_messages=True).value
STATE_KEY, NEXT_KEY = "oauth_state", "oauth_next"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    guild_ids: tuple[int, ...]  # where the user had a useful permission at login: only narrows the picker


async def current_user(request: web.Request) -> User | None:
    session = await get_session(request)
    if "user_id" not in session:
        return None
    return User(int(session["user_id"]), str(session["user_name"]), tuple(int(g) for g in session["guild_ids"]))


async def require_user(request: web.Request) -> User:
    """The logged-in user; otherwise a redirect to the login, coming back here afterwards."""
    user = await current_user(request)
    if user is None:
        raise web.HTTPFound("/login?" + urlencode({"next": request.path_qs}))
    return user


def redirect_uri(request: web.Request) -> str:
    return f"{request.app[CONFIG].base_url}/oauth/callback"


async def login(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    session = await get_session(request)
    state = secrets.token_urlsafe(32)
    session[STATE_KEY] = state
    session[NEXT_KEY] = safe_next(request.query.get("next"))
    query = {
        "client_id": str(config.client_id()), "redirect_uri": redirect_uri(request), "response_type": "code",
        "scope": SCOPES, "state": state, "prompt": "none",
    }
    raise web.HTTPFound(f"{config.urls.authorize}?{urlencode(query)}")


async def callback(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    session = await get_session(request)
    expected = session.pop(STATE_KEY, None)
    target = safe_next(session.pop(NEXT_KEY, None))
    sent = request.query.get("state", "")
    if not expected or not sent or not secrets.compare_digest(sent, str(expected)):
        log.warning("dashboard login refused: missing or wrong OAuth state")
        raise web.HTTPBadRequest(text="Login refused: the sign-in link was not started here or was used already.")
    code = request.query.get("code")
    if not code:
        raise web.HTTPBadRequest(text=f"Login cancelled ({request.query.get('error', 'no code')}).")
    try:
        user = await _exchange(config, code, redirect_uri(request))
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as error:
        log.warning("dashboard login failed at Discord: %s", error)
        raise web.HTTPBadGateway(text="Discord did not complete the login; please try again.") from None
    session = await new_session(request)  # a fresh session: nothing from before the login carries over
    session.update({"user_id": user.id, "user_name": user.name, "guild_ids": list(user.guild_ids)})
    csrf_token(session)
    log.info("dashboard login: user %d", user.id)
    raise web.HTTPFound(target)


async def logout(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPFound("/")


async def _exchange(config: DiscordLogin, code: str, redirect: str) -> User:
    """Trade the code for a token (form-encoded, as Discord requires), read the user and their guilds, drop it."""
    form = {
        "client_id": str(config.client_id()), "client_secret": config.client_secret,
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
    }
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        async with http.post(config.urls.token, data=form) as response:
            response.raise_for_status()
            token = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(config.urls.api("/users/@me"), headers=headers) as response:
            response.raise_for_status()
            me = await response.json()
        async with http.get(config.urls.api("/users/@me/guilds"), headers=headers) as response:
            response.raise_for_status()
            guilds = await response.json()
    name = me.get("global_name") or me["username"]
    useful = tuple(
        int(guild["id"]) for guild in guilds
        if guild.get("owner") or int(guild.get("permissions", 0)) & USEFUL_PERMISSIONS
    )
    return User(int(me["id"]), str(name), useful)
