"""Retries of store operations that failed for a passing reason: no pooled connection free in time, SQLite busy,
a PostgreSQL connection lost or refused while the server restarts.

Such a failure says nothing about the message being handled, so the message waits and tries again (backoff with
jitter, up to a deadline) instead of being dropped; any other error is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 5.0
#: Long enough to ride out a database restart or a minute-long overload; past it the error reaches the caller.
RETRY_FOR_S = 120.0
#: From this attempt on each retry is logged as a warning (the first ones are routine under a burst).
WARN_FROM_ATTEMPT = 4


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` may pass by itself: pool timeout, lost or refused connection, a busy or locked database."""
    if isinstance(error, sa.exc.TimeoutError | sa.exc.OperationalError | sa.exc.InterfaceError | OSError):
        return True
    return isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated


async def retrying(
    operation: Callable[[], Awaitable[T]], what: str, *, retry_for_s: float = RETRY_FOR_S
) -> T:
    """``await operation()``, again after each transient failure (doubling delays) until ``retry_for_s`` is spent."""
    deadline = time.monotonic() + retry_for_s
    delay = FIRST_DELAY_S
    attempt = 1
    while True:
        try:
            return await operation()
        except Exception as error:
            if not is_transient(error) or time.monotonic() + delay > deadline:
                raise
            level = logging.WARNING if attempt >= WARN_FROM_ATTEMPT else logging.DEBUG
            log.log(level, "%s failed (attempt %d: %s); retrying in %.2f s", what, attempt, _brief(error), delay)
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, MAX_DELAY_S)
        attempt += 1


def _brief(error: BaseException) -> str:
    return f"{error.__class__.__name__}: {str(error).splitlines()[0] if str(error) else ''}"
