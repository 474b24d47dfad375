"""Which gateway shards this process runs, and so which guilds it owns.

Discord sends a guild's events to one shard only: ``(guild_id >> 22) % shard_count``. A process that runs some of
the shards therefore sees only those guilds, and every per-guild job (posting flags, re-posting, live mode) is
done by the one process that owns the guild.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"
MAX_SHARDS = 65_536


@dataclass(frozen=True)
class ShardConfig:
    """``count`` shards in all (``None``: as many as Discord recommends); this process runs ``ids`` (``None``: all)."""

    count: int | None = None
    ids: tuple[int, ...] | None = None

    def owns(self, guild_id: int) -> bool:
        """Whether this process receives the guild's events."""
        if self.ids is None or self.count is None:
            return True
        return shard_of(guild_id, self.count) in self.ids

    def describe(self) -> str:
        count = AUTO if self.count is None else str(self.count)
        ids = "all" if self.ids is None else ",".join(map(str, self.ids))
        return f"shards {ids} of {count}"


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a guild's events to."""
    return (guild_id >> 22) % shard_count


def parse_count(raw: str) -> int | None:
    """an integer >= 1, or auto"""
    value = raw.strip().lower()
    if value == AUTO:
        return None
    count = int(value)
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError
    return count


def parse_ids(raw: str) -> tuple[int, ...]:
    """shard ids as ranges and lists, e.g. 0-3 or 0,2,5"""
    ids: list[int] = []
    for part in raw.split(","):
        low, dash, high = part.strip().partition("-")
        first = int(low)
        last = int(high) if dash else first
        if first < 0 or last < first or last >= MAX_SHARDS:
            raise ValueError
        ids.extend(range(first, last + 1))
    if len(set(ids)) != len(ids):
        raise ValueError
    return tuple(sorted(ids))
