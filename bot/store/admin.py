"""Whole-database operations behind ``moodbot db``: migrate a database, or copy one into another and verify it.

A copy moves an install (typically the SQLite file) to PostgreSQL without loss: both databases are migrated to
the same schema, every row is copied with its id (posted mod-log cards name flag ids in their buttons), and
before the target's one transaction commits, each table's rows are compared with the source's, in key order.
Stop the bot while copying: rows it writes meanwhile would not be copied.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import migrate
from bot.store.engine import WRITE, create_engine, resolve_url
from bot.store.models import StoreError
from bot.store.schema import metadata

BATCH_ROWS = 500


async def upgrade(target: str | Path) -> str:
    """Migrate the database at ``target`` to the newest schema; returns its revision."""
    engine = create_engine(target)
    try:
        return await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def copy(source: str | Path, target: str | Path, *, replace: bool = False) -> dict[str, int]:
    """Copy every table from ``source`` into ``target`` and verify the copy; returns the rows per table.

    Refuses (:class:`StoreError`) a target that already holds rows unless ``replace``, which deletes them first.
    A failed copy or verification leaves the target as it was.
    """
    if resolve_url(source) == resolve_url(target):
        raise StoreError("the source and the target are the same database")
    reading, writing = create_engine(source), create_engine(target)
    try:
        await migrate.upgrade(reading)
        await migrate.upgrade(writing)
        async with reading.connect() as reader, writing.execution_options(**{WRITE: True}).begin() as writer:
            held = {table.name: rows for table in metadata.sorted_tables if (rows := await _count(writer, table))}
            if held and not replace:
                listing = ", ".join(f"{name} {rows}" for name, rows in held.items())
                raise StoreError(f"the target database is not empty ({listing} rows): pass --replace to overwrite it")
            for table in reversed(metadata.sorted_tables):
                await writer.execute(sa.delete(table))
            counts = {table.name: await _copy_table(reader, writer, table) for table in metadata.sorted_tables}
            await _continue_ids(writer)
            for table in metadata.sorted_tables:
                if await _digest(reader, table) != await _digest(writer, table):
                    raise StoreError(
                        f"verification failed: table {table.name} differs after the copy (is the bot still writing "
                        "to the source?); nothing was written"
                    )
        return counts
    finally:
        await reading.dispose()
        await writing.dispose()


async def _count(connection: AsyncConnection, table: sa.Table) -> int:
    return (await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()


def _in_key_order(table: sa.Table) -> sa.Select:
    return sa.select(table).order_by(*table.primary_key.columns)


async def _copy_table(reader: AsyncConnection, writer: AsyncConnection, table: sa.Table) -> int:
    copied = 0
    result = await reader.stream(_in_key_order(table))
    async for rows in result.mappings().partitions(BATCH_ROWS):
        await writer.execute(sa.insert(table), [dict(row) for row in rows])
        copied += len(rows)
    return copied


async def _continue_ids(writer: AsyncConnection) -> None:
    """PostgreSQL sequences do not follow explicit ids (SQLite's AUTOINCREMENT does): move them past the copied rows."""
    if writer.dialect.name != "postgresql":
        return
    for table in metadata.sorted_tables:
        column = table.autoincrement_column
        if column is not None:
            highest = sa.func.max(column)
            await writer.execute(
                sa.select(
                    sa.func.setval(
                        sa.func.pg_get_serial_sequence(table.name, column.name),
                        sa.func.coalesce(highest, 1),
                        highest.is_not(None),
                    )
                )
            )


async def _digest(connection: AsyncConnection, table: sa.Table) -> tuple[int, str]:
    """Rows and a hash of their values in key order: equal on both sides only if every row arrived unchanged."""
    digest, rows = hashlib.sha256(), 0
    result = await connection.stream(_in_key_order(table))
    async for row in result:
        digest.update(repr(tuple(row)).encode())
        rows += 1
    return rows, digest.hexdigest()
