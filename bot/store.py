"""The bot's SQLite database: guild settings, opt-outs, flags, their review history and moderator feedback.

One file (``Settings.database_path``) in WAL mode with ``synchronous=FULL``: a committed write
survives a crash. The schema is created or migrated at start-up (``PRAGMA user_version``). Every
write is one transaction. Feedback keeps the flagged message's feature vector and a label, never
its text. :class:`Store` is synchronous (for the CLI); :class:`AsyncStore` runs it in one
dedicated thread so the bot's event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np

from classifier.text import replace_surrogates

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

EXCERPT_CHARS = 300
LABEL_NEGATIVE, LABEL_POSITIVE = 0, 1

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE guild_settings (
        guild_id          INTEGER PRIMARY KEY,
        modlog_channel_id INTEGER,
        flag_threshold    REAL CHECK (flag_threshold IS NULL OR flag_threshold BETWEEN 0.5 AND 1.0),
        auto_flag         INTEGER NOT NULL DEFAULT 1 CHECK (auto_flag IN (0, 1))
    );
    CREATE TABLE guild_channels (
        guild_id   INTEGER NOT NULL,
        channel_id INTEGER NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('live', 'disabled')),
        PRIMARY KEY (guild_id, channel_id, kind)
    );
    CREATE TABLE exempt_roles (
        guild_id INTEGER NOT NULL,
        role_id  INTEGER NOT NULL,
        PRIMARY KEY (guild_id, role_id)
    );
    CREATE TABLE optouts (
        user_id    INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE flags (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id          INTEGER NOT NULL,
        channel_id        INTEGER NOT NULL,
        message_id        INTEGER NOT NULL,
        author_id         INTEGER NOT NULL,
        p_negative        REAL NOT NULL,
        excerpt           TEXT NOT NULL,
        created_at        TEXT NOT NULL,
        status            TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'dismissed', 'deleted')),
        modlog_channel_id INTEGER,
        modlog_message_id INTEGER,
        vector            BLOB NOT NULL,
        namespace         TEXT NOT NULL,
        UNIQUE (guild_id, message_id)
    );
    CREATE INDEX flags_by_status ON flags (guild_id, status, id);
    CREATE INDEX flags_unposted ON flags (modlog_message_id) WHERE modlog_message_id IS NULL;
    CREATE TABLE flag_reviews (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        flag_id      INTEGER NOT NULL REFERENCES flags (id) ON DELETE CASCADE,
        moderator_id INTEGER NOT NULL,
        action       TEXT NOT NULL CHECK (action IN ('confirm', 'dismiss', 'delete')),
        old_status   TEXT NOT NULL,
        new_status   TEXT NOT NULL,
        created_at   TEXT NOT NULL
    );
    CREATE TABLE feedback (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        flag_id      INTEGER NOT NULL UNIQUE REFERENCES flags (id) ON DELETE CASCADE,
        guild_id     INTEGER NOT NULL,
        namespace    TEXT NOT NULL,
        vector       BLOB NOT NULL,
        label        INTEGER NOT NULL CHECK (label IN (0, 1)),
        moderator_id INTEGER NOT NULL,
        created_at   TEXT NOT NULL
    );
    CREATE INDEX feedback_by_namespace ON feedback (namespace, guild_id);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


class StoreError(RuntimeError):
    """The database is unusable (e.g. written by a newer moodbot)."""


class FlagStatus(enum.StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    DELETED = "deleted"


class ReviewAction(enum.StrEnum):
    """A moderator's decision on a flag, and the status and training label it leads to."""

    CONFIRM = "confirm"
    DISMISS = "dismiss"
    DELETE = "delete"

    @property
    def status(self) -> FlagStatus:
        return {"confirm": FlagStatus.CONFIRMED, "dismiss": FlagStatus.DISMISSED, "delete": FlagStatus.DELETED}[self.value]

    @property
    def label(self) -> int:
        """Dismiss means a false positive (the message was not negative); confirm and delete mean negative."""
        return LABEL_POSITIVE if self is ReviewAction.DISMISS else LABEL_NEGATIVE


@dataclass(frozen=True)
class GuildConfig:
    """A guild's settings; ``flag_threshold`` is already resolved against the global default."""

    guild_id: int
    modlog_channel_id: int | None = None
    flag_threshold: float = 0.9
    auto_flag: bool = True
    live_channels: frozenset[int] = field(default_factory=frozenset)
    disabled_channels: frozenset[int] = field(default_factory=frozenset)
    exempt_roles: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Flag:
    """A flagged message (without its vector)."""

    id: int
    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    p_negative: float
    excerpt: str
    created_at: dt.datetime
    status: FlagStatus
    modlog_channel_id: int | None
    modlog_message_id: int | None

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild_id}/{self.channel_id}/{self.message_id}"


@dataclass(frozen=True)
class Review:
    """One row of a flag's review history."""

    flag_id: int
    moderator_id: int
    action: ReviewAction
    old_status: FlagStatus
    new_status: FlagStatus
    created_at: dt.datetime


_FLAG_COLUMNS = ("id, guild_id, channel_id, message_id, author_id, p_negative, excerpt, created_at, status, "
                 "modlog_channel_id, modlog_message_id")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first ``limit`` characters of ``text`` on one line, with an ellipsis when cut."""
    flat = " ".join(replace_surrogates(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _flag(row: sqlite3.Row) -> Flag:
    return Flag(
        id=row["id"], guild_id=row["guild_id"], channel_id=row["channel_id"], message_id=row["message_id"],
        author_id=row["author_id"], p_negative=row["p_negative"], excerpt=row["excerpt"],
        created_at=dt.datetime.fromisoformat(row["created_at"]), status=FlagStatus(row["status"]),
        modlog_channel_id=row["modlog_channel_id"], modlog_message_id=row["modlog_message_id"],
    )


class Store:
    """Synchronous access to the database; use from one thread at a time."""

    def __init__(self, connection: sqlite3.Connection, default_threshold: float = 0.9) -> None:
        self._db = connection
        self.default_threshold = default_threshold

    @classmethod
    def open_sync(cls, path: str | Path, default_threshold: float = 0.9) -> Store:
        """Open (creating or migrating) the database at ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout=5000")
            _migrate(connection)
        except BaseException:
            connection.close()
            raise
        return cls(connection, default_threshold)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # guild settings

    def guild_config(self, guild_id: int) -> GuildConfig:
        row = self._db.execute("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,)).fetchone()
        channels = self._db.execute("SELECT channel_id, kind FROM guild_channels WHERE guild_id = ?", (guild_id,)).fetchall()
        roles = self._db.execute("SELECT role_id FROM exempt_roles WHERE guild_id = ?", (guild_id,)).fetchall()
        threshold = row["flag_threshold"] if row is not None and row["flag_threshold"] is not None else self.default_threshold
        return GuildConfig(
            guild_id=guild_id,
            modlog_channel_id=row["modlog_channel_id"] if row is not None else None,
            flag_threshold=threshold,
            auto_flag=bool(row["auto_flag"]) if row is not None else True,
            live_channels=frozenset(c["channel_id"] for c in channels if c["kind"] == "live"),
            disabled_channels=frozenset(c["channel_id"] for c in channels if c["kind"] == "disabled"),
            exempt_roles=frozenset(r["role_id"] for r in roles),
        )

    def update_guild(self, guild_id: int, **values: object) -> GuildConfig:
        """Set ``modlog_channel_id``, ``flag_threshold`` and/or ``auto_flag``; returns the new config."""
        allowed = {"modlog_channel_id", "flag_threshold", "auto_flag"}
        if not values or not values.keys() <= allowed:
            raise ValueError(f"unknown guild settings: {sorted(set(values) - allowed)}")
        columns = ", ".join(values)
        updates = ", ".join(f"{name} = excluded.{name}" for name in values)
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO guild_settings (guild_id, {columns}) VALUES (?{', ?' * len(values)}) "
                f"ON CONFLICT (guild_id) DO UPDATE SET {updates}",
                (guild_id, *values.values()),
            )
        return self.guild_config(guild_id)

    def set_channel(self, guild_id: int, channel_id: int, kind: str, enabled: bool) -> GuildConfig:
        """Add or remove a channel from the guild's ``live`` or ``disabled`` list."""
        with self._transaction() as db:
            if enabled:
                db.execute("INSERT INTO guild_channels VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (guild_id, channel_id, kind))
            else:
                db.execute("DELETE FROM guild_channels WHERE guild_id = ? AND channel_id = ? AND kind = ?", (guild_id, channel_id, kind))
        return self.guild_config(guild_id)

    def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool) -> GuildConfig:
        with self._transaction() as db:
            if exempt:
                db.execute("INSERT INTO exempt_roles VALUES (?, ?) ON CONFLICT DO NOTHING", (guild_id, role_id))
            else:
                db.execute("DELETE FROM exempt_roles WHERE guild_id = ? AND role_id = ?", (guild_id, role_id))
        return self.guild_config(guild_id)

    # opt-outs

    def opted_out(self) -> frozenset[int]:
        return frozenset(row[0] for row in self._db.execute("SELECT user_id FROM optouts"))

    def set_opt_out(self, user_id: int, opted_out: bool) -> None:
        with self._transaction() as db:
            if opted_out:
                db.execute("INSERT INTO optouts VALUES (?, ?) ON CONFLICT DO NOTHING", (user_id, _now()))
            else:
                db.execute("DELETE FROM optouts WHERE user_id = ?", (user_id,))

    # flags

    def add_flag(
        self, *, guild_id: int, channel_id: int, message_id: int, author_id: int, p_negative: float, text: str,
        vector: np.ndarray, namespace: str,
    ) -> Flag | None:
        """Store a new open flag; ``None`` when this message is already flagged (a replayed event)."""
        blob = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO flags (guild_id, channel_id, message_id, author_id, p_negative, excerpt, created_at, vector, namespace) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, message_id) DO NOTHING",
                (guild_id, channel_id, message_id, author_id, float(p_negative), excerpt(text), _now(), blob, namespace),
            )
            if cursor.rowcount == 0:
                return None
            flag_id = cursor.lastrowid
        return self.flag(flag_id)

    def flag(self, flag_id: int) -> Flag | None:
        row = self._db.execute(f"SELECT {_FLAG_COLUMNS} FROM flags WHERE id = ?", (flag_id,)).fetchone()
        return _flag(row) if row is not None else None

    def flags(self, guild_id: int, status: FlagStatus | None = None, *, limit: int = 10, offset: int = 0) -> tuple[list[Flag], int]:
        """A page of the guild's flags, newest first, and how many there are in all."""
        where, params = ("guild_id = ? AND status = ?", (guild_id, status.value)) if status else ("guild_id = ?", (guild_id,))
        total = self._db.execute(f"SELECT COUNT(*) FROM flags WHERE {where}", params).fetchone()[0]
        rows = self._db.execute(
            f"SELECT {_FLAG_COLUMNS} FROM flags WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        ).fetchall()
        return [_flag(row) for row in rows], total

    def last_flag_id(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM flags").fetchone()[0]

    def unposted_flags(self, up_to_id: int) -> list[Flag]:
        """Open flags with ``id <= up_to_id`` never posted to a mod-log channel (a crash between storing and posting)."""
        rows = self._db.execute(
            f"SELECT {_FLAG_COLUMNS} FROM flags WHERE modlog_message_id IS NULL AND status = 'open' AND id <= ? ORDER BY id",
            (up_to_id,),
        ).fetchall()
        return [_flag(row) for row in rows]

    def mark_posted(self, flag_id: int, channel_id: int, message_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE flags SET modlog_channel_id = ?, modlog_message_id = ? WHERE id = ?", (channel_id, message_id, flag_id))

    def review_flag(self, flag_id: int, moderator_id: int, action: ReviewAction) -> Flag:
        """Set the flag's status, append to its history and record the label as feedback, in one transaction."""
        now = _now()
        with self._transaction() as db:
            row = db.execute("SELECT guild_id, status, vector, namespace FROM flags WHERE id = ?", (flag_id,)).fetchone()
            if row is None:
                raise KeyError(f"no flag {flag_id}")
            db.execute("UPDATE flags SET status = ? WHERE id = ?", (action.status.value, flag_id))
            db.execute(
                "INSERT INTO flag_reviews (flag_id, moderator_id, action, old_status, new_status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (flag_id, moderator_id, action.value, row["status"], action.status.value, now),
            )
            db.execute(
                "INSERT INTO feedback (flag_id, guild_id, namespace, vector, label, moderator_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (flag_id) DO UPDATE SET label = excluded.label, moderator_id = excluded.moderator_id, "
                "created_at = excluded.created_at",
                (flag_id, row["guild_id"], row["namespace"], row["vector"], action.label, moderator_id, now),
            )
        flag = self.flag(flag_id)
        assert flag is not None
        return flag

    def reviews(self, flag_id: int) -> list[Review]:
        rows = self._db.execute("SELECT * FROM flag_reviews WHERE flag_id = ? ORDER BY id", (flag_id,)).fetchall()
        return [
            Review(r["flag_id"], r["moderator_id"], ReviewAction(r["action"]), FlagStatus(r["old_status"]), FlagStatus(r["new_status"]),
                   dt.datetime.fromisoformat(r["created_at"]))
            for r in rows
        ]

    def feedback_examples(self, namespace: str, guild_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Moderator-labelled vectors for one encoder namespace: float32 ``[n, dim]`` and int64 labels ``[n]``."""
        query, params = "SELECT vector, label FROM feedback WHERE namespace = ?", [namespace]
        if guild_id is not None:
            query, params = query + " AND guild_id = ?", [namespace, guild_id]
        rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        if not rows:
            return np.empty((0, 0), np.float32), np.empty(0, np.int64)
        vectors = np.stack([np.frombuffer(r["vector"], dtype="<f4") for r in rows]).astype(np.float32)
        return vectors, np.array([r["label"] for r in rows], dtype=np.int64)


def _migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"the database has schema version {version}, newer than this moodbot's {SCHEMA_VERSION}")
    for number in range(version, SCHEMA_VERSION):
        log.info("migrating the database to schema version %d", number + 1)
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _MIGRATIONS[number].split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class AsyncStore:
    """The bot's view of :class:`Store`: every call runs in one dedicated thread.

    Guild configs and the opt-out set are cached in memory (this object makes every write).
    """

    def __init__(self, store: Store, thread: ThreadPoolExecutor) -> None:
        self.sync = store
        self._thread = thread
        self._configs: dict[int, GuildConfig] = {}
        self._opted_out: frozenset[int] | None = None

    @classmethod
    async def open(cls, path: str | Path, default_threshold: float = 0.9) -> AsyncStore:
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodbot-store")
        try:
            store = await asyncio.get_running_loop().run_in_executor(thread, Store.open_sync, path, default_threshold)
        except BaseException:
            thread.shutdown()
            raise
        return cls(store, thread)

    async def _call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: function(*args, **kwargs))

    async def close(self) -> None:
        await self._call(self.sync.close)
        self._thread.shutdown(wait=True)

    async def guild_config(self, guild_id: int) -> GuildConfig:
        config = self._configs.get(guild_id)
        if config is None:
            config = self._configs[guild_id] = await self._call(self.sync.guild_config, guild_id)
        return config

    async def update_guild(self, guild_id: int, **values: object) -> GuildConfig:
        self._configs[guild_id] = config = await self._call(self.sync.update_guild, guild_id, **values)
        return config

    async def set_channel(self, guild_id: int, channel_id: int, kind: str, enabled: bool) -> GuildConfig:
        self._configs[guild_id] = config = await self._call(self.sync.set_channel, guild_id, channel_id, kind, enabled)
        return config

    async def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool) -> GuildConfig:
        self._configs[guild_id] = config = await self._call(self.sync.set_exempt_role, guild_id, role_id, exempt)
        return config

    async def is_opted_out(self, user_id: int) -> bool:
        if self._opted_out is None:
            self._opted_out = await self._call(self.sync.opted_out)
        return user_id in self._opted_out

    async def set_opt_out(self, user_id: int, opted_out: bool) -> None:
        await self._call(self.sync.set_opt_out, user_id, opted_out)
        self._opted_out = await self._call(self.sync.opted_out)

    async def add_flag(self, **values: object) -> Flag | None:
        return await self._call(self.sync.add_flag, **values)  # type: ignore[arg-type]

    async def flag(self, flag_id: int) -> Flag | None:
        return await self._call(self.sync.flag, flag_id)

    async def flags(self, guild_id: int, status: FlagStatus | None = None, *, limit: int = 10, offset: int = 0) -> tuple[list[Flag], int]:
        return await self._call(self.sync.flags, guild_id, status, limit=limit, offset=offset)

    async def last_flag_id(self) -> int:
        return await self._call(self.sync.last_flag_id)

    async def unposted_flags(self, up_to_id: int) -> list[Flag]:
        return await self._call(self.sync.unposted_flags, up_to_id)

    async def mark_posted(self, flag_id: int, channel_id: int, message_id: int) -> None:
        await self._call(self.sync.mark_posted, flag_id, channel_id, message_id)

    async def review_flag(self, flag_id: int, moderator_id: int, action: ReviewAction) -> Flag:
        return await self._call(self.sync.review_flag, flag_id, moderator_id, action)

