"""Values the store, the cogs and the tests share about a guild's channels (kept out of the store's internals)."""

from __future__ import annotations

import enum


class ChannelKind(enum.StrEnum):
    """What an admin made a channel: ``live`` (a sentiment reaction on each message) or ``disabled`` (ignored)."""

    LIVE = "live"
    DISABLED = "disabled"
