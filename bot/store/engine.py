"""Database URLs and engines: SQLite through aiosqlite, PostgreSQL through asyncpg, one SQLAlchemy code path for both.

SQLite keeps the durability moodbot always had (WAL, ``synchronous=FULL``, foreign keys) through connect-time
pragmas. pysqlite's own implicit BEGIN is turned off: a write transaction starts with ``BEGIN IMMEDIATE``, so that
a writer waits for the lock instead of failing half-way, and reads run outside transactions on both backends
(:func:`reader`), one statement each, which saves the BEGIN and ROLLBACK round trips of every per-message check.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.store.models import StoreError

#: Execution option that marks a connection as one that will write (SQLite: ``BEGIN IMMEDIATE``).
WRITE = "moodbot_write"
BUSY_TIMEOUT_MS = 5000
DEFAULT_POOL_SIZE = 10
_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
_ACCEPTED = {
    "sqlite": {"", "pysqlite", "aiosqlite"},
    "postgresql": {"", "asyncpg", "psycopg", "psycopg2"},
    "postgres": {""},
}
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def resolve_url(target: str | Path) -> sa.URL:
    """The async-driver URL for ``target``: a ``sqlite:///`` or ``postgresql://`` URL, or a path to an SQLite file."""
    if isinstance(target, Path) or "://" not in target:
        return sa.URL.create("sqlite+aiosqlite", database=str(target))
    expected = "expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    try:
        url = sa.make_url(target)
        url.port  # noqa: B018  (parses the port: a bad one raises here, not at the first query)
    except (sa.exc.ArgumentError, ValueError):
        raise StoreError(f"{redact(target)!r} is not a database URL: {expected}") from None
    backend, _, driver = url.drivername.partition("+")
    if driver not in _ACCEPTED.get(backend, ()):
        raise StoreError(f"{redact(target)!r}: moodbot keeps its state in SQLite or PostgreSQL ({expected})")
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise StoreError(f"{target!r}: an in-memory SQLite database would lose everything; name a file ({expected})")
    return url.set(drivername=_DRIVERS[backend])


def create_engine(target: str | Path, pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:
    """An engine for ``target`` (see :func:`resolve_url`); an SQLite file's folder is created when missing.

    The pool holds at most ``pool_size`` connections, kept open: a burst waits for one instead of opening more, so
    a process never holds more than ``pool_size`` of the server's ``max_connections``.
    """
    url = resolve_url(target)
    options = {"pool_size": pool_size, "max_overflow": 0}
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, **options)
    Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "connect", _sqlite_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def reader(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for reads: autocommit on PostgreSQL; on SQLite, no BEGIN is emitted unless for a write."""
    return engine if engine.dialect.name == "sqlite" else engine.execution_options(isolation_level="AUTOCOMMIT")


def _sqlite_connect(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]  # no implicit BEGIN: see _sqlite_begin
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    if connection.get_execution_options().get(WRITE):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
