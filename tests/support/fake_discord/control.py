"""Private ``/_control`` HTTP API to drive and inspect a server running in another process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import FakeInteraction, FakeMessage, RecordedRequest
from .rest import json_response, server_of

if TYPE_CHECKING:
    from .server import FakeDiscordServer


def message_view(msg: FakeMessage) -> dict[str, Any]:
    """A message as the control API reports it (payload plus server-only details)."""
    return {
        "data": msg.data,
        "allowed_mentions": msg.allowed_mentions,
        "ephemeral": msg.ephemeral,
        "deleted": msg.deleted,
        "files": [{"filename": f.filename, "size": len(f.data), "content_type": f.content_type} for f in msg.files],
    }


def request_view(req: RecordedRequest) -> dict[str, Any]:
    return {
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "json": req.json,
        "status": req.status,
        "files": [{"field": f.field, "filename": f.filename, "size": len(f.data)} for f in req.files],
    }


def interaction_view(interaction: FakeInteraction) -> dict[str, Any]:
    cb = interaction.callback
    return {
        "id": str(interaction.id),
        "callback": None if cb is None else {"type": cb.type, "data": cb.data, "flags": cb.flags},
        "original": None if interaction.original is None else message_view(interaction.original),
        "followups": [message_view(m) for m in interaction.followups],
    }


def seed_view(server: FakeDiscordServer) -> dict[str, Any]:
    """Ids of everything in the server, by name, for a process that only has the URL."""
    return {
        "api_base": server.api_base,
        "gateway_url": server.gateway_url,
        "control_url": f"{server.url}/_control",
        "application_id": str(server.application_id),
        "bot_user_id": str(server.bot_user.id),
        "guilds": [
            {
                "id": str(g.id),
                "name": g.name,
                "owner_id": str(g.owner_id),
                "channels": {c.name: str(c.id) for c in g.channels.values()},
                "roles": {r.name: str(r.id) for r in g.roles.values()},
                "members": {m.user.name: str(m.user.id) for m in g.members.values()},
            }
            for g in server.guilds.values()
        ],
    }


async def _body(request: web.Request) -> dict[str, Any]:
    data: dict[str, Any] = await request.json()
    return data


async def info(request: web.Request) -> web.Response:
    return json_response(seed_view(server_of(request)))


async def post_message(request: web.Request) -> web.Response:
    b = await _body(request)
    msg = await server_of(request).send_message(int(b["channel_id"]), int(b["author_id"]), b["content"])
    return json_response(message_view(msg))


async def list_messages(request: web.Request) -> web.Response:
    server = server_of(request)
    author = request.query.get("author_id")
    msgs = server.messages_in(int(request.match_info["channel_id"]), author_id=int(author) if author else None)
    return json_response([message_view(m) for m in msgs])


async def wait_message(request: web.Request) -> web.Response:
    """Long-poll: first message in ``channel_id`` newer than ``after_id`` (by ``author_id``); 408 on timeout."""
    b = await _body(request)
    after = int(b.get("after_id") or 0)
    author = int(b["author_id"]) if b.get("author_id") else None
    try:
        msg = await server_of(request).wait_for_message(
            int(b["channel_id"]), lambda m: m.id > after, float(b.get("timeout", 5.0)), author_id=author
        )
    except TimeoutError:
        return json_response({"message": "timeout"}, 408)
    return json_response(message_view(msg))


async def slash_command(request: web.Request) -> web.Response:
    b = await _body(request)
    interaction = await server_of(request).send_slash_command(
        int(b["guild_id"]),
        int(b["channel_id"]),
        int(b["user_id"]),
        b["name"],
        b.get("options"),
        subcommand=b.get("subcommand"),
        group=b.get("group"),
    )
    return json_response(interaction_view(interaction))


async def message_command(request: web.Request) -> web.Response:
    b = await _body(request)
    interaction = await server_of(request).send_message_command(
        int(b["guild_id"]), int(b["channel_id"]), int(b["user_id"]), b["name"], int(b["target_message_id"])
    )
    return json_response(interaction_view(interaction))


async def click_button(request: web.Request) -> web.Response:
    b = await _body(request)
    interaction = await server_of(request).click_button(
        int(b["guild_id"]), int(b["channel_id"]), int(b["user_id"]), int(b["message_id"]), b["custom_id"]
    )
    return json_response(interaction_view(interaction))


async def get_interaction(request: web.Request) -> web.Response:
    """State of an interaction; ``?wait=<seconds>`` long-polls until the bot has answered."""
    server = server_of(request)
    interaction = server.interactions.get(int(request.match_info["interaction_id"]))
    if interaction is None:
        return json_response({"message": "unknown interaction"}, 404)
    if "wait" in request.query:
        try:
            await interaction.response(float(request.query["wait"]))
        except TimeoutError:
            return json_response({"message": "timeout"}, 408)
    return json_response(interaction_view(interaction))


async def list_requests(request: web.Request) -> web.Response:
    server = server_of(request)
    return json_response(
        {
            "requests": [request_view(r) for r in server.requests],
            "unknown_routes": [request_view(r) for r in server.unknown_routes],
            "handler_errors": server.handler_errors,
        }
    )


async def gateway_state(request: web.Request) -> web.Response:
    gw = server_of(request).gateway
    return json_response(
        {"connected": len(gw.connected), "identify_count": gw.identify_count, "resume_count": gw.resume_count}
    )


async def gateway_shards(request: web.Request) -> web.Response:
    """The shard ``[id, count]`` of each connected session, and every IDENTIFY as ``[monotonic s, id, count]``."""
    gw = server_of(request).gateway
    return json_response(
        {
            "connected": sorted(list(session.shard) for session in gw.connected),
            "identifies": [list(identify) for identify in gw.identifies],
        }
    )


async def drop_gateway(request: web.Request) -> web.Response:
    b = await _body(request)
    dropped = await server_of(request).drop_gateway(
        abrupt=bool(b.get("abrupt", True)), code=int(b.get("code", 4000)), resumable=bool(b.get("resumable", True))
    )
    return json_response({"dropped": dropped})


async def fail_next(request: web.Request) -> web.Response:
    b = await _body(request)
    server_of(request).fail_next(
        int(b.get("count", 1)),
        status=int(b.get("status", 429)),
        method=b.get("method"),
        path=b.get("path"),
        retry_after=float(b.get("retry_after", 0.05)),
        is_global=bool(b.get("global", False)),
    )
    return json_response({"ok": True})


def add_routes(app: web.Application) -> None:
    """Register the ``/_control`` routes."""
    r = app.router
    r.add_get("/_control/info", info)
    r.add_post("/_control/messages", post_message)
    r.add_get("/_control/channels/{channel_id:\\d+}/messages", list_messages)
    r.add_post("/_control/wait_message", wait_message)
    r.add_post("/_control/slash_command", slash_command)
    r.add_post("/_control/message_command", message_command)
    r.add_post("/_control/click_button", click_button)
    r.add_get("/_control/interactions/{interaction_id:\\d+}", get_interaction)
    r.add_get("/_control/requests", list_requests)
    r.add_get("/_control/gateway", gateway_state)
    r.add_get("/_control/gateway/shards", gateway_shards)
    r.add_post("/_control/drop_gateway", drop_gateway)
    r.add_post("/_control/fail_next", fail_next)
