"""REST API v10: request recording, auth, fault injection and the channel/guild/command routes."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .models import SEND_MESSAGES, FakeChannel, FakeGuild, FakeMessage, RecordedRequest, UploadedFile
from .payloads import channel_payload, guild_payload, member_payload, role_payload, user_payload

if TYPE_CHECKING:
    from .server import FakeDiscordServer

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
SERVER_KEY: web.AppKey[FakeDiscordServer] = web.AppKey("fake_discord", object)  # type: ignore[arg-type]
RECORD_KEY: web.RequestKey[RecordedRequest] = web.RequestKey("fake_discord.record", RecordedRequest)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error answered as Discord's JSON error body."""

    def __init__(self, status: int, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly (discord.py compares it verbatim)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def no_content() -> web.Response:
    return web.Response(status=204)


def server_of(request: web.Request) -> FakeDiscordServer:
    return request.app[SERVER_KEY]


def record_of(request: web.Request) -> RecordedRequest:
    """The recorded request, carrying the parsed JSON body and uploaded files."""
    rec: RecordedRequest = request[RECORD_KEY]
    return rec


async def _parse_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    if not request.can_read_body:
        return None, []
    if request.content_type.startswith("multipart/"):
        body: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name or ""
            if name == "payload_json":
                body = json.loads(await part.text())
            else:
                data = bytes(await part.read(decode=False))
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                files.append(UploadedFile(name, part.filename or name, ctype, data))
        return body, files
    text = await request.text()
    return (json.loads(text) if text else None), []


def _error_for_fault(status: int, retry_after: float, is_global: bool, scope: str) -> web.Response:
    if status != 429:
        return json_response({"message": f"{status}: Fake server error", "code": 0}, status)
    headers = {
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": "fake-bucket",
        "X-RateLimit-Scope": scope,
        "Via": "1.1 google",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global, "code": 0}
    return json_response(body, 429, headers)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every API request, enforce the token, inject faults and render :class:`ApiError`."""
    if not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    server = server_of(request)
    body, files = await _parse_body(request)
    rec = RecordedRequest(request.method, request.path[len(API_PREFIX) :], dict(request.query), body, files)
    request[RECORD_KEY] = rec
    server.requests.append(rec)
    response: web.StreamResponse
    token_free = rec.path.startswith(("/webhooks/", "/interactions/")) or (
        rec.path.startswith("/users/@me") and request.headers.get("Authorization", "").startswith("Bearer ")
    )
    fault = server.take_fault(rec)
    if server.token is not None and not token_free and request.headers.get("Authorization") != f"Bot {server.token}":
        response = json_response({"message": "401: Unauthorized", "code": 0}, 401)
    elif fault is not None:
        log.info("injecting %s for %s %s", fault.status, rec.method, rec.path)
        response = _error_for_fault(fault.status, fault.retry_after, fault.is_global, fault.scope)
    else:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = json_response({"message": exc.message, "code": exc.code}, exc.status)
        except Exception as exc:  # surfaced to tests through server.handler_errors
            log.exception("fake Discord handler failed for %s %s", rec.method, rec.path)
            server.handler_errors.append(f"{rec.method} {rec.path}: {exc!r}")
            response = json_response({"message": "500: Internal Server Error", "code": 0}, 500)
    rec.status = response.status
    server.notify()
    return response


# ---------------------------------------------------------------------- lookups


def _channel(request: web.Request) -> FakeChannel:
    channel = server_of(request).channels.get(int(request.match_info["channel_id"]))
    if channel is None:
        raise ApiError(404, "Unknown Channel", 10003)
    return channel


def _guild(request: web.Request) -> FakeGuild:
    guild = server_of(request).guilds.get(int(request.match_info["guild_id"]))
    if guild is None:
        raise ApiError(404, "Unknown Guild", 10004)
    return guild


def _message(request: web.Request) -> FakeMessage:
    channel = _channel(request)
    msg = server_of(request).message(int(request.match_info["message_id"]))
    if msg is None or msg.deleted or msg.ephemeral or msg.channel_id != channel.id:
        raise ApiError(404, "Unknown Message", 10008)
    return msg


# ---------------------------------------------------------------------- handlers


async def get_me(request: web.Request) -> web.Response:
    if request.headers.get("Authorization", "").startswith("Bearer "):  # an OAuth2 user, not the bot
        from .oauth import user_me

        return await user_me(request)
    user = server_of(request).bot_user
    return json_response({**user_payload(user), "verified": True, "mfa_enabled": False, "flags": 0})


async def get_application(request: web.Request) -> web.Response:
    server = server_of(request)
    guild = next(iter(server.guilds.values()), None)
    owner = server.users[guild.owner_id] if guild else server.bot_user
    return json_response(
        {
            "id": str(server.application_id),
            "name": server.bot_user.name,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": user_payload(owner),
            "verify_key": "0" * 64,
            "flags": 0,
            "bot": user_payload(server.bot_user),
        }
    )


async def get_gateway(request: web.Request) -> web.Response:
    server = server_of(request)
    limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": server.max_concurrency}
    return json_response({"url": server.gateway_url, "shards": server.shard_count, "session_start_limit": limit})


async def get_channel(request: web.Request) -> web.Response:
    return json_response(channel_payload(_channel(request)))


async def post_message(request: web.Request) -> web.Response:
    server = server_of(request)
    channel = _channel(request)
    guild = server.guilds[channel.guild_id]
    if not guild.permissions_of(server.bot_user.id) & SEND_MESSAGES:
        raise ApiError(403, "Missing Permissions", 50013)
    rec = record_of(request)
    payload = rec.json or {}
    if not (payload.get("content") or payload.get("embeds") or payload.get("components") or rec.files):
        raise ApiError(400, "Cannot send an empty message", 50006)
    msg = await server.create_message(channel.id, server.bot_user.id, payload, rec.files)
    return json_response(msg.data)


async def get_messages(request: web.Request) -> web.Response:
    channel = _channel(request)
    query = request.query

    def opt(name: str) -> int | None:
        return int(query[name]) if name in query else None

    msgs = server_of(request).history(
        channel.id, int(query.get("limit", 50)), before=opt("before"), after=opt("after"), around=opt("around")
    )
    return json_response([m.data for m in msgs])


async def get_message(request: web.Request) -> web.Response:
    return json_response(_message(request).data)


async def patch_message(request: web.Request) -> web.Response:
    server = server_of(request)
    msg = _message(request)
    if msg.author_id != server.bot_user.id:
        raise ApiError(403, "Cannot edit a message authored by another user", 50005)
    rec = record_of(request)
    await server.edit_message(msg, rec.json or {}, rec.files)
    return json_response(msg.data)


async def delete_message(request: web.Request) -> web.Response:
    await server_of(request).delete_message(_message(request))
    return no_content()


async def bulk_delete_messages(request: web.Request) -> web.Response:
    """Discord's bulk delete: 2 to 100 message ids of the channel, unknown ones refused."""
    server, channel = server_of(request), _channel(request)
    ids = [int(i) for i in (record_of(request).json or {}).get("messages", [])]
    if not 2 <= len(ids) <= 100:
        raise ApiError(400, "Invalid Form Body: messages must hold 2 to 100 ids", 50035)
    found = [server.message(i) for i in ids]
    messages = [m for m in found if m is not None and not m.deleted and m.channel_id == channel.id]
    if len(messages) != len(ids):
        raise ApiError(404, "Unknown Message", 10008)
    await server.delete_messages(channel.id, messages)
    return no_content()


async def put_reaction(request: web.Request) -> web.Response:
    msg = _message(request)
    emoji = request.match_info["emoji"]
    name, _, emoji_id = emoji.partition(":")
    reactions = msg.data.setdefault("reactions", [])
    for reaction in reactions:
        if reaction["emoji"]["name"] == name:
            if not reaction["me"]:
                reaction.update(me=True, count=reaction["count"] + 1)
            break
    else:
        reactions.append(
            {
                "emoji": {"id": emoji_id or None, "name": name},
                "count": 1,
                "count_details": {"burst": 0, "normal": 1},
                "me": True,
                "me_burst": False,
                "burst_colors": [],
            }
        )
    return no_content()


async def delete_own_reaction(request: web.Request) -> web.Response:
    msg = _message(request)
    name = request.match_info["emoji"].partition(":")[0]
    for reaction in list(msg.data.get("reactions", [])):
        if reaction["emoji"]["name"] == name and reaction["me"]:
            reaction.update(me=False, count=reaction["count"] - 1)
            if reaction["count"] == 0:
                msg.data["reactions"].remove(reaction)
    return no_content()


async def post_typing(request: web.Request) -> web.Response:
    _channel(request)
    return no_content()


async def get_guild(request: web.Request) -> web.Response:
    guild = _guild(request)
    return json_response({**guild_payload(guild, full=False), "approximate_member_count": len(guild.members)})


async def get_guild_channels(request: web.Request) -> web.Response:
    return json_response([channel_payload(c) for c in _guild(request).channels.values()])


async def get_guild_roles(request: web.Request) -> web.Response:
    return json_response([role_payload(r) for r in _guild(request).roles.values()])


async def get_member(request: web.Request) -> web.Response:
    member = _guild(request).members.get(int(request.match_info["user_id"]))
    if member is None:
        raise ApiError(404, "Unknown Member", 10007)
    return json_response(member_payload(member))


async def get_members(request: web.Request) -> web.Response:
    guild = _guild(request)
    after = int(request.query.get("after", 0))
    limit = int(request.query.get("limit", 1))
    members = sorted((m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id)
    return json_response([member_payload(m) for m in members[:limit]])


def _command_scope(request: web.Request) -> int | None:
    server = server_of(request)
    if int(request.match_info["application_id"]) != server.application_id:
        raise ApiError(403, "Missing Access", 50001)
    return _guild(request).id if "guild_id" in request.match_info else None


async def get_commands(request: web.Request) -> web.Response:
    server = server_of(request)
    guild_id = _command_scope(request)
    return json_response(server.guild_commands.get(guild_id, []) if guild_id else server.global_commands)


async def put_commands(request: web.Request) -> web.Response:
    guild_id = _command_scope(request)
    return json_response(server_of(request).register_commands(guild_id, record_of(request).json or []))


async def get_attachment(request: web.Request) -> web.Response:
    """CDN stand-in so ``Attachment.read()`` works."""
    att = server_of(request).attachments.get(int(request.match_info["attachment_id"]))
    if att is None:
        raise web.HTTPNotFound()
    return web.Response(body=att.data, content_type=att.content_type)


async def unknown_route(request: web.Request) -> web.Response:
    """Catch-all: log, remember and answer Discord-style 404."""
    server = server_of(request)
    rec: RecordedRequest | None = request.get(RECORD_KEY)
    if rec is not None:
        server.unknown_routes.append(rec)
    log.warning("fake Discord: unknown route %s %s", request.method, request.path)
    return json_response({"message": "Unknown route", "code": 0}, 404)


def add_routes(app: web.Application) -> None:
    """Register the REST routes, then the catch-all."""
    prefix = API_PREFIX
    r = app.router
    r.add_get(f"{prefix}/users/@me", get_me)
    r.add_get(f"{prefix}/oauth2/applications/@me", get_application)
    r.add_get(f"{prefix}/gateway", get_gateway)
    r.add_get(f"{prefix}/gateway/bot", get_gateway)
    ch = f"{prefix}/channels/{{channel_id:\\d+}}"
    r.add_get(ch, get_channel)
    r.add_post(f"{ch}/typing", post_typing)
    r.add_post(f"{ch}/messages", post_message)
    r.add_get(f"{ch}/messages", get_messages)
    r.add_post(f"{ch}/messages/bulk-delete", bulk_delete_messages)
    msg = f"{ch}/messages/{{message_id:\\d+}}"
    r.add_get(msg, get_message)
    r.add_patch(msg, patch_message)
    r.add_delete(msg, delete_message)
    r.add_put(f"{msg}/reactions/{{emoji}}/@me", put_reaction)
    r.add_delete(f"{msg}/reactions/{{emoji}}/@me", delete_own_reaction)
    g = f"{prefix}/guilds/{{guild_id:\\d+}}"
    r.add_get(g, get_guild)
    r.add_get(f"{g}/channels", get_guild_channels)
    r.add_get(f"{g}/roles", get_guild_roles)
    r.add_get(f"{g}/members", get_members)
    r.add_get(f"{g}/members/{{user_id:\\d+}}", get_member)
    apps = f"{prefix}/applications/{{application_id:\\d+}}"
    for path in (f"{apps}/commands", f"{apps}/guilds/{{guild_id:\\d+}}/commands"):
        r.add_get(path, get_commands)
        r.add_put(path, put_commands)
    r.add_route("*", "/{tail:.*}", unknown_route)
