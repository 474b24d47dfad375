"""Admission control in front of the per-message work: a bounded backlog served by a fixed number of handlers.

discord.py starts a task per gateway event, so a burst of 10,000 messages would otherwise be 10,000 handlers at
once, each holding a database connection and event-loop time until the pool times out and the message is lost.
Here a message waits in a FIFO backlog of at most ``backlog`` messages until one of ``concurrency`` handlers takes
it; when the backlog is full, the event's own task waits for room (nothing is dropped, and discord.py's other
events and the heartbeats go on). Memory is accounted: how many messages wait and how many bytes of text they
hold, with the peaks, in :class:`AdmissionStats`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings import the defaults below: the CLI's start-up does not pay for discord.py
    import discord

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 256
DEFAULT_BACKLOG = 10_000


@dataclass
class AdmissionStats:
    admitted: int = 0
    handled: int = 0
    failed: int = 0  # the handler raised: logged with its traceback
    waited_for_room: int = 0  # arrived to a full backlog
    backlog: int = 0
    backlog_text_bytes: int = 0
    peak_backlog: int = 0
    peak_backlog_text_bytes: int = 0


class MessageAdmission:
    """``await admission.submit(message)`` from ``on_message``; :meth:`start` the handlers with the per-message work,
    :meth:`drain` on close."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY, backlog: int = DEFAULT_BACKLOG) -> None:
        if concurrency < 1 or backlog < 1:
            raise ValueError(f"concurrency and backlog must be >= 1, not {concurrency!r} and {backlog!r}")
        self.concurrency = concurrency
        self._queue: asyncio.Queue[discord.Message] = asyncio.Queue(backlog)
        self._handlers: list[asyncio.Task[None]] = []
        self._full_warned = False
        self.stats = AdmissionStats()

    def start(self, handle: Callable[[discord.Message], Awaitable[None]]) -> None:
        if not self._handlers:
            self._handlers = [
                asyncio.create_task(self._serve(handle), name=f"moodbot-message-handler-{index}")
                for index in range(self.concurrency)
            ]

    async def submit(self, message: discord.Message) -> None:
        """Queue ``message`` for a handler; waits (the message is kept) while the backlog is full."""
        if self._queue.full():
            self.stats.waited_for_room += 1
            if not self._full_warned:
                self._full_warned = True
                log.warning(
                    "message backlog full (%d messages, %d KiB of text): new messages wait to be admitted",
                    self.stats.backlog, self.stats.backlog_text_bytes // 1024,
                )
        await self._queue.put(message)
        stats = self.stats
        stats.admitted += 1
        stats.backlog += 1
        stats.backlog_text_bytes += _text_bytes(message)
        stats.peak_backlog = max(stats.peak_backlog, stats.backlog)
        stats.peak_backlog_text_bytes = max(stats.peak_backlog_text_bytes, stats.backlog_text_bytes)

    async def _serve(self, handle: Callable[[discord.Message], Awaitable[None]]) -> None:
        while True:
            message = await self._queue.get()
            self.stats.backlog -= 1
            self.stats.backlog_text_bytes -= _text_bytes(message)
            if self._full_warned and self.stats.backlog <= self._queue.maxsize // 2:
                self._full_warned = False
                log.info("message backlog back to %d messages", self.stats.backlog)
            try:
                await handle(message)
                self.stats.handled += 1
            except Exception:
                self.stats.failed += 1
                log.exception("message %d could not be handled", message.id)
            finally:
                self._queue.task_done()

    @property
    def pending(self) -> int:
        """Messages admitted and not yet handled (waiting or in a handler)."""
        return self.stats.admitted - self.stats.handled - self.stats.failed

    async def drain(self, timeout_s: float) -> int:
        """Let the handlers finish what was admitted (up to ``timeout_s``), then stop them; the messages left."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            pass
        left = self.pending
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        self._handlers = []
        return left


def _text_bytes(message: discord.Message) -> int:
    return len(message.content.encode("utf-8", "surrogatepass")) if message.content else 0
