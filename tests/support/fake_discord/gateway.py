"""Gateway websocket: HELLO/IDENTIFY/READY, heartbeats, RESUME with replay, dispatch and drops.

Sharding as Discord does it: an IDENTIFY names ``shard: [id, count]`` (none: ``[0, 1]``), its READY lists only
the guilds of that shard (``(guild_id >> 22) % count == id``), and a guild's events go only to the sessions of
the shard that owns the guild (events outside guilds, to shard 0).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .payloads import guild_payload, member_payload, user_payload

if TYPE_CHECKING:
    from .server import FakeDiscordServer

log = logging.getLogger(__name__)

# Opcodes.
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, RESUME, RECONNECT = 0, 1, 2, 3, 6, 7
REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 8, 9, 10, 11

# Intents.
GUILD_MEMBERS = 1 << 1
GUILD_MESSAGES = 1 << 9
MESSAGE_CONTENT = 1 << 15

REPLAY_BUFFER = 1000
#: Events whose guild is the payload's ``id`` (for the others it is ``guild_id``, when there is one).
GUILD_ID_EVENTS = frozenset({"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"})


class Connection:
    """One websocket connection with an ordered outgoing queue, optionally zlib-stream compressed."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: str | None) -> None:
        self.ws = ws
        self.request = request
        self._zlib = zlib.compressobj() if compress == "zlib-stream" else None
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def send(self, payload: dict[str, Any] | str) -> None:
        """Queue a payload (or its JSON); frames leave in exactly the order they were queued."""
        self._queue.put_nowait(payload if isinstance(payload, str) else json.dumps(payload))

    async def _write_loop(self) -> None:
        while True:
            text = await self._queue.get()
            try:
                if self._zlib is None:
                    await self.ws.send_str(text)
                else:
                    data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                log.info("gateway connection gone; dropping queued frames")
                return

    def abort(self) -> None:
        """Kill the TCP connection without a close frame (the client sees 1006)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        """Stop writing and release the socket."""
        self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)


@dataclass
class Session:
    """A gateway session: sequence numbers and a replay buffer that outlive connections."""

    id: str
    intents: int
    shard: tuple[int, int] = (0, 1)
    seq: int = 0
    conn: Connection | None = None
    resumable: bool = True
    #: ``(seq, json)`` of recent dispatches, serialized at dispatch time so later edits don't leak in.
    buffer: collections.deque[tuple[int, str]] = field(default_factory=lambda: collections.deque(maxlen=REPLAY_BUFFER))

    def owns(self, guild_id: int | None) -> bool:
        """Whether this session's shard receives the events of ``guild_id`` (``None``: events outside guilds)."""
        shard_id, count = self.shard
        return shard_id == 0 if guild_id is None else (guild_id >> 22) % count == shard_id

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Number the event, buffer it for RESUME and queue it if connected."""
        self.seq += 1
        text = json.dumps({"op": DISPATCH, "t": event, "s": self.seq, "d": data})
        self.buffer.append((self.seq, text))
        if self.conn is not None:
            self.conn.send(text)


class Gateway:
    """Gateway endpoint of a :class:`FakeDiscordServer`."""

    def __init__(self, server: FakeDiscordServer, heartbeat_interval_ms: int = 41250) -> None:
        self.server = server
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.sessions: list[Session] = []
        self.identify_count = 0
        #: ``(monotonic time, shard id, shard count)`` of every accepted IDENTIFY, in order.
        self.identifies: list[tuple[float, int, int]] = []
        self.resume_count = 0
        #: Intents the application was not granted: an IDENTIFY asking for any is closed with 4014, as Discord does.
        self.disallowed_intents = 0

    @property
    def connected(self) -> list[Session]:
        """Sessions that currently have a live websocket."""
        return [s for s in self.sessions if s.conn is not None]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """aiohttp handler for the gateway websocket."""
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws, request, request.query.get("compress"))
        log.info("gateway connection opened (query=%s)", dict(request.query))
        conn.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None})
        session: Session | None = None
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, data = frame.get("op"), frame.get("d")
                if op == HEARTBEAT:
                    conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
                elif op == IDENTIFY:
                    session = await self._identify(conn, data)
                elif op == RESUME:
                    session = self._resume(conn, data)
                elif op == REQUEST_MEMBERS and session is not None:
                    self._members_chunk(session, data)
                elif op != PRESENCE:
                    log.warning("unhandled gateway opcode %s", op)
        finally:
            if session is not None and session.conn is conn:
                session.conn = None
            await conn.close()
            log.info("gateway connection closed (code=%s)", ws.close_code)
            self.server.notify()
        return ws

    def _check_token(self, token: str | None) -> bool:
        expected = self.server.token
        return expected is None or token in (expected, f"Bot {expected}")

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> Session | None:
        if not self._check_token(data.get("token")):
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return None
        if int(data.get("intents", 0)) & self.disallowed_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        shard = _shard(data.get("shard"))
        if shard is None:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return None
        # A new IDENTIFY supersedes the sessions of its shard whose client is gone.
        self.sessions = [s for s in self.sessions if s.conn is not None or s.shard != shard]
        session = Session(id=uuid.uuid4().hex, intents=int(data.get("intents", 0)), shard=shard, conn=conn)
        self.sessions.append(session)
        self.identify_count += 1
        self.identifies.append((time.monotonic(), *shard))
        srv = self.server
        guilds = [guild for guild in srv.guilds.values() if session.owns(guild.id)]
        ready = {
            "v": 10,
            "user": {**user_payload(srv.bot_user), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(guild.id), "unavailable": True} for guild in guilds],
            "session_id": session.id,
            "shard": list(shard),
            "session_type": "normal",
            "resume_gateway_url": srv.gateway_url,
            "application": {"id": str(srv.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
        }
        session.dispatch("READY", ready)
        for guild in guilds:
            session.dispatch("GUILD_CREATE", guild_payload(guild, full=True))
        log.info("session %s identified (intents=%s, shard=%s)", session.id, session.intents, list(shard))
        srv.notify()
        return session

    def _resume(self, conn: Connection, data: dict[str, Any]) -> Session | None:
        session = next((s for s in self.sessions if s.id == data.get("session_id")), None)
        if session is None or not session.resumable or not self._check_token(data.get("token")):
            log.info("RESUME of %s refused: invalid session", data.get("session_id"))
            conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return None
        last_seq = int(data.get("seq") or 0)
        for seq, text in session.buffer:
            if seq > last_seq:
                conn.send(text)
        session.conn = conn
        session.seq += 1  # RESUMED is numbered but never replayed
        conn.send({"op": DISPATCH, "t": "RESUMED", "s": session.seq, "d": {}})
        self.resume_count += 1
        log.info("session %s resumed from seq %s", session.id, last_seq)
        self.server.notify()
        return session

    def _members_chunk(self, session: Session, data: dict[str, Any]) -> None:
        guild = self.server.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        members = list(guild.members.values())
        if data.get("user_ids"):
            ids = data["user_ids"]
            wanted = {int(u) for u in ids} if isinstance(ids, list) else {int(ids)}
            members = [m for m in members if m.user.id in wanted]
        elif data.get("query"):
            members = [m for m in members if m.user.name.lower().startswith(str(data["query"]).lower())]
        if data.get("limit"):
            members = members[: int(data["limit"])]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [member_payload(m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    def dispatch(self, event: str, data: dict[str, Any], intent: int | None = None) -> None:
        """Send a DISPATCH to every session (connected or awaiting RESUME) that has ``intent`` and whose shard owns
        the event's guild."""
        raw_guild = data.get("id") if event in GUILD_ID_EVENTS else data.get("guild_id")
        guild_id = int(raw_guild) if raw_guild is not None else None
        for session in list(self.sessions):
            if (intent is not None and not session.intents & intent) or not session.owns(guild_id):
                continue
            session.dispatch(event, self._censor(event, data, session))

    def _censor(self, event: str, data: dict[str, Any], session: Session) -> dict[str, Any]:
        """Strip message content like Discord does for sessions without the MESSAGE_CONTENT intent."""
        if not event.startswith("MESSAGE_") or "content" not in data or session.intents & MESSAGE_CONTENT:
            return data
        bot_id = str(self.server.bot_user.id)
        if data.get("author", {}).get("id") == bot_id or any(u["id"] == bot_id for u in data.get("mentions", [])):
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    async def drop(self, *, abrupt: bool = True, code: int = 4000, resumable: bool = True) -> int:
        """Disconnect every client: ``abrupt`` kills TCP, otherwise close with ``code``.

        With ``resumable=False`` the sessions are invalidated, so the client's RESUME gets
        INVALID_SESSION and it must IDENTIFY again. Returns the number of dropped connections.
        """
        dropped = 0
        for session in list(self.sessions):
            session.resumable = resumable
            conn, session.conn = session.conn, None
            if conn is None:
                continue
            dropped += 1
            if abrupt:
                conn.abort()
            else:
                await conn.ws.close(code=code)
        log.info("dropped %d gateway connection(s) (abrupt=%s, code=%s)", dropped, abrupt, code)
        return dropped

    async def close(self) -> None:
        """Close every connection with 1001 (server going away)."""
        for session in self.sessions:
            if session.conn is not None:
                await session.conn.ws.close(code=1001)
        self.sessions.clear()


def _shard(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as ``(id, count)``: ``(0, 1)`` when absent, ``None`` when invalid."""
    if value is None:
        return 0, 1
    try:
        shard_id, count = (int(part) for part in value)
    except (TypeError, ValueError):
        return None
    return (shard_id, count) if 0 <= shard_id < count else None
