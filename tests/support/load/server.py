"""A fake Discord server for load and fault tests, run as its own process.

``python -m tests.support.load.server --channels 50 --print-urls`` serves :class:`LoadServer`: the default
seed plus ``load-N`` channels and a few members, the ``/_control`` API, and ``/_load`` routes to
inject many messages in one request and to read back timings (all measured in this process with
one monotonic clock): when each user message was created (MESSAGE_CREATE dispatched), when the
bot reacted to it (live mode) and when a flag card pointing at it was posted. With ``--shards N`` it recommends
N gateway shards and builds that world once per shard: a guild on each, the same members in all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from tests.support.fake_discord.control import seed_view
from tests.support.fake_discord.models import FakeInteraction, FakeMessage, UploadedFile
from tests.support.fake_discord.rest import API_PREFIX, json_response, server_of
from tests.support.fake_discord.seed import seed_default
from tests.support.fake_discord.server import FakeDiscordServer

log = logging.getLogger(__name__)

JUMP = re.compile(r"/channels/\d+/\d+/(\d+)")
FLAG_FOOTER = re.compile(r"#(\d+)")
REACTION_PATH = re.compile(r"/channels/(\d+)/messages/(\d+)/reactions/[^/]+/@me")


class LoadServer(FakeDiscordServer):
    """:class:`FakeDiscordServer` that timestamps user messages, bot reactions and flag posts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created_at: dict[int, float] = {}
        self.reactions: dict[int, list[float]] = defaultdict(list)
        #: One entry per message the bot created (any channel): id, channel, flagged message id, time, mentions.
        self.bot_posts: list[dict[str, Any]] = []
        self.statuses: dict[str, int] = defaultdict(int)

    def build_app(
        self, extra_routes: Sequence[web.RouteDef] = (), middlewares: Sequence[Middleware] = ()
    ) -> web.Application:
        """The fake server's app plus the ``/_load`` routes and a middleware timing reactions and counting statuses."""
        routes = [
            web.post("/_load/send", _send_many), web.post("/_load/edit", _edit_many), web.get("/_load/report", _report),
            *extra_routes,
        ]
        return super().build_app(routes, [self._timing_middleware, *middlewares])

    @web.middleware
    async def _timing_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.path.startswith(API_PREFIX + "/"):
            self.statuses[f"{request.method} {response.status}"] += 1
            match = REACTION_PATH.fullmatch(request.path[len(API_PREFIX) :])
            if match and request.method == "PUT" and response.status < 300:
                self.reactions[int(match[2])].append(time.monotonic())
        return response

    async def create_message(
        self,
        channel_id: int,
        author_id: int,
        payload: dict[str, Any],
        uploads: Sequence[UploadedFile] = (),
        *,
        interaction: FakeInteraction | None = None,
    ) -> FakeMessage:
        msg = await super().create_message(channel_id, author_id, payload, uploads, interaction=interaction)
        now = time.monotonic()
        if author_id != self.bot_user.id:
            self.created_at[msg.id] = now
        else:
            flagged, flag_id = None, None
            for embed in msg.data.get("embeds", []):
                for fld in embed.get("fields", []):
                    found = JUMP.search(str(fld.get("value", "")))
                    if found:
                        flagged = int(found[1])
                footer = FLAG_FOOTER.search(str((embed.get("footer") or {}).get("text", "")))
                if footer:
                    flag_id = int(footer[1])
            self.bot_posts.append(
                {
                    "id": str(msg.id),
                    "channel_id": str(channel_id),
                    "flagged_message_id": str(flagged) if flagged else None,
                    "flag_id": flag_id,
                    "t": now,
                    "allowed_mentions": msg.allowed_mentions,
                    "mentions": msg.data.get("mentions", []),
                    "mention_roles": msg.data.get("mention_roles", []),
                    "mention_everyone": msg.data.get("mention_everyone", False),
                    "ephemeral": msg.ephemeral,
                    "interaction": interaction is not None,
                }
            )
        return msg


def _server(request: web.Request) -> LoadServer:
    return server_of(request)  # type: ignore[return-value]


async def _send_many(request: web.Request) -> web.Response:
    """``{"messages": [[channel_id, author_id, content], ...], "pause_every": n, "pause_s": s}`` -> message ids."""
    server = _server(request)
    body = await request.json()
    ids = []
    pause_every = int(body.get("pause_every") or 0)
    for index, (channel_id, author_id, content) in enumerate(body["messages"]):
        msg = await server.send_message(int(channel_id), int(author_id), content)
        ids.append(str(msg.id))
        if pause_every and (index + 1) % pause_every == 0:
            await asyncio.sleep(float(body.get("pause_s", 0.0)))
    return json_response({"ids": ids})


async def _edit_many(request: web.Request) -> web.Response:
    """``{"edits": [[message_id, content], ...]}``: each message's author edits it (MESSAGE_UPDATE with a new
    ``edited_timestamp``, the content possibly unchanged) -> how many were edited."""
    server = _server(request)
    body = await request.json()
    edited = 0
    for message_id, content in body["edits"]:
        if (msg := server.message(int(message_id))) is not None:
            await server.edit_message(msg, {"content": content})
            edited += 1
    return json_response({"edited": edited})


async def _report(request: web.Request) -> web.Response:
    server = _server(request)
    since = float(request.query.get("since", 0))
    return json_response(
        {
            "now": time.monotonic(),
            "created_at": {str(k): v for k, v in server.created_at.items() if v >= since},
            "reactions": {str(k): v for k, v in server.reactions.items()},
            "bot_posts": server.bot_posts,
            "statuses": dict(server.statuses),
            "handler_errors": server.handler_errors,
            "unknown_routes": [f"{r.method} {r.path}" for r in server.unknown_routes],
            "gateway": {
                "connected": len(server.gateway.connected),
                "identify_count": server.gateway.identify_count,
                "resume_count": server.gateway.resume_count,
            },
        }
    )


def build_world(server: LoadServer, channels: int, members: int) -> dict[str, Any]:
    """Default seed + ``load-1..N`` channels + ``user-1..M`` members, in one guild per shard of the server (on
    that shard); the users are members of every guild. Returns the control info plus ids."""
    users: list[int] = []
    for shard in range(server.shard_count):
        sharded = server.shard_count > 1
        seed = seed_default(server, name=f"Mood Test Guild {shard}", shard=shard) if sharded else seed_default(server)
        for index in range(1, channels + 1):
            server.add_channel(seed.guild_id, f"load-{index}")
        server.add_channel(seed.guild_id, "probe")
        if not users:
            users = [server.add_member(seed.guild_id, name=f"user-{i}").user.id for i in range(1, members + 1)]
        else:
            for user_id in users:
                server.add_member(seed.guild_id, user_id)
    return seed_view(server)


async def serve(
    host: str, port: int, channels: int, members: int, heartbeat_ms: int, shards: int = 1, max_concurrency: int = 1
) -> None:
    server = LoadServer(
        host=host, port=port, heartbeat_interval_ms=heartbeat_ms, shard_count=shards, max_concurrency=max_concurrency
    )
    info = build_world(server, channels, members)
    await server.start()
    info.update(
        api_base=server.api_base, gateway_url=server.gateway_url, control_url=f"{server.url}/_control", url=server.url
    )
    print(json.dumps(info), flush=True)
    await server.serve_until_signalled()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.load.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--heartbeat-ms", type=int, default=41250)
    parser.add_argument("--shards", type=int, default=1, help="shards recommended; the world is built on each")
    parser.add_argument("--max-concurrency", type=int, default=1, help="the session start limit's max_concurrency")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr)
    asyncio.run(
        serve(args.host, args.port, args.channels, args.members, args.heartbeat_ms, args.shards, args.max_concurrency)
    )


if __name__ == "__main__":
    main()
