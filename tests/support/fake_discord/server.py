"""The fake Discord server: in-memory state, builders, event injectors, waiters and faults."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
import secrets
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from . import control, oauth, rest, webhooks
from .gateway import GUILD_MEMBERS, GUILD_MESSAGES, Gateway
from .models import (
    DEFAULT_BOT_PERMISSIONS,
    EPHEMERAL_FLAG,
    LOADING_FLAG,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    FaultRule,
    RecordedRequest,
    SnowflakeGenerator,
    UploadedFile,
)
from .payloads import (
    channel_payload,
    guild_payload,
    iso_now,
    member_payload,
    resolve_mentions,
    role_payload,
    user_payload,
)
from .rest import API_PREFIX

log = logging.getLogger(__name__)

T = TypeVar("T")

#: @everyone permissions of new guilds: view, send, read history, add reactions, use app commands.
DEFAULT_EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 6) | (1 << 31)
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
OPTION_TYPES: tuple[tuple[type, int], ...] = (
    (bool, 5),
    (int, 4),
    (float, 10),
    (str, 3),
    (FakeUser, 6),
    (FakeMember, 6),
    (FakeChannel, 7),
    (FakeRole, 8),
)


class FakeDiscordServer:
    """A fake Discord REST API + gateway on 127.0.0.1 that a real discord.py client can use.

    Point discord.py at it with ``discord.http.Route.BASE = server.api_base`` and
    ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(server.gateway_url)``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        bot_name: str = "moodbot",
        heartbeat_interval_ms: int = 41250,
        shard_count: int = 1,
        max_concurrency: int = 1,
    ) -> None:
        self.host = host
        self.port = port
        #: What ``GET /gateway/bot`` recommends, and its session start limit's ``max_concurrency``.
        self.shard_count = shard_count
        self.max_concurrency = max_concurrency
        #: Expected bot token; ``None`` accepts any token.
        self.token = token
        self.snowflake = SnowflakeGenerator()
        self.application_id = self.snowflake()
        self.bot_user = FakeUser(self.snowflake(), bot_name, bot=True)
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        #: Every REST request under the API prefix, in arrival order.
        self.requests: list[RecordedRequest] = []
        #: Requests that matched no known route (answered 404).
        self.unknown_routes: list[RecordedRequest] = []
        #: Exceptions raised by the server's own handlers (answered 500).
        self.handler_errors: list[str] = []
        self.faults: list[FaultRule] = []
        self.gateway = Gateway(self, heartbeat_interval_ms)
        self.oauth = oauth.FakeOAuth()
        self._history: dict[int, list[FakeMessage]] = {}
        self._messages: dict[int, FakeMessage] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    def build_app(
        self, extra_routes: Sequence[web.RouteDef] = (), middlewares: Sequence[Middleware] = ()
    ) -> web.Application:
        """The aiohttp application serving REST, gateway, attachments and control routes.

        A subclass adds its own routes (registered before the REST catch-all) and middlewares (run outside the
        API middleware, so they see every response, faults included) by overriding this and calling it.
        """
        app = web.Application(middlewares=[*middlewares, rest.api_middleware], client_max_size=64 * 1024 * 1024)
        app[rest.SERVER_KEY] = self
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", rest.get_attachment)
        app.router.add_routes(extra_routes)
        control.add_routes(app)
        webhooks.add_routes(app)
        oauth.add_routes(app)
        rest.add_routes(app)
        return app

    async def start(self) -> None:
        """Bind and start serving (``port=0`` picks a free port)."""
        self._runner = web.AppRunner(self.build_app(), handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        log.info("fake Discord listening on %s", self.url)

    async def stop(self) -> None:
        """Close gateway connections and stop serving."""
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve_until_signalled(self) -> None:
        """Serve until SIGINT or SIGTERM, then stop (the standalone processes' main loop)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.stop()

    async def __aenter__(self) -> FakeDiscordServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """Value for ``discord.http.Route.BASE`` (settings DISCORD_API_BASE)."""
        return f"{self.url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """Value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (settings DISCORD_GATEWAY_URL)."""
        return f"ws://{self.host}:{self.port}/gateway"

    # ------------------------------------------------------------------ builders

    def add_user(self, name: str, user_id: int | None = None, *, bot: bool = False) -> FakeUser:
        """Register a user (not yet a member of any guild)."""
        user = FakeUser(user_id or self.snowflake(), name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str = "Test Guild",
        guild_id: int | None = None,
        *,
        owner_id: int | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        shard: int | None = None,
    ) -> FakeGuild:
        """Create a guild with an @everyone role, the bot as member (with a managed role) and an owner.

        ``shard``: give it an id that lands on that shard of ``shard_count`` (``(id >> 22) % shard_count``).
        """
        if shard is not None and not 0 <= shard < self.shard_count:
            raise ValueError(f"shard {shard} is not below the server's shard_count {self.shard_count}")
        gid = guild_id or (self.snowflake.on_shard(shard, self.shard_count) if shard is not None else self.snowflake())
        owner = self.users.get(owner_id) if owner_id else None
        owner = owner or self.add_user(f"{name} owner", owner_id)
        guild = FakeGuild(gid, name, owner.id)
        guild.roles[gid] = FakeRole(gid, "@everyone", everyone_permissions)
        self.guilds[gid] = guild
        bot_role = FakeRole(self.snowflake(), self.bot_user.name, bot_permissions, 1, bot_id=self.bot_user.id)
        guild.roles[bot_role.id] = bot_role
        guild.members[owner.id] = FakeMember(owner)
        guild.members[self.bot_user.id] = FakeMember(self.bot_user, [bot_role.id])
        self.gateway.dispatch("GUILD_CREATE", guild_payload(guild, full=True))
        return guild

    def add_role(self, guild_id: int, name: str, *, permissions: int = 0, mentionable: bool = False) -> FakeRole:
        """Create a role; positions grow in creation order."""
        guild = self.guilds[guild_id]
        role = FakeRole(self.snowflake(), name, permissions, position=len(guild.roles), mentionable=mentionable)
        guild.roles[role.id] = role
        self.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": role_payload(role)})
        return role

    def add_channel(self, guild_id: int, name: str, *, topic: str | None = None) -> FakeChannel:
        """Create a text channel."""
        guild = self.guilds[guild_id]
        channel = FakeChannel(self.snowflake(), guild_id, name, position=len(guild.channels), topic=topic)
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self._history[channel.id] = []
        self.gateway.dispatch("CHANNEL_CREATE", channel_payload(channel))
        return channel

    def add_member(
        self,
        guild_id: int,
        user_id: int | None = None,
        name: str = "member",
        roles: Iterable[int] = (),
        *,
        nick: str | None = None,
    ) -> FakeMember:
        """Add a user (created if unknown) to a guild with the given role ids."""
        guild = self.guilds[guild_id]
        user = self.users.get(user_id) if user_id else None
        user = user or self.add_user(name, user_id)
        member = FakeMember(user, [int(r) for r in roles], nick=nick)
        guild.members[user.id] = member
        event = {"guild_id": str(guild_id), **member_payload(member)}
        self.gateway.dispatch("GUILD_MEMBER_ADD", event, intent=GUILD_MEMBERS)
        return member

    # ------------------------------------------------------------------ queries

    def messages_in(self, channel_id: int, *, author_id: int | None = None) -> list[FakeMessage]:
        """Non-deleted messages of a channel, oldest first (ephemeral ones are never here)."""
        return [m for m in self._history.get(channel_id, []) if author_id is None or m.author_id == author_id]

    def bot_messages_in(self, channel_id: int) -> list[FakeMessage]:
        """Messages the bot posted in a channel, oldest first."""
        return self.messages_in(channel_id, author_id=self.bot_user.id)

    def message(self, message_id: int) -> FakeMessage | None:
        """Any message by id (including deleted and ephemeral ones)."""
        return self._messages.get(message_id)

    def history(
        self,
        channel_id: int,
        limit: int = 50,
        *,
        before: int | None = None,
        after: int | None = None,
        around: int | None = None,
    ) -> list[FakeMessage]:
        """Discord's ``GET /channels/{id}/messages`` semantics: newest first, limit clamped to 1..100."""
        msgs = self._history.get(channel_id, [])
        limit = max(1, min(limit, 100))
        if around is not None:
            older = [m for m in msgs if m.id < around][-(limit // 2) :] if limit // 2 else []
            selected = older + [m for m in msgs if m.id >= around][: limit - len(older)]
        elif before is not None:
            selected = [m for m in msgs if m.id < before][-limit:]
        elif after is not None:
            selected = [m for m in msgs if m.id > after][:limit]
        else:
            selected = msgs[-limit:]
        return selected[::-1]

    def find_command(self, name: str, guild_id: int | None, type_: int = 1) -> dict[str, Any] | None:
        """A synced application command by name (guild commands first)."""
        candidates = self.guild_commands.get(guild_id, []) if guild_id else []
        for cmd in [*candidates, *self.global_commands]:
            if cmd["name"] == name and cmd.get("type", 1) == type_:
                return cmd
        return None

    def requests_matching(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests filtered by method and a regex fully matching the path."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or re.fullmatch(path, r.path))
        ]

    # ------------------------------------------------------------------ waiting

    def notify(self) -> None:
        """Wake every waiter so it re-checks its predicate."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; re-checked on every state change."""

        async def loop() -> None:
            while not predicate():
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def _wait_value(self, find: Callable[[], T | None], timeout: float) -> T:
        found: list[T] = []

        def check() -> bool:
            value = find()
            if value is not None:
                found.append(value)
            return value is not None

        await self.wait_until(check, timeout)
        return found[0]

    async def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 5.0, *, since: int = 0
    ) -> RecordedRequest:
        """First answered request (at index >= ``since``) matching ``predicate``."""
        return await self._wait_value(
            lambda: next((r for r in self.requests[since:] if r.status and predicate(r)), None), timeout
        )

    async def wait_for_message(
        self,
        channel_id: int,
        predicate: Callable[[FakeMessage], bool] = lambda m: True,
        timeout: float = 5.0,
        *,
        author_id: int | None = None,
    ) -> FakeMessage:
        """First message in the channel (by ``author_id`` if given) matching ``predicate``."""
        return await self._wait_value(
            lambda: next((m for m in self.messages_in(channel_id, author_id=author_id) if predicate(m)), None),
            timeout,
        )

    async def wait_for_connection(self, timeout: float = 5.0, *, identifies: int = 1) -> None:
        """Wait until a client is connected and at least ``identifies`` IDENTIFYs happened."""
        await self.wait_until(
            lambda: bool(self.gateway.connected) and self.gateway.identify_count >= identifies, timeout
        )

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 429,
        method: str | None = None,
        path: str | None = None,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        retry_after: float = 0.05,
        is_global: bool = False,
        scope: str = "user",
    ) -> FaultRule:
        """Answer the next ``count`` matching REST requests with ``status`` (429 carries ``retry_after``).

        ``path`` is a regex fully matching the path below the API prefix, e.g. ``r"/channels/\\d+/messages"``.
        """

        def matches(req: RecordedRequest) -> bool:
            return (
                (method is None or req.method == method)
                and (path is None or re.fullmatch(path, req.path) is not None)
                and (predicate is None or predicate(req))
            )

        rule = FaultRule(matches, status, count, retry_after, is_global, scope)
        self.faults.append(rule)
        return rule

    def take_fault(self, req: RecordedRequest) -> FaultRule | None:
        """The fault rule that claims this request, if any (consumes one use)."""
        for rule in self.faults:
            if rule.remaining > 0 and rule.predicate(req):
                rule.remaining -= 1
                rule.hits += 1
                return rule
        return None

    async def drop_gateway(self, *, abrupt: bool = True, code: int = 4000, resumable: bool = True) -> int:
        """Disconnect the bot's gateway connection(s); see :meth:`Gateway.drop`."""
        dropped = await self.gateway.drop(abrupt=abrupt, code=code, resumable=resumable)
        self.notify()
        return dropped

    # ------------------------------------------------------------------ messages

    def _guild_of(self, channel_id: int) -> FakeGuild:
        return self.guilds[self.channels[channel_id].guild_id]

    def _store_files(
        self, spec: list[dict[str, Any]] | None, uploads: Sequence[UploadedFile], existing: Sequence[FakeAttachment]
    ) -> list[FakeAttachment]:
        """Resolve a payload's ``attachments`` list against kept attachments and new uploads."""
        by_index: dict[int, UploadedFile] = {}
        for i, up in enumerate(uploads):
            match = re.fullmatch(r"files\[(\d+)\]", up.field)
            by_index[int(match.group(1)) if match else i] = up
        kept = {a.id: a for a in existing}
        if spec is None:
            result = list(existing)
            spec = [{"id": i} for i in by_index]
        else:
            result = []
        for entry in spec:
            key = int(entry["id"])
            if key in kept:
                result.append(kept[key])
            elif key in by_index:
                up = by_index[key]
                filename = entry.get("filename") or up.filename
                ctype = mimetypes.guess_type(filename)[0] or up.content_type
                att = FakeAttachment(self.snowflake(), filename, up.data, ctype, entry.get("description"))
                self.attachments[att.id] = att
                result.append(att)
        return result

    def _attachment_payload(self, channel_id: int, att: FakeAttachment, ephemeral: bool) -> dict[str, Any]:
        url = f"{self.url}/attachments/{channel_id}/{att.id}/{att.filename}"
        data: dict[str, Any] = {
            "id": str(att.id),
            "filename": att.filename,
            "size": len(att.data),
            "url": url,
            "proxy_url": url,
            "content_type": att.content_type,
            "ephemeral": ephemeral,
        }
        if att.description:
            data["description"] = att.description
        return data

    def _apply_content(self, msg: FakeMessage, payload: dict[str, Any], uploads: Sequence[UploadedFile]) -> None:
        """Apply the message fields of a create/edit payload to ``msg``."""
        data = msg.data
        guild = self._guild_of(msg.channel_id)
        if "allowed_mentions" in payload:
            msg.allowed_mentions = payload["allowed_mentions"]
        if "content" in payload:
            data["content"] = payload["content"] or ""
        if "embeds" in payload:
            data["embeds"] = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if "components" in payload:
            data["components"] = payload["components"] or []
        if "flags" in payload and payload["flags"] is not None:
            data["flags"] = int(payload["flags"]) | (data.get("flags", 0) & EPHEMERAL_FLAG)
        if "attachments" in payload or uploads:
            msg.files = self._store_files(payload.get("attachments"), uploads, msg.files)
            data["attachments"] = [self._attachment_payload(msg.channel_id, a, msg.ephemeral) for a in msg.files]
        mentions, roles, everyone = resolve_mentions(data["content"], guild, msg.allowed_mentions)
        data.update(mentions=mentions, mention_roles=roles, mention_everyone=everyone)

    async def create_message(
        self,
        channel_id: int,
        author_id: int,
        payload: dict[str, Any],
        uploads: Sequence[UploadedFile] = (),
        *,
        interaction: FakeInteraction | None = None,
    ) -> FakeMessage:
        """Store a new message (history unless ephemeral) and dispatch MESSAGE_CREATE."""
        channel = self.channels[channel_id]
        guild = self.guilds[channel.guild_id]
        author = self.users[author_id]
        flags = int(payload.get("flags") or 0)
        ephemeral = interaction is not None and bool(flags & EPHEMERAL_FLAG)
        data: dict[str, Any] = {
            "id": str(self.snowflake()),
            "channel_id": str(channel_id),
            "guild_id": str(guild.id),
            "author": user_payload(author),
            "content": "",
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts")),
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": flags,
        }
        if author_id in guild.members:
            data["member"] = member_payload(guild.members[author_id], with_user=False)
        if payload.get("nonce") is not None:
            data["nonce"] = payload["nonce"]
        if interaction is not None:
            data.update(webhook_id=str(self.application_id), application_id=str(self.application_id))
            data["type"] = 20 if interaction.type == 2 else 0
        ref = payload.get("message_reference")
        if ref and ref.get("message_id"):
            target = self._messages.get(int(ref["message_id"]))
            data["type"] = 19
            data["message_reference"] = {
                "type": 0,
                "message_id": str(ref["message_id"]),
                "channel_id": str(ref.get("channel_id", channel_id)),
                "guild_id": str(guild.id),
            }
            data["referenced_message"] = (
                {k: v for k, v in target.data.items() if k != "referenced_message"} if target else None
            )
        msg = FakeMessage(data, ephemeral=ephemeral, interaction_id=interaction.id if interaction else None)
        self._apply_content(msg, payload, uploads)
        self._messages[msg.id] = msg
        if not ephemeral:
            self._history[channel_id].append(msg)
            channel.last_message_id = msg.id
            self.gateway.dispatch("MESSAGE_CREATE", data, intent=GUILD_MESSAGES)
        self.notify()
        return msg

    async def edit_message(
        self, msg: FakeMessage, payload: dict[str, Any], uploads: Sequence[UploadedFile] = ()
    ) -> FakeMessage:
        """Apply an edit (clearing the deferred "loading" flag) and dispatch MESSAGE_UPDATE."""
        msg.data["flags"] = msg.flags & ~LOADING_FLAG
        self._apply_content(msg, payload, uploads)
        msg.data["edited_timestamp"] = iso_now()
        if not msg.ephemeral:
            self.gateway.dispatch("MESSAGE_UPDATE", msg.data, intent=GUILD_MESSAGES)
        self.notify()
        return msg

    async def delete_message(self, msg: FakeMessage) -> None:
        """Remove from history and dispatch MESSAGE_DELETE."""
        msg.deleted = True
        history = self._history.get(msg.channel_id, [])
        if msg in history:
            history.remove(msg)
        if not msg.ephemeral:
            event = {"id": str(msg.id), "channel_id": str(msg.channel_id), "guild_id": msg.data["guild_id"]}
            self.gateway.dispatch("MESSAGE_DELETE", event, intent=GUILD_MESSAGES)
        self.notify()

    async def delete_messages(self, channel_id: int, messages: Sequence[FakeMessage]) -> None:
        """Remove several messages of one channel from history and dispatch one MESSAGE_DELETE_BULK."""
        history = self._history.get(channel_id, [])
        for msg in messages:
            msg.deleted = True
            if msg in history:
                history.remove(msg)
        event = {
            "ids": [str(msg.id) for msg in messages],
            "channel_id": str(channel_id),
            "guild_id": str(self.channels[channel_id].guild_id),
        }
        self.gateway.dispatch("MESSAGE_DELETE_BULK", event, intent=GUILD_MESSAGES)
        self.notify()

    # ------------------------------------------------------------------ event injection

    async def send_message(
        self,
        channel_id: int,
        author_id: int,
        content: str,
        *,
        embeds: list[dict[str, Any]] | None = None,
        reply_to: int | None = None,
    ) -> FakeMessage:
        """A user posts a message: stored in history and sent as MESSAGE_CREATE."""
        payload: dict[str, Any] = {"content": content, "embeds": embeds or []}
        if reply_to is not None:
            payload["message_reference"] = {"message_id": reply_to, "channel_id": channel_id}
        return await self.create_message(channel_id, author_id, payload)

    def _interaction(
        self,
        type_: int,
        guild_id: int,
        channel_id: int,
        user_id: int,
        data: dict[str, Any],
        message: FakeMessage | None = None,
    ) -> FakeInteraction:
        guild = self.guilds[guild_id]
        channel = self.channels[channel_id]
        perms = guild.permissions_of(user_id)
        iid = self.snowflake()
        token = secrets.token_urlsafe(24)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": type_,
            "data": data,
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": {**channel_payload(channel), "permissions": str(perms)},
            "member": member_payload(guild.members[user_id], permissions=perms),
            "token": token,
            "version": 1,
            "app_permissions": str(guild.permissions_of(self.bot_user.id)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if message is not None:
            payload["message"] = message.data
        interaction = FakeInteraction(
            iid, token, type_, guild_id, channel_id, user_id, payload, self.wait_until, message.id if message else None
        )
        self.interactions[iid] = interaction
        return interaction

    async def _send_interaction(self, interaction: FakeInteraction) -> FakeInteraction:
        self.gateway.dispatch("INTERACTION_CREATE", interaction.payload)
        self.notify()
        return interaction

    def _option(self, name: str, value: Any, resolved: dict[str, dict[str, Any]], guild: FakeGuild) -> dict[str, Any]:
        """Build one command option from a Python value, filling ``resolved`` for entities."""
        type_ = next(t for cls, t in OPTION_TYPES if isinstance(value, cls))
        if isinstance(value, FakeMember):
            value = value.user
        if isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = user_payload(value)
            if value.id in guild.members:
                resolved.setdefault("members", {})[str(value.id)] = member_payload(
                    guild.members[value.id], with_user=False, permissions=guild.permissions_of(value.id)
                )
        elif isinstance(value, FakeChannel):
            resolved.setdefault("channels", {})[str(value.id)] = {
                **channel_payload(value),
                "permissions": str(guild.permissions_of(self.bot_user.id)),
            }
        elif isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = role_payload(value)
        if isinstance(value, (FakeUser, FakeChannel, FakeRole)):
            value = str(value.id)
        return {"name": name, "type": type_, "value": value}

    async def send_slash_command(
        self,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        group: str | None = None,
    ) -> FakeInteraction:
        """A member runs ``/name [group] [subcommand] options...`` -> INTERACTION_CREATE type 2.

        Option values may be ``str``/``int``/``float``/``bool`` or a ``FakeUser``/``FakeMember``/
        ``FakeChannel``/``FakeRole`` (which also fills ``resolved``).
        """
        guild = self.guilds[guild_id]
        resolved: dict[str, dict[str, Any]] = {}
        opts = [self._option(k, v, resolved, guild) for k, v in (options or {}).items()]
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        if group is not None:
            opts = [{"name": group, "type": 2, "options": opts}]
        data = self._command_data(name, guild_id, 1)
        data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        return await self._send_interaction(self._interaction(2, guild_id, channel_id, user_id, data))

    async def send_message_command(
        self, guild_id: int, channel_id: int, user_id: int, name: str, target_message_id: int
    ) -> FakeInteraction:
        """A member uses a message context menu command -> INTERACTION_CREATE type 2, data type 3."""
        target = self._messages[target_message_id]
        data = self._command_data(name, guild_id, 3)
        data.update(target_id=str(target_message_id), resolved={"messages": {str(target_message_id): target.data}})
        return await self._send_interaction(self._interaction(2, guild_id, channel_id, user_id, data))

    def _command_data(self, name: str, guild_id: int, type_: int) -> dict[str, Any]:
        cmd = self.find_command(name, guild_id, type_)
        if cmd is None:
            log.warning("invoking application command %r (type %s) that the bot never synced", name, type_)
        data: dict[str, Any] = {"id": cmd["id"] if cmd else str(self.snowflake()), "name": name, "type": type_}
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return data

    async def click_button(
        self, guild_id: int, channel_id: int, user_id: int, message_id: int, custom_id: str
    ) -> FakeInteraction:
        """A member clicks a button on a message -> INTERACTION_CREATE type 3 (component)."""
        message = self._messages[message_id]
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._send_interaction(self._interaction(3, guild_id, channel_id, user_id, data, message))

    def interaction_by_token(self, token: str) -> FakeInteraction | None:
        """The interaction a webhook token belongs to."""
        return next((i for i in self.interactions.values() if i.token == token), None)

    def register_commands(self, guild_id: int | None, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk-overwrite application commands, keeping ids of commands that already existed."""
        current = self.guild_commands.get(guild_id, []) if guild_id else self.global_commands
        old = {(c["name"], c.get("type", 1)): c for c in current}
        stored = []
        for cmd in commands:
            previous = old.get((cmd["name"], cmd.get("type", 1)))
            entry = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                **cmd,
                "id": previous["id"] if previous else str(self.snowflake()),
                "application_id": str(self.application_id),
                "version": str(self.snowflake()),
            }
            if guild_id:
                entry["guild_id"] = str(guild_id)
            stored.append(entry)
        if guild_id:
            self.guild_commands[guild_id] = stored
        else:
            self.global_commands = stored
        self.notify()
        return stored
