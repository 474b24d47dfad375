"""A blocking view of :class:`AsyncStore` for the CLI, scripts and tests.

The store's one implementation is async; this runs it on a private event loop in its own thread, so that it works
from plain code and from inside another running loop alike (a test that reads the database while the bot runs in
the same process).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bot.store.async_store import AsyncStore
from bot.store.channel_kind import ChannelKind
from bot.store.models import Flag, FlagStatus, GuildConfig, Review, ReviewAction
from classifier.flag_policy import DEFAULT_FLAG_THRESHOLD

T = TypeVar("T")


class Store:
    """The same calls as :class:`AsyncStore`, returning their results; close it (or use ``with``) when done."""

    def __init__(self, target: str | Path, default_threshold: float = DEFAULT_FLAG_THRESHOLD) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="moodbot-store-sync", daemon=True)
        self._thread.start()
        try:
            self._store = self._run(AsyncStore.open(target, default_threshold))
        except BaseException:
            self._stop()
            raise

    @classmethod
    def open_sync(cls, target: str | Path, default_threshold: float = DEFAULT_FLAG_THRESHOLD) -> Store:
        """Open (creating or migrating) the database at ``target``: a URL, or the path of an SQLite file."""
        return cls(target, default_threshold)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            try:
                self._run(self._store.close())
            finally:
                self._stop()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def guild_config(self, guild_id: int) -> GuildConfig:
        return self._run(self._store.guild_config(guild_id))

    def update_guild(self, guild_id: int, **values: object) -> GuildConfig:
        return self._run(self._store.update_guild(guild_id, **values))

    def set_channel(self, guild_id: int, channel_id: int, kind: ChannelKind | str, enabled: bool) -> GuildConfig:
        return self._run(self._store.set_channel(guild_id, channel_id, kind, enabled))

    def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool) -> GuildConfig:
        return self._run(self._store.set_exempt_role(guild_id, role_id, exempt))

    def is_opted_out(self, user_id: int) -> bool:
        return self._run(self._store.is_opted_out(user_id))

    def set_opt_out(self, user_id: int, opted_out: bool) -> None:
        self._run(self._store.set_opt_out(user_id, opted_out))

    def add_flag(self, **values: Any) -> Flag | None:
        return self._run(self._store.add_flag(**values))

    def flag(self, flag_id: int) -> Flag | None:
        return self._run(self._store.flag(flag_id))

    def flags(
        self, guild_id: int, status: FlagStatus | None = None, *, head: str | None = None, limit: int = 10,
        offset: int = 0,
    ) -> tuple[list[Flag], int]:
        return self._run(self._store.flags(guild_id, status, head=head, limit=limit, offset=offset))

    def last_flag_id(self) -> int:
        return self._run(self._store.last_flag_id())

    def unposted_flags(self, up_to_id: int) -> list[Flag]:
        return self._run(self._store.unposted_flags(up_to_id))

    def claim_post(self, flag_id: int, seconds: float) -> Flag | None:
        return self._run(self._store.claim_post(flag_id, seconds))

    def mark_posted(self, flag_id: int, channel_id: int, message_id: int) -> int | None:
        return self._run(self._store.mark_posted(flag_id, channel_id, message_id))

    def flag_of_message(self, guild_id: int, message_id: int) -> Flag | None:
        return self._run(self._store.flag_of_message(guild_id, message_id))

    def edit_flag(self, flag_id: int, **values: Any) -> Flag | None:
        return self._run(self._store.edit_flag(flag_id, **values))

    def mark_deleted(self, guild_id: int, message_ids: Collection[int]) -> list[Flag]:
        return self._run(self._store.mark_deleted(guild_id, message_ids))

    def latest_review(self, flag_id: int) -> Review | None:
        return self._run(self._store.latest_review(flag_id))

    def review_flag(
        self, flag_id: int, moderator_id: int, action: ReviewAction, *, seen: FlagStatus = FlagStatus.OPEN
    ) -> Flag:
        return self._run(self._store.review_flag(flag_id, moderator_id, action, seen=seen))

    def reviews(self, flag_id: int) -> list[Review]:
        return self._run(self._store.reviews(flag_id))

    def feedback_examples(
        self, namespace: str, guild_id: int | None = None, head: str = "sentiment"
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._run(self._store.feedback_examples(namespace, guild_id, head))
