"""In-memory data model of the fake Discord server."""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 51) - 1
EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7
SEND_MESSAGES = 1 << 11

#: Permissions given to the bot's managed role unless a guild says otherwise.
DEFAULT_BOT_PERMISSIONS = (
    (1 << 10)  # view channel
    | (1 << 11)  # send messages
    | (1 << 14)  # embed links
    | (1 << 15)  # attach files
    | (1 << 16)  # read message history
    | (1 << 6)  # add reactions
    | (1 << 31)  # use application commands
)


class SnowflakeGenerator:
    """Strictly increasing Discord-style snowflakes based on the wall clock."""

    def __init__(self) -> None:
        self._last = 0
        self._counter = itertools.count()

    def __call__(self) -> int:
        now = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(self._counter) & 0xFFF)
        self._last = max(now, self._last + 1)
        return self._last

    def on_shard(self, shard_id: int, shard_count: int) -> int:
        """The next id ``i`` with ``(i >> 22) % shard_count == shard_id`` (a guild id that lands on that shard)."""
        stamp = (self() >> 22) + 1
        stamp += (shard_id - stamp) % shard_count
        self._last = stamp << 22
        return self._last


@dataclass
class FakeUser:
    """A Discord user (the bot itself or a human)."""

    id: int
    name: str
    bot: bool = False
    global_name: str | None = None


@dataclass
class FakeRole:
    """A guild role; the @everyone role has ``id == guild_id``."""

    id: int
    name: str
    permissions: int = 0
    position: int = 0
    mentionable: bool = False
    bot_id: int | None = None


@dataclass
class FakeChannel:
    """A guild text channel."""

    id: int
    guild_id: int
    name: str
    position: int = 0
    topic: str | None = None
    last_message_id: int | None = None


@dataclass
class FakeMember:
    """A user's membership in a guild."""

    user: FakeUser
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = "2024-01-01T00:00:00+00:00"


@dataclass
class FakeGuild:
    """A guild with its channels, roles and members."""

    id: int
    name: str
    owner_id: int
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permission bits of a member (no channel overwrites are modelled)."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members[user_id]
        bits = self.roles[self.id].permissions
        for role_id in member.roles:
            bits |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if bits & ADMINISTRATOR else bits


@dataclass
class FakeAttachment:
    """A file uploaded with a message."""

    id: int
    filename: str
    data: bytes
    content_type: str
    description: str | None = None


@dataclass
class FakeMessage:
    """A stored message: its Discord payload plus what only the server sees."""

    data: dict[str, Any]
    allowed_mentions: dict[str, Any] | None = None
    files: list[FakeAttachment] = field(default_factory=list)
    ephemeral: bool = False
    interaction_id: int | None = None
    deleted: bool = False

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def channel_id(self) -> int:
        return int(self.data["channel_id"])

    @property
    def author_id(self) -> int:
        return int(self.data["author"]["id"])

    @property
    def content(self) -> str:
        return str(self.data.get("content", ""))

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.data.get("embeds", []))

    @property
    def components(self) -> list[dict[str, Any]]:
        return list(self.data.get("components", []))

    @property
    def flags(self) -> int:
        return int(self.data.get("flags", 0))

    @property
    def reactions(self) -> list[dict[str, Any]]:
        return list(self.data.get("reactions", []))


@dataclass
class UploadedFile:
    """One file part of a multipart request."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    """A REST request as the server saw it; ``status`` is filled in once answered."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile] = field(default_factory=list)
    status: int = 0


@dataclass
class FaultRule:
    """Answer the next ``remaining`` requests matching ``predicate`` with an error."""

    predicate: Callable[[RecordedRequest], bool]
    status: int
    remaining: int
    retry_after: float = 0.05
    is_global: bool = False
    scope: str = "user"
    hits: int = 0


@dataclass
class InteractionCallback:
    """The bot's answer to ``POST /interactions/{id}/{token}/callback``."""

    type: int
    data: dict[str, Any]
    files: list[UploadedFile] = field(default_factory=list)

    @property
    def flags(self) -> int:
        return int(self.data.get("flags", 0) or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL_FLAG)

    @property
    def content(self) -> str | None:
        return self.data.get("content")


Waiter = Callable[[Callable[[], bool], float], Awaitable[None]]


@dataclass
class FakeInteraction:
    """An interaction the server sent to the bot, and everything the bot answered."""

    id: int
    token: str
    type: int
    guild_id: int
    channel_id: int
    user_id: int
    payload: dict[str, Any]
    waiter: Waiter = field(repr=False)
    message_id: int | None = None
    callback: InteractionCallback | None = None
    original: FakeMessage | None = None
    followups: list[FakeMessage] = field(default_factory=list)

    async def response(self, timeout: float = 5.0) -> InteractionCallback:
        """Wait until the bot has POSTed the interaction callback."""
        await self.waiter(lambda: self.callback is not None, timeout)
        assert self.callback is not None
        return self.callback

    async def followup(self, index: int = 0, timeout: float = 5.0) -> FakeMessage:
        """Wait for the ``index``-th followup message."""
        await self.waiter(lambda: len(self.followups) > index, timeout)
        return self.followups[index]

    async def wait_original(
        self, predicate: Callable[[FakeMessage], bool] = lambda m: True, timeout: float = 5.0
    ) -> FakeMessage:
        """Wait until the original response exists and satisfies ``predicate`` (e.g. after an edit)."""
        await self.waiter(lambda: self.original is not None and predicate(self.original), timeout)
        assert self.original is not None
        return self.original
