"""The dashboard's queries: the review queue with filters and paging, flag counts, the audit log of dashboard
actions, and the session cookie key every dashboard process over this database shares."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.fernet import Fernet

from bot.store.async_store import flag_page
from bot.store.models import Flag, FlagStatus
from bot.store.schema import app_state, dashboard_audit, flags, utcnow
from bot.store.side_store import SideStore

log = logging.getLogger(__name__)

#: ``app_state`` key of the dashboard's session cookie key (a Fernet key).
SESSION_KEY_STATE = "dashboard_session_key"


@dataclass(frozen=True)
class FlagFilter:
    """What the review queue shows: flags of ``channel_ids`` (the channels the viewer may review), narrowed down."""

    channel_ids: Collection[int]
    status: FlagStatus | None = None
    channel_id: int | None = None
    head: str | None = None  # the head of the flag's strongest reason
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    guild_id: int
    user_id: int
    user_name: str
    action: str
    detail: str
    created_at: dt.datetime


class DashboardStore(SideStore):
    async def flag_page(
        self, guild_id: int, selection: FlagFilter, *, limit: int, offset: int
    ) -> tuple[list[Flag], int]:
        """A page of the guild's flags matching ``selection``, newest first, and how many match in all."""
        where = [flags.c.guild_id == guild_id, flags.c.channel_id.in_(list(selection.channel_ids))]
        if selection.status is not None:
            where.append(flags.c.status == selection.status.value)
        if selection.channel_id is not None:
            where.append(flags.c.channel_id == selection.channel_id)
        if selection.head is not None:
            where.append(flags.c.head == selection.head)
        if selection.since is not None:
            where.append(flags.c.created_at >= selection.since)
        if selection.until is not None:
            where.append(flags.c.created_at < selection.until)
        async with self._reader.connect() as db:
            return await flag_page(db, where, limit=limit, offset=offset)

    async def flag_counts(self, guild_id: int) -> dict[FlagStatus, int]:
        """How many of the guild's flags are in each status."""
        query = (
            sa.select(flags.c.status, sa.func.count().label("n")).where(flags.c.guild_id == guild_id)
            .group_by(flags.c.status)
        )
        async with self._reader.connect() as db:
            found = {FlagStatus(row.status): row.n for row in await db.execute(query)}
        return {status: found.get(status, 0) for status in FlagStatus}

    async def flags_by_channel(self, guild_id: int, since: dt.datetime) -> dict[int, int]:
        """How many flags each channel of the guild had from ``since`` on (any status)."""
        query = (
            sa.select(flags.c.channel_id, sa.func.count().label("n"))
            .where(flags.c.guild_id == guild_id, flags.c.created_at >= since)
            .group_by(flags.c.channel_id)
        )
        async with self._reader.connect() as db:
            return {row.channel_id: row.n for row in await db.execute(query)}

    async def session_key(self) -> str:
        """The dashboard's cookie key: made by the first process that asks and kept in the database, so that every
        dashboard process over it, and each one after a restart, reads the others' sessions. Never logged."""
        made = Fernet.generate_key().decode()
        insert = (
            self._insert(app_state).values(key=SESSION_KEY_STATE, value=made, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=[app_state.c.key]).returning(app_state.c.key)
        )
        async with self._writer.begin() as db:
            created = (await db.execute(insert)).first() is not None
            stored = (await db.execute(sa.select(app_state.c.value).where(app_state.c.key == SESSION_KEY_STATE)))
            key = stored.scalar_one()
        if created:
            log.info("made the dashboard's session key and stored it in the database (app_state)")
        return str(key)

    async def audit(self, guild_id: int, user_id: int, user_name: str, action: str, detail: str) -> None:
        async with self._writer.begin() as db:
            await db.execute(
                sa.insert(dashboard_audit).values(
                    guild_id=guild_id, user_id=user_id, user_name=user_name, action=action, detail=detail,
                    created_at=utcnow(),
                )
            )

    async def audit_log(self, guild_id: int, *, limit: int, offset: int = 0) -> tuple[list[AuditEntry], int]:
        where = dashboard_audit.c.guild_id == guild_id
        async with self._reader.connect() as db:
            count = sa.select(sa.func.count()).select_from(dashboard_audit).where(where)
            total = (await db.execute(count)).scalar_one()
            rows = (
                await db.execute(
                    sa.select(dashboard_audit).where(where).order_by(dashboard_audit.c.id.desc())
                    .limit(limit).offset(offset)
                )
            ).all()
        entries = [AuditEntry(r.id, r.guild_id, r.user_id, r.user_name, r.action, r.detail, r.created_at) for r in rows]
        return entries, total
