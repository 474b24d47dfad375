"""OAuth2 authorization-code grant as Discord serves it: ``/oauth2/authorize``, ``/api/oauth2/token`` (form-encoded
only) and the user's ``/users/@me`` and ``/users/@me/guilds`` under a Bearer token.

There is no consent page: a test names the user who "clicks Authorize" (:attr:`FakeOAuth.authorizing_user_id`), and
the authorize endpoint redirects straight back with a one-time code, echoing ``state`` as Discord does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from .payloads import user_payload
from .rest import API_PREFIX, ApiError, json_response, server_of

if TYPE_CHECKING:
    from .server import FakeDiscordServer

CLIENT_SECRET = "fake-client-secret"


@dataclass(frozen=True)
class Grant:
    user_id: int
    scopes: frozenset[str]
    redirect_uri: str


@dataclass
class FakeOAuth:
    """The OAuth side of the fake: issued codes and tokens, and who authorizes next."""

    client_secret: str = CLIENT_SECRET
    authorizing_user_id: int | None = None
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    #: Every ``state`` the authorize endpoint was given, in order.
    states: list[str] = field(default_factory=list)

    def bearer_user(self, request: web.Request) -> Grant | None:
        """The grant behind the request's ``Authorization: Bearer`` token, if any."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return self.tokens.get(token) if scheme == "Bearer" else None


def _oauth_error(error: str, status: int = 400) -> web.Response:
    return json_response({"error": error, "error_description": error.replace("_", " ")}, status)


async def authorize(request: web.Request) -> web.StreamResponse:
    server = server_of(request)
    query = request.query
    if query.get("client_id") != str(server.application_id):
        return web.Response(status=400, text="Unknown application")
    if query.get("response_type") != "code" or not query.get("redirect_uri"):
        return web.Response(status=400, text="Invalid OAuth2 request")
    user_id = server.oauth.authorizing_user_id
    if user_id is None:
        return web.Response(status=401, text="No user is logged in to the fake Discord")
    scopes = frozenset(query.get("scope", "").split())
    code = secrets.token_urlsafe(16)
    server.oauth.codes[code] = Grant(user_id, scopes, query["redirect_uri"])
    back = {"code": code}
    if "state" in query:
        server.oauth.states.append(query["state"])
        back["state"] = query["state"]
    separator = "&" if "?" in query["redirect_uri"] else "?"
    raise web.HTTPFound(f"{query['redirect_uri']}{separator}{urlencode(back)}")


async def token(request: web.Request) -> web.Response:
    """Exchange a code for an access token; like Discord, only ``application/x-www-form-urlencoded`` is accepted."""
    server = server_of(request)
    if request.content_type != "application/x-www-form-urlencoded":
        return _oauth_error("unsupported_grant_type")
    form = await request.post()
    if form.get("client_id") != str(server.application_id) or form.get("client_secret") != server.oauth.client_secret:
        return _oauth_error("invalid_client", 401)
    if form.get("grant_type") != "authorization_code":
        return _oauth_error("unsupported_grant_type")
    grant = server.oauth.codes.pop(str(form.get("code", "")), None)  # one use only
    if grant is None or form.get("redirect_uri") != grant.redirect_uri:
        return _oauth_error("invalid_grant")
    access = secrets.token_urlsafe(24)
    server.oauth.tokens[access] = grant
    return json_response({
        "access_token": access, "token_type": "Bearer", "expires_in": 604800,
        "refresh_token": secrets.token_urlsafe(24), "scope": " ".join(sorted(grant.scopes)),
    })


def _grant(request: web.Request, scope: str) -> Grant:
    grant = server_of(request).oauth.bearer_user(request)
    if grant is None:
        raise ApiError(401, "401: Unauthorized")
    if scope not in grant.scopes:
        raise ApiError(403, "Missing Access", 50001)
    return grant


async def user_me(request: web.Request) -> web.Response:
    """``/users/@me`` under a Bearer token: the user who authorized (scope ``identify``)."""
    server = server_of(request)
    grant = _grant(request, "identify")
    return json_response(user_payload(server.users[grant.user_id]))


async def user_guilds(request: web.Request) -> web.Response:
    """``/users/@me/guilds`` (scope ``guilds``): partial guilds with the user's guild-level permissions."""
    server: FakeDiscordServer = server_of(request)
    grant = _grant(request, "guilds")
    return json_response([
        {"id": str(guild.id), "name": guild.name, "icon": None, "owner": guild.owner_id == grant.user_id,
         "permissions": str(guild.permissions_of(grant.user_id))}
        for guild in server.guilds.values() if grant.user_id in guild.members
    ])


def add_routes(app: web.Application) -> None:
    """Register before the REST catch-all; ``/users/@me`` with a Bearer token is answered by :func:`user_me`."""
    app.router.add_get("/oauth2/authorize", authorize)
    app.router.add_post("/api/oauth2/token", token)
    app.router.add_get(f"{API_PREFIX}/users/@me/guilds", user_guilds)
