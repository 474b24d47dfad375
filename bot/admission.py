"""Admission control in front of the per-message work: a bounded backlog served by a fixed number of handlers.

discord.py starts a task per gateway event, so a burst of 10,000 messages would otherwise be 10,000 handlers at
once, each holding a database connection and event-loop time until the pool times out and the message is lost.
Here a message waits in a FIFO backlog of at most ``backlog`` messages until one of ``concurrency`` handlers takes
it; when the backlog is full, the event's own task waits for room (nothing is dropped, and discord.py's other
events and the heartbeats go on). Memory is accounted: how many messages wait and how many bytes of text they
hold, with the peaks, in :class:`AdmissionStats`.

Edits and deletions take the same path as new messages (:class:`MessageEdit`, :class:`MessageDeletion`), and the
items of one message are handled one after the other, in the order they were admitted: an edit waits for the
message's first classification to finish, a deletion for both, whichever handlers took them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:  # settings import the defaults below: the CLI's start-up does not pay for discord.py
    import discord

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 256
DEFAULT_BACKLOG = 10_000


@dataclass(frozen=True)
class MessageEdit:
    """A message whose text changed after it was checked (``on_raw_message_edit``), as edited."""

    message: discord.Message


@dataclass(frozen=True)
class MessageDeletion:
    """Messages of one channel that were deleted (``on_raw_message_delete``, ``on_raw_bulk_message_delete``)."""

    guild_id: int
    channel_id: int
    message_ids: frozenset[int]


#: What a handler is given: a new message, an edit or a deletion.
Work: TypeAlias = "discord.Message | MessageEdit | MessageDeletion"


@dataclass
class AdmissionStats:
    admitted: int = 0  # work items of every kind: new messages, edits, deletions
    handled: int = 0
    failed: int = 0  # the handler raised: logged with its traceback
    waited_for_room: int = 0  # arrived to a full backlog
    backlog: int = 0
    backlog_text_bytes: int = 0
    peak_backlog: int = 0
    peak_backlog_text_bytes: int = 0
    edits: int = 0  # edits admitted (their text differed from what discord.py had cached, or it had none)
    edits_classified: int = 0  # edits the model read
    edits_cached: int = 0  # edits whose text was in the embedding cache (e.g. edited back)
    deletions: int = 0  # deletion events admitted (a bulk delete is one)


@dataclass
class _Held:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class MessageOrder:
    """A lock per message with work admitted, so that its items run one at a time in the order admitted.

    Handlers take items first come, first served and take the item's locks before their first suspension, and
    asyncio's locks wake waiters in order; an item of several messages (a bulk delete) takes them in id order, so
    that two such items never wait for each other.
    """

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}

    @asynccontextmanager
    async def hold(self, message_ids: Collection[int]) -> AsyncIterator[None]:
        ordered = sorted(set(message_ids))
        held = [self._held.setdefault(message_id, _Held()) for message_id in ordered]
        for entry in held:
            entry.users += 1
        acquired = 0
        try:
            for entry in held:
                await entry.lock.acquire()
                acquired += 1
            yield
        finally:
            for entry in held[:acquired]:
                entry.lock.release()
            for message_id, entry in zip(ordered, held, strict=True):
                entry.users -= 1
                if not entry.users:
                    del self._held[message_id]

    def __len__(self) -> int:
        """Messages with work admitted and not yet done."""
        return len(self._held)


class MessageAdmission:
    """``await admission.submit(item)`` from the gateway listeners; :meth:`start` the handlers with the work,
    :meth:`drain` on close."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY, backlog: int = DEFAULT_BACKLOG) -> None:
        if concurrency < 1 or backlog < 1:
            raise ValueError(f"concurrency and backlog must be >= 1, not {concurrency!r} and {backlog!r}")
        self.concurrency = concurrency
        self._queue: asyncio.Queue[Work] = asyncio.Queue(backlog)
        self._order = MessageOrder()
        self._handlers: list[asyncio.Task[None]] = []
        self._full_warned = False
        self.stats = AdmissionStats()

    def start(self, handle: Callable[[Work], Awaitable[None]]) -> None:
        if not self._handlers:
            self._handlers = [
                asyncio.create_task(self._serve(handle), name=f"moodbot-message-handler-{index}")
                for index in range(self.concurrency)
            ]

    async def submit(self, item: Work) -> None:
        """Queue ``item`` for a handler; waits (the item is kept) while the backlog is full."""
        if self._queue.full():
            self.stats.waited_for_room += 1
            if not self._full_warned:
                self._full_warned = True
                log.warning(
                    "message backlog full (%d messages, %d KiB of text): new messages wait to be admitted",
                    self.stats.backlog, self.stats.backlog_text_bytes // 1024,
                )
        await self._queue.put(item)
        stats = self.stats
        stats.admitted += 1
        stats.edits += isinstance(item, MessageEdit)
        stats.deletions += isinstance(item, MessageDeletion)
        stats.backlog += 1
        stats.backlog_text_bytes += _text_bytes(item)
        stats.peak_backlog = max(stats.peak_backlog, stats.backlog)
        stats.peak_backlog_text_bytes = max(stats.peak_backlog_text_bytes, stats.backlog_text_bytes)

    async def _serve(self, handle: Callable[[Work], Awaitable[None]]) -> None:
        while True:
            item = await self._queue.get()
            self.stats.backlog -= 1
            self.stats.backlog_text_bytes -= _text_bytes(item)
            if self._full_warned and self.stats.backlog <= self._queue.maxsize // 2:
                self._full_warned = False
                log.info("message backlog back to %d messages", self.stats.backlog)
            try:
                async with self._order.hold(_message_ids(item)):
                    await handle(item)
                self.stats.handled += 1
            except Exception:
                self.stats.failed += 1
                log.exception("%s could not be handled", _describe(item))
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


def _message_ids(item: Work) -> Collection[int]:
    if isinstance(item, MessageDeletion):
        return item.message_ids
    return (item.message.id if isinstance(item, MessageEdit) else item.id,)


def _describe(item: Work) -> str:
    if isinstance(item, MessageDeletion):
        return f"the deletion of {len(item.message_ids)} messages in channel {item.channel_id}"
    return f"the edit of message {item.message.id}" if isinstance(item, MessageEdit) else f"message {item.id}"


def _text_bytes(item: Work) -> int:
    if isinstance(item, MessageDeletion):
        return 0
    content = (item.message if isinstance(item, MessageEdit) else item).content
    return len(content.encode("utf-8", "surrogatepass")) if content else 0
