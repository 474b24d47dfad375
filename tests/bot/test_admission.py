"""Admission control (bot/admission.py) on real discord.py messages parsed from the fake server's payloads: the
backlog, and the order of a message's new-message, edit and deletion items."""

from __future__ import annotations

import asyncio
import logging

import discord
import pytest

from bot.admission import MessageAdmission, MessageDeletion, MessageEdit, MessageOrder, Work
from tests.support.bot import parsed_guild, parsed_message
from tests.support.fake_discord import FakeDiscordServer, seed_default


async def messages(count: int) -> list[discord.Message]:
    """``count`` messages of #general, parsed as discord.py does (an offline fake server: nothing is started)."""
    server = FakeDiscordServer()
    seed = seed_default(server)
    guild = parsed_guild(server, seed.guild_id)
    sent = [await server.send_message(seed.general_id, seed.member_id, f"message {i}") for i in range(count)]
    return [parsed_message(guild, message) for message in sent]


class Handler:
    """Records what it handled and how many ran at once; holds each message until released."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.handled: list[int] = []
        self.running = 0
        self.most_at_once = 0
        self.release = asyncio.Event()

    async def __call__(self, message: discord.Message) -> None:
        self.started.append(message.id)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.wait()
            if message.content == "message 3":
                raise RuntimeError("a bug in a consumer")
            self.handled.append(message.id)
        finally:
            self.running -= 1


@pytest.mark.expected_errors("bot.admission")
async def test_a_burst_waits_in_the_backlog_and_every_message_is_handled_once_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    burst = await messages(40)
    admission, handler = MessageAdmission(concurrency=4, backlog=10), Handler()
    admission.start(handler)
    submitting = [asyncio.create_task(admission.submit(message)) for message in burst]
    await asyncio.sleep(0.05)
    # 4 in the handlers, 10 in the backlog, the other 26 events wait for room: none is lost
    assert handler.running == 4 and admission.stats.backlog == 10 and sum(t.done() for t in submitting) == 14
    assert 26 <= admission.stats.waited_for_room <= 30  # found it full (the handlers may not have taken theirs yet)
    assert admission.stats.backlog_text_bytes == sum(len(m.content) for m in burst[4:14])
    with caplog.at_level(logging.WARNING, "bot.admission"):
        handler.release.set()
        await asyncio.gather(*submitting)
        assert await admission.drain(10) == 0
    assert handler.most_at_once == 4
    assert handler.started == [m.id for m in burst]  # first come, first served
    assert sorted(handler.handled) == sorted(m.id for m in burst if m.content != "message 3")
    assert (admission.stats.handled, admission.stats.failed, admission.stats.peak_backlog) == (39, 1, 10)
    assert any("could not be handled" in r.message and r.exc_info for r in caplog.records)  # logged, not lost


async def test_drain_stops_after_its_timeout_and_counts_what_is_left() -> None:
    burst = await messages(6)
    admission, handler = MessageAdmission(concurrency=2, backlog=10), Handler()
    admission.start(handler)
    for message in burst:
        await admission.submit(message)
    assert await admission.drain(0.1) == 6


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        MessageAdmission(concurrency=0)


async def test_the_items_of_one_message_run_one_after_the_other_in_the_order_admitted() -> None:
    first, other = await messages(2)
    assert first.guild is not None
    deletion = MessageDeletion(first.guild.id, first.channel.id, frozenset({first.id, other.id}))
    items: list[Work] = [first, MessageEdit(first), other, deletion]
    events: list[str] = []
    release = asyncio.Event()

    async def handle(item: Work) -> None:
        label = f"{type(item).__name__}:{getattr(item, 'content', '')}"
        events.append(f"start {label}")
        if item is first:
            await release.wait()
        events.append(f"end {label}")

    admission = MessageAdmission(concurrency=4, backlog=10)
    admission.start(handle)
    for item in items:
        await admission.submit(item)
    await asyncio.sleep(0.05)
    # the other message runs at once; the edit waits for its message, the deletion (of both) for the edit
    assert events == ["start Message:message 0", "start Message:message 1", "end Message:message 1"]
    release.set()
    assert await admission.drain(10) == 0
    assert events[3:] == [
        "end Message:message 0", "start MessageEdit:", "end MessageEdit:", "start MessageDeletion:",
        "end MessageDeletion:",
    ]
    assert (admission.stats.admitted, admission.stats.edits, admission.stats.deletions) == (4, 1, 1)


async def test_message_order_forgets_a_message_once_its_work_is_done() -> None:
    order = MessageOrder()
    async with order.hold([2, 1]):
        async with order.hold([3]):
            assert len(order) == 3
    assert len(order) == 0
