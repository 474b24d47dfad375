"""The bot's state on the event loop: guild settings, opt-outs, flags, their review history and moderator feedback.

Several processes may share one database. Guild settings and opt-outs, read for every message, are kept per
process for under a second (:mod:`bot.store.read_cache`): a change made by any process holds in every other
within that time, and a burst costs one read per guild or batch of members instead of two per message. Every
guarantee is a single conditional statement the database arbitrates: a flag is stored before it is posted, one
process at a time holds the claim to post its card, and a review applies only to the status the moderator saw.
Every write is one transaction, is retried when it failed for a passing reason (:mod:`bot.store.retry`), and runs
to its end even when its caller is cancelled (a shutdown between posting a card and recording it);
:meth:`AsyncStore.close` waits for it. Feedback keeps the flagged message's feature vector (raw little-endian
float32) and a label, never its text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store import migrate
from bot.store.channel_kind import ChannelKind
from bot.store.engine import DEFAULT_POOL_SIZE, WRITE, create_engine, reader
from bot.store.models import (
    AlreadyReviewedError,
    Flag,
    FlaggedAs,
    FlagStatus,
    GuildConfig,
    Review,
    ReviewAction,
    excerpt,
    text_hash,
)
from bot.store.read_cache import DEFAULT_TTL_S, ReadCache
from bot.store.retry import retrying
from bot.store.schema import (
    app_state,
    exempt_roles,
    feedback,
    flag_reviews,
    flags,
    guild_channels,
    guild_settings,
    optouts,
    utcnow,
)
from classifier.flag_policy import (
    DEFAULT_FLAG_ON,
    DEFAULT_FLAG_THRESHOLD,
    FLAG_THRESHOLD_RANGE,
    Reason,
    parse_flag_on,
)
from classifier.heads.tasks import SENTIMENT
from classifier.language import parse_language_pin

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

GUILD_SETTINGS = {"modlog_channel_id", "flag_threshold", "flag_on", "language", "auto_flag", "history"}
CLOSE_TIMEOUT_SECONDS = 10.0
_FLAG_COLUMNS = (
    flags.c.id,
    flags.c.guild_id,
    flags.c.channel_id,
    flags.c.message_id,
    flags.c.author_id,
    flags.c.p_negative,
    flags.c.excerpt,
    flags.c.created_at,
    flags.c.status,
    flags.c.modlog_channel_id,
    flags.c.modlog_message_id,
    flags.c.head,
    flags.c.label,
    flags.c.score,
    flags.c.reasons,
    flags.c.edited_at,
    flags.c.deleted_at,
    flags.c.first_excerpt,
    flags.c.first_p_negative,
    flags.c.first_reasons,
    flags.c.below_threshold,
    flags.c.revision,
)


_SETTINGS, _EXEMPT = "settings", "exempt"
_GUILD = sa.bindparam("guild_id")
#: A guild's whole config in one statement, read on every message: its settings row (if any), then one row per
#: live or disabled channel (``part`` is the kind) and per exempt role.
_GUILD_CONFIG = sa.union_all(
    sa.select(
        sa.literal_column(f"'{_SETTINGS}'").label("part"),
        guild_settings.c.modlog_channel_id.label("id"),
        guild_settings.c.flag_threshold,
        guild_settings.c.flag_on,
        guild_settings.c.language,
        guild_settings.c.auto_flag,
        guild_settings.c.history,
    ).where(guild_settings.c.guild_id == _GUILD),
    sa.select(guild_channels.c.kind, guild_channels.c.channel_id, *[sa.null()] * 5).where(
        guild_channels.c.guild_id == _GUILD
    ),
    sa.select(sa.literal_column(f"'{_EXEMPT}'"), exempt_roles.c.role_id, *[sa.null()] * 5).where(
        exempt_roles.c.guild_id == _GUILD
    ),
)
_OPTED_OUT = sa.select(optouts.c.user_id).where(optouts.c.user_id.in_(sa.bindparam("user_ids", expanding=True)))
#: Members looked up in one opt-out query at most (a bound on the statement's size).
OPT_OUT_CHUNK = 500


async def flag_page(
    db: AsyncConnection, where: list[sa.ColumnElement[bool]], *, limit: int, offset: int
) -> tuple[list[Flag], int]:
    """The flags matching ``where``, newest first, one page of them, and how many match in all."""
    total = (await db.execute(sa.select(sa.func.count()).select_from(flags).where(*where))).scalar_one()
    query = sa.select(*_FLAG_COLUMNS).where(*where).order_by(flags.c.id.desc()).limit(limit).offset(offset)
    rows = (await db.execute(query)).all()
    return [_flag(row) for row in rows], total


def _flag(row: sa.Row) -> Flag:
    return Flag(
        id=row.id,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        message_id=row.message_id,
        author_id=row.author_id,
        p_negative=row.p_negative,
        excerpt=row.excerpt,
        created_at=row.created_at,
        status=FlagStatus(row.status),
        modlog_channel_id=row.modlog_channel_id,
        modlog_message_id=row.modlog_message_id,
        reasons=_reasons(row),
        edited_at=row.edited_at,
        deleted_at=row.deleted_at,
        first=_flagged_as(row),
        below_threshold=bool(row.below_threshold),
        revision=row.revision,
    )


def _reasons(row: sa.Row) -> tuple[Reason, ...]:
    """A flag's reasons: as stored, or for a flag from before reasons, its one head, label and score."""
    if row.reasons:
        return _parse_reasons(row.reasons)
    return (Reason(row.head, row.label, row.score if row.score is not None else row.p_negative),)


def _flagged_as(row: sa.Row) -> FlaggedAs | None:
    if row.first_excerpt is None:
        return None
    return FlaggedAs(row.first_excerpt, row.first_p_negative, _parse_reasons(row.first_reasons))


def _parse_reasons(stored: str) -> tuple[Reason, ...]:
    return tuple(Reason.from_json(item) for item in json.loads(stored))


def _dump_reasons(reasons: Sequence[Reason]) -> str:
    return json.dumps([reason.to_json() for reason in reasons])


def _to_stored(instant: dt.datetime) -> dt.datetime:
    """``instant`` cut to the millisecond, as every backend stores it, so that a replayed edit compares equal."""
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def _review(row: sa.Row) -> Review:
    return Review(
        row.flag_id,
        row.moderator_id,
        ReviewAction(row.action),
        FlagStatus(row.old_status),
        FlagStatus(row.new_status),
        row.created_at,
    )


def _finishes(
    write: Callable[Concatenate[AsyncStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[AsyncStore, P], Coroutine[Any, Any, T]]:
    """Run the write as its own task, so that cancelling the caller cannot cut it short; retry transient failures."""

    @functools.wraps(write)
    async def run(store: AsyncStore, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(retrying(lambda: write(store, *args, **kwargs), write.__name__))
        store._writes.add(task)
        task.add_done_callback(store._write_done)
        return await asyncio.shield(task)

    return run


class AsyncStore:
    """The database behind one engine; :meth:`open` migrates it first.

    ``settings_ttl_s`` is how long this process keeps a guild's settings and a member's opt-out (under a second:
    the cross-process guarantee).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        default_threshold: float = DEFAULT_FLAG_THRESHOLD,
        settings_ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        self.engine = engine
        self.default_threshold = default_threshold
        self._writes: set[asyncio.Future[Any]] = set()
        self._connections = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._reader = reader(engine)
        self._writer = engine.execution_options(**{WRITE: True})
        # ON CONFLICT is spelled the same way on both backends, but SQLAlchemy keeps it per dialect.
        self._insert: Callable[[sa.Table], sqlite.Insert | postgresql.Insert] = (
            sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert
        )
        self.guild_configs: ReadCache[int, GuildConfig] = ReadCache(self._load_guild_configs, ttl_s=settings_ttl_s)
        self.opt_outs: ReadCache[int, bool] = ReadCache(self._load_opt_outs, ttl_s=settings_ttl_s)

    @classmethod
    async def open(
        cls, target: str | Path, default_threshold: float = DEFAULT_FLAG_THRESHOLD, pool_size: int | None = None
    ) -> AsyncStore:
        """Open (creating or migrating) the database at ``target``: a URL, or the path of an SQLite file."""
        engine = create_engine(target, pool_size or DEFAULT_POOL_SIZE)
        try:
            await migrate.upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, default_threshold)

    async def close(self) -> None:
        """Let writes in progress finish and connections come back, then close them all."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await asyncio.gather(*self._writes, return_exceptions=True)
                await self._idle.wait()
        except TimeoutError:
            log.warning("closing the database with %d operations still running", self._connections)
        await self.engine.dispose()

    def _write_done(self, task: asyncio.Future[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:  # retrieved, also when its caller is gone
            log.debug("a database write failed: %r", task.exception())

    @asynccontextmanager
    async def _connected(self, begin: bool) -> AsyncIterator[AsyncConnection]:
        self._connections += 1
        self._idle.clear()
        try:
            async with self._writer.begin() if begin else self._reader.connect() as connection:
                yield connection
        finally:
            self._connections -= 1
            if not self._connections:
                self._idle.set()

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._connected(begin=False)

    def _write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._connected(begin=True)

    # guild settings

    async def guild_config(self, guild_id: int) -> GuildConfig:
        """The guild's settings, at most ``settings_ttl_s`` old (current after a change through this store)."""
        return await self.guild_configs.get(guild_id)

    async def _load_guild_configs(self, guild_ids: list[int]) -> dict[int, GuildConfig]:
        async def read() -> dict[int, GuildConfig]:
            async with self._read() as db:
                return {guild_id: await self._guild_config(db, guild_id) for guild_id in guild_ids}

        return await retrying(read, "reading guild settings")

    async def _guild_config(self, db: AsyncConnection, guild_id: int) -> GuildConfig:
        settings, channels, roles = None, [], set()
        for row in await db.execute(_GUILD_CONFIG, {"guild_id": guild_id}):
            if row.part == _SETTINGS:
                settings = row
            elif row.part == _EXEMPT:
                roles.add(row.id)
            else:
                channels.append(row)
        threshold = settings.flag_threshold if settings is not None else None
        return GuildConfig(
            guild_id=guild_id,
            modlog_channel_id=settings.id if settings is not None else None,
            flag_threshold=threshold if threshold is not None else self.default_threshold,
            auto_flag=bool(settings.auto_flag) if settings is not None else True,
            history=bool(settings.history) if settings is not None else True,
            flag_on=parse_flag_on(settings.flag_on) if settings is not None and settings.flag_on else DEFAULT_FLAG_ON,
            language=settings.language if settings is not None else None,
            live_channels=frozenset(c.id for c in channels if c.part == ChannelKind.LIVE),
            disabled_channels=frozenset(c.id for c in channels if c.part == ChannelKind.DISABLED),
            exempt_roles=frozenset(roles),
        )

    @_finishes
    async def update_guild(self, guild_id: int, **values: object) -> GuildConfig:
        """Set ``modlog_channel_id``, ``flag_threshold`` (0.5 to 1.0, or None for the default), ``flag_on`` (signals,
        None for the default), ``language`` (a pin, None to detect), ``auto_flag`` and/or ``history``."""
        if not values or not values.keys() <= GUILD_SETTINGS:
            raise ValueError(f"unknown guild settings: {sorted(set(values) - GUILD_SETTINGS)}")
        if values.get("flag_on") is not None:
            values["flag_on"] = ",".join(sorted(parse_flag_on(values["flag_on"])))  # type: ignore[arg-type]
        if "language" in values:
            values["language"] = parse_language_pin(values["language"])  # type: ignore[arg-type]
        threshold = values.get("flag_threshold")
        low, high = FLAG_THRESHOLD_RANGE
        if threshold is not None and not low <= float(threshold) <= high:  # type: ignore[arg-type]
            raise ValueError(f"flag_threshold must be between {low} and {high}, not {threshold!r}")
        for switch in ("auto_flag", "history"):
            if switch in values:
                values[switch] = bool(values[switch])
        statement = self._insert(guild_settings).values(guild_id=guild_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[guild_settings.c.guild_id], set_={name: statement.excluded[name] for name in values}
        )
        try:
            async with self._write() as db:
                await db.execute(statement)
                return await self._guild_config(db, guild_id)
        finally:
            self.guild_configs.invalidate([guild_id])

    @_finishes
    async def set_channel(self, guild_id: int, channel_id: int, kind: ChannelKind | str, enabled: bool) -> GuildConfig:
        """Add or remove a channel from the guild's ``live`` or ``disabled`` list."""
        if kind not in set(ChannelKind):
            raise ValueError(f"unknown channel kind {kind!r}: expected one of {', '.join(ChannelKind)}")
        key = {"guild_id": guild_id, "channel_id": channel_id, "kind": ChannelKind(kind).value}
        return await self._set_guild_row(guild_channels, key, enabled)

    @_finishes
    async def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool) -> GuildConfig:
        return await self._set_guild_row(exempt_roles, {"guild_id": guild_id, "role_id": role_id}, exempt)

    async def _set_guild_row(self, table: sa.Table, key: dict[str, object], present: bool) -> GuildConfig:
        """Insert or delete one row of a guild's list table, and return the guild's config; the cached copy of it
        is dropped whatever happens, so no process keeps serving a list that may have changed."""
        guild_id = int(key["guild_id"])  # type: ignore[call-overload]
        try:
            async with self._write() as db:
                if present:
                    await db.execute(self._insert(table).values(key).on_conflict_do_nothing())
                else:
                    await db.execute(sa.delete(table).filter_by(**key))
                return await self._guild_config(db, guild_id)
        finally:
            self.guild_configs.invalidate([guild_id])

    # opt-outs

    async def is_opted_out(self, user_id: int) -> bool:
        """Whether the member opted out, at most ``settings_ttl_s`` ago (current after a change through this store)."""
        return await self.opt_outs.get(user_id)

    async def _load_opt_outs(self, user_ids: list[int]) -> dict[int, bool]:
        async def read() -> set[int]:
            found: set[int] = set()
            async with self._read() as db:
                for start in range(0, len(user_ids), OPT_OUT_CHUNK):
                    chunk = user_ids[start : start + OPT_OUT_CHUNK]
                    found.update((await db.execute(_OPTED_OUT, {"user_ids": chunk})).scalars())
            return found

        opted_out = await retrying(read, "reading opt-outs")
        return {user_id: user_id in opted_out for user_id in user_ids}

    @_finishes
    async def set_opt_out(self, user_id: int, opted_out: bool) -> None:
        try:
            async with self._write() as db:
                if opted_out:
                    await db.execute(
                        self._insert(optouts).values(user_id=user_id, created_at=utcnow()).on_conflict_do_nothing()
                    )
                else:
                    await db.execute(sa.delete(optouts).where(optouts.c.user_id == user_id))
        finally:
            self.opt_outs.invalidate([user_id])

    # state shared by the processes

    @_finishes
    async def change_state(self, key: str, value: str) -> bool:
        """Set ``key`` to ``value``; ``True`` only for the caller that changed it: of several processes setting the
        same new value at once, exactly one is told to act on the change (one conditional upsert)."""
        statement = self._insert(app_state).values(key=key, value=value, updated_at=utcnow())
        statement = statement.on_conflict_do_update(
            index_elements=[app_state.c.key],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
            where=app_state.c.value != statement.excluded.value,
        ).returning(app_state.c.key)
        async with self._write() as db:
            return (await db.execute(statement)).first() is not None

    @_finishes
    async def forget_state(self, key: str, value: str) -> None:
        """Drop ``key`` if it still holds ``value``: undoes a change whose follow-up failed, so a next try redoes it."""
        async with self._write() as db:
            await db.execute(sa.delete(app_state).where(app_state.c.key == key, app_state.c.value == value))

    # flags

    @_finishes
    async def add_flag(
        self,
        *,
        guild_id: int,
        channel_id: int,
        message_id: int,
        author_id: int,
        p_negative: float,
        text: str,
        vector: np.ndarray,
        namespace: str,
        reasons: Sequence[Reason] = (),
        claim_post_s: float | None = None,
        edited_at: dt.datetime | None = None,
    ) -> Flag | None:
        """Store a new open flag; ``None`` when this message is already flagged (a replayed event).

        ``reasons``: why, strongest first (none: sentiment's ``negative`` at ``p_negative``, as before reasons).
        ``edited_at``: the message was flagged for this edit (a replay of it then changes nothing).

        ``claim_post_s``: the caller also takes the flag's post claim (:meth:`claim_post`) for that long, in the same
        statement: one transaction, and one disk sync, fewer per flag.
        """
        now = utcnow()
        reasons = list(reasons) or [Reason(SENTIMENT.name, "negative", float(p_negative))]
        top = reasons[0]
        claimed_until = now + dt.timedelta(seconds=claim_post_s) if claim_post_s is not None else None
        statement = (
            self._insert(flags)
            .values(
                guild_id=guild_id,
                channel_id=channel_id,
                message_id=message_id,
                author_id=author_id,
                p_negative=float(p_negative),
                head=top.head,
                label=top.label,
                score=float(top.score),
                reasons=_dump_reasons(reasons),
                excerpt=excerpt(text),
                text_hash=text_hash(text),
                edited_at=_to_stored(edited_at) if edited_at is not None else None,
                created_at=now,
                vector=np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                namespace=namespace,
                post_claimed_until=claimed_until,
            )
            .on_conflict_do_nothing(index_elements=[flags.c.guild_id, flags.c.message_id])
            .returning(*_FLAG_COLUMNS)
        )
        async with self._write() as db:
            row = (await db.execute(statement)).first()
        return _flag(row) if row is not None else None

    async def flag(self, flag_id: int) -> Flag | None:
        async with self._read() as db:
            return await self._flag_row(db, flag_id)

    async def flag_of_message(self, guild_id: int, message_id: int) -> Flag | None:
        """The flag raised on a message, if any (one indexed read: what an edit of an unflagged message costs)."""
        query = sa.select(*_FLAG_COLUMNS).where(flags.c.guild_id == guild_id, flags.c.message_id == message_id)
        async with self._read() as db:
            row = (await db.execute(query)).first()
        return _flag(row) if row is not None else None

    @_finishes
    async def edit_flag(
        self,
        flag_id: int,
        *,
        edited_at: dt.datetime,
        text: str,
        p_negative: float,
        vector: np.ndarray,
        namespace: str,
        reasons: Sequence[Reason],
        below_threshold: bool,
    ) -> Flag | None:
        """Re-score a flag after its message was edited: same id, review state and card; what it was first flagged
        as is kept by the first edit. ``reasons``: the edit's, strongest first, or with ``below_threshold`` the first
        reasons' heads at their new scores.

        ``None``, writing nothing, when the message was deleted, the text is the one already scored, or this edit or
        a later one was applied already (a replayed or late MESSAGE_UPDATE): one conditional UPDATE decides, so of
        any number of processes handling the same edit, one applies it.
        """
        digest, edited_at = text_hash(text), _to_stored(edited_at)
        top = reasons[0]
        async with self._write() as db:
            current = (await db.execute(sa.select(*_FLAG_COLUMNS).where(flags.c.id == flag_id))).first()
            if current is None:
                return None
            statement = (
                sa.update(flags)
                .where(
                    flags.c.id == flag_id,
                    flags.c.deleted_at.is_(None),
                    sa.or_(flags.c.edited_at.is_(None), flags.c.edited_at < edited_at),
                    sa.or_(
                        flags.c.text_hash != digest,
                        sa.and_(flags.c.text_hash.is_(None), flags.c.excerpt != excerpt(text)),
                    ),
                )
                .values(
                    # a flag another writer edited meanwhile has these set already: COALESCE keeps its values
                    first_excerpt=sa.func.coalesce(flags.c.first_excerpt, current.excerpt),
                    first_p_negative=sa.func.coalesce(flags.c.first_p_negative, current.p_negative),
                    first_reasons=sa.func.coalesce(flags.c.first_reasons, _dump_reasons(_reasons(current))),
                    excerpt=excerpt(text),
                    text_hash=digest,
                    p_negative=float(p_negative),
                    head=top.head,
                    label=top.label,
                    score=float(top.score),
                    reasons=_dump_reasons(reasons),
                    below_threshold=below_threshold,
                    vector=np.ascontiguousarray(vector, dtype="<f4").tobytes(),
                    namespace=namespace,
                    edited_at=edited_at,
                    revision=flags.c.revision + 1,
                )
                .returning(*_FLAG_COLUMNS)
            )
            row = (await db.execute(statement)).first()
        return _flag(row) if row is not None else None

    @_finishes
    async def mark_deleted(self, guild_id: int, message_ids: Collection[int]) -> list[Flag]:
        """Record that these messages were deleted; the flags this call marked (each flag is marked by one call, so
        one caller updates its card however many saw the deletion). Most deleted messages were never flagged: a
        read finds that out, without a write transaction."""
        if not message_ids:
            return []
        where = (
            flags.c.guild_id == guild_id, flags.c.message_id.in_(list(message_ids)), flags.c.deleted_at.is_(None)
        )
        async with self._read() as db:
            if (await db.execute(sa.select(flags.c.id).where(*where).limit(1))).first() is None:
                return []
        statement = (
            sa.update(flags)
            .where(*where)
            .values(deleted_at=utcnow(), revision=flags.c.revision + 1)
            .returning(*_FLAG_COLUMNS)
        )
        async with self._write() as db:
            rows = (await db.execute(statement)).all()
        return [_flag(row) for row in rows]

    @staticmethod
    async def _flag_row(db: AsyncConnection, flag_id: int) -> Flag | None:
        row = (await db.execute(sa.select(*_FLAG_COLUMNS).where(flags.c.id == flag_id))).first()
        return _flag(row) if row is not None else None

    async def flags(
        self, guild_id: int, status: FlagStatus | None = None, *, head: str | None = None, limit: int = 10,
        offset: int = 0,
    ) -> tuple[list[Flag], int]:
        """A page of the guild's flags (of one status, raised mainly by one head), newest first, and how many there
        are in all."""
        where = [flags.c.guild_id == guild_id] + ([flags.c.status == status.value] if status else [])
        where += [flags.c.head == head] if head else []
        async with self._read() as db:
            return await flag_page(db, where, limit=limit, offset=offset)

    async def last_flag_id(self) -> int:
        async with self._read() as db:
            return (await db.execute(sa.select(sa.func.coalesce(sa.func.max(flags.c.id), 0)))).scalar_one()

    async def unposted_flags(self, up_to_id: int) -> list[Flag]:
        """Open flags with ``id <= up_to_id`` not posted to a mod-log channel (a crash between storing and posting)."""
        async with self._read() as db:
            rows = (
                await db.execute(
                    sa.select(*_FLAG_COLUMNS)
                    .where(
                        flags.c.modlog_message_id.is_(None),
                        flags.c.status == FlagStatus.OPEN.value,
                        flags.c.id <= up_to_id,
                    )
                    .order_by(flags.c.id)
                )
            ).all()
        return [_flag(row) for row in rows]

    @_finishes
    async def claim_post(self, flag_id: int, seconds: float) -> Flag | None:
        """Take the right to post this flag's card for ``seconds``; ``None`` if it is posted or another claim holds."""
        now = utcnow()
        statement = (
            sa.update(flags)
            .where(
                flags.c.id == flag_id,
                flags.c.modlog_message_id.is_(None),
                sa.or_(flags.c.post_claimed_until.is_(None), flags.c.post_claimed_until < now),
            )
            .values(post_claimed_until=now + dt.timedelta(seconds=seconds))
            .returning(*_FLAG_COLUMNS)
        )
        async with self._write() as db:
            row = (await db.execute(statement)).first()
        return _flag(row) if row is not None else None

    @_finishes
    async def release_post(self, flag_id: int) -> None:
        """Give a claim back after a failed post, so that the next re-post pass may try at once."""
        async with self._write() as db:
            await db.execute(
                sa.update(flags)
                .where(flags.c.id == flag_id, flags.c.modlog_message_id.is_(None))
                .values(post_claimed_until=None)
            )

    @_finishes
    async def mark_posted(self, flag_id: int, channel_id: int, message_id: int) -> int | None:
        """Record the flag's card; its revision now (a newer one than the card shows: an edit came meanwhile)."""
        async with self._write() as db:
            return (
                await db.execute(
                    sa.update(flags)
                    .where(flags.c.id == flag_id)
                    .values(modlog_channel_id=channel_id, modlog_message_id=message_id, post_claimed_until=None)
                    .returning(flags.c.revision)
                )
            ).scalar_one_or_none()

    @_finishes
    async def review_flag(
        self, flag_id: int, moderator_id: int, action: ReviewAction, *, seen: FlagStatus = FlagStatus.OPEN
    ) -> Flag:
        """Move the flag from ``seen`` (the status the moderator saw) to the action's status, append to its history
        and record the label as feedback, in one transaction.

        Raises :class:`AlreadyReviewedError` (writing nothing) when the flag's status is no longer ``seen``, and
        :class:`KeyError` when there is no such flag.
        """
        now = utcnow()
        async with self._write() as db:
            row = (
                await db.execute(
                    sa.update(flags)
                    .where(flags.c.id == flag_id, flags.c.status == seen.value)
                    .values(status=action.status.value, revision=flags.c.revision + 1)
                    .returning(*_FLAG_COLUMNS, flags.c.vector, flags.c.namespace)
                )
            ).first()
            if row is None:
                current = await self._flag_row(db, flag_id)
                if current is None:
                    raise KeyError(f"no flag {flag_id}")
                raise AlreadyReviewedError(current, await self._latest_review(db, flag_id))
            await db.execute(
                sa.insert(flag_reviews).values(
                    flag_id=flag_id,
                    moderator_id=moderator_id,
                    action=action.value,
                    old_status=seen.value,
                    new_status=action.status.value,
                    created_at=now,
                )
            )
            insert = self._insert(feedback).values(
                flag_id=flag_id,
                guild_id=row.guild_id,
                namespace=row.namespace,
                vector=row.vector,
                label=action.label_for(row.head),
                head=row.head,
                moderator_id=moderator_id,
                created_at=now,
            )
            await db.execute(
                insert.on_conflict_do_update(
                    index_elements=[feedback.c.flag_id],
                    set_={name: insert.excluded[name] for name in ("label", "head", "moderator_id", "created_at")},
                )
            )
        return _flag(row)

    async def latest_review(self, flag_id: int) -> Review | None:
        """The flag's latest review: who the card names as having decided."""
        async with self._read() as db:
            return await self._latest_review(db, flag_id)

    @staticmethod
    async def _latest_review(db: AsyncConnection, flag_id: int) -> Review | None:
        query = sa.select(flag_reviews).where(flag_reviews.c.flag_id == flag_id).order_by(flag_reviews.c.id.desc())
        latest = (await db.execute(query.limit(1))).first()
        return _review(latest) if latest is not None else None

    async def reviews(self, flag_id: int) -> list[Review]:
        async with self._read() as db:
            rows = (
                await db.execute(
                    sa.select(flag_reviews).where(flag_reviews.c.flag_id == flag_id).order_by(flag_reviews.c.id)
                )
            ).all()
        return [_review(row) for row in rows]

    async def feedback_examples(
        self, namespace: str, guild_id: int | None = None, head: str = SENTIMENT.name
    ) -> tuple[np.ndarray, np.ndarray]:
        """Moderator-labelled vectors for one encoder namespace and head: float32 ``[n, dim]`` and int64 labels
        ``[n]`` (class indices of the head's classes)."""
        query = sa.select(feedback.c.vector, feedback.c.label).where(
            feedback.c.namespace == namespace, feedback.c.head == head
        )
        if guild_id is not None:
            query = query.where(feedback.c.guild_id == guild_id)
        async with self._read() as db:
            rows = (await db.execute(query.order_by(feedback.c.id))).all()
        if not rows:
            return np.empty((0, 0), np.float32), np.empty(0, np.int64)
        vectors = np.stack([np.frombuffer(row.vector, dtype="<f4") for row in rows]).astype(np.float32)
        return vectors, np.array([row.label for row in rows], dtype=np.int64)
