"""Bring a database to the current schema with the Alembic migrations shipped in ``migrations/``.

An SQLite file written before Alembic (schema ``PRAGMA user_version = 1``) is adopted: stamped with the revision
that recreates that exact schema, then upgraded like any other. Adopting, checking and upgrading happen in one
transaction, so a failure leaves the database as it was; on PostgreSQL an advisory lock makes processes that
start together migrate one after the other.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.engine import WRITE
from bot.store.models import StoreError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
#: The revision whose schema is the one pre-Alembic moodbot created as ``PRAGMA user_version = 1``.
LEGACY_REVISION = "0001"
LEGACY_USER_VERSION = 1
MIGRATION_LOCK = 0x6D6F6F64626F74  # "moodbot": the advisory lock key


async def upgrade(engine: AsyncEngine) -> str:
    """Migrate the database behind ``engine`` to the newest revision and return it.

    This is every path's first connection, so an unreachable server or an unusable file is reported here, by name.
    A database already at the newest revision is only read: opening it never waits for another process's writes.
    """
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
        if current == head_revision():
            return current
        async with engine.execution_options(**{WRITE: True}).begin() as connection:
            return await connection.run_sync(_upgrade)
    except (OSError, sa.exc.DBAPIError) as error:
        cause = getattr(error, "orig", None) or error
        raise StoreError(f"cannot open the database {engine.url}: {type(cause).__name__}: {cause}") from error


@functools.cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: sa.Connection) -> str:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    config, head = _config(connection), head_revision()
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None and connection.dialect.name == "sqlite":
        current = _adopt_legacy(connection, config)
    if current == head:  # another process migrated it while this one waited for the lock
        return head
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if current is not None and current not in known:
        raise StoreError(
            f"the database has schema revision {current!r}, newer than this moodbot's ({head!r}): upgrade moodbot"
        )
    log.info("migrating the database from schema revision %s to %s", current or "(empty)", head)
    command.upgrade(config, "head")
    return head


def _adopt_legacy(connection: sa.Connection, config: Config) -> str | None:
    version = connection.exec_driver_sql("PRAGMA user_version").scalar_one()
    if version == 0:
        return None
    if version > LEGACY_USER_VERSION:
        raise StoreError(f"the database has schema version {version}, newer than this moodbot's: upgrade moodbot")
    log.info("adopting a database written before schema migrations (schema version %d)", version)
    command.stamp(config, LEGACY_REVISION)
    return LEGACY_REVISION
