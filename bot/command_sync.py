"""Sync the application commands with Discord only when they changed, once however many processes start.

Syncing overwrites every global command and is rate limited, so discord.py's own examples warn against doing it
on each start; with several shard processes that would be one sync per process per deploy. The hash of the
command tree, as the sync would send it, is kept in the database per application: the process that changes
the stored hash syncs, the others (and every later start with the same commands) skip it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from discord import app_commands

from bot.store import AsyncStore

log = logging.getLogger(__name__)


def tree_digest(tree: app_commands.CommandTree[Any]) -> str:
    """SHA-256 of the global commands' payload (what ``tree.sync()`` sends), independent of their order."""
    payload = sorted((command.to_dict(tree) for command in tree._get_all_commands()), key=_order)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _order(command: dict[str, Any]) -> tuple[int, str]:
    return command.get("type", 1), command["name"]


async def sync_if_changed(tree: app_commands.CommandTree[Any], store: AsyncStore, application_id: int) -> int | None:
    """Sync when the tree differs from the last synced one; the number of commands synced, or ``None`` if skipped.

    A failed sync forgets the stored hash again, so that the next start retries it.
    """
    key, digest = f"app_commands:{application_id}", tree_digest(tree)
    if not await store.change_state(key, digest):
        log.info("application commands unchanged since the last sync: not syncing")
        return None
    try:
        synced = await tree.sync()
    except BaseException:
        await store.forget_state(key, digest)
        raise
    return len(synced)
