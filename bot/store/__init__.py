"""The bot's database: guild settings, opt-outs, flags, their review history and moderator feedback.

One code path for both backends, SQLAlchemy Core over asyncio drivers: an SQLite file (the default, in the data
directory) or PostgreSQL, where several bot processes share one database. The schema is created and migrated
by Alembic when the store opens (``migrate``). :class:`AsyncStore` is what the bot uses on its event loop;
:class:`Store` is the same API, blocking, for the CLI and tests; ``admin`` upgrades and copies whole databases.
"""

from bot.store.async_store import AsyncStore
from bot.store.blocking import Store
from bot.store.models import (
    EXCERPT_CHARS,
    LABEL_NEGATIVE,
    LABEL_NEUTRAL,
    AlreadyReviewedError,
    Flag,
    FlaggedAs,
    FlagStatus,
    GuildConfig,
    Review,
    ReviewAction,
    StoreError,
    excerpt,
)

__all__ = [
    "EXCERPT_CHARS",
    "LABEL_NEGATIVE",
    "LABEL_NEUTRAL",
    "AlreadyReviewedError",
    "AsyncStore",
    "Flag",
    "FlaggedAs",
    "FlagStatus",
    "GuildConfig",
    "Review",
    "ReviewAction",
    "Store",
    "StoreError",
    "excerpt",
]
