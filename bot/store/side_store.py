"""A base for the store's optional parts (mood history, the dashboard's queries) that live in their own modules.

Each part runs on the engine of an open :class:`~bot.store.AsyncStore` with the same read and write rules (reads
outside transactions, writes as ``BEGIN IMMEDIATE`` transactions on SQLite), so they need no change to it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.async_store import AsyncStore
from bot.store.engine import WRITE, reader


class SideStore:
    """Reader, writer and the dialect's ``INSERT ... ON CONFLICT`` for one store's engine."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        engine: AsyncEngine = store.engine
        self._reader = reader(engine)
        self._writer = engine.execution_options(**{WRITE: True})
        self._insert: Callable[[sa.Table], sqlite.Insert | postgresql.Insert] = (
            sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert
        )
