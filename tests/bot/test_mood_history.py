"""Mood history end to end: the real bot counts eligible messages per channel and hour, and writes them on shutdown;
opted-out members, disabled channels, bots and guilds with history off add nothing."""

from __future__ import annotations

import pytest

from bot.store import AsyncStore
from bot.store.history import HistoryStore
from tests.support.helpers import NEGATIVE_MESSAGE, POSITIVE_MESSAGE, WAIT, poll_until

pytestmark = pytest.mark.timeout(120)


async def channel_totals(settings, guild_id: int) -> dict:
    store = await AsyncStore.open(settings.database_path)
    try:
        return await HistoryStore(store).by_channel(guild_id, 0)
    finally:
        await store.close()


async def test_eligible_messages_are_counted_once(fake_discord, seeded_guild, settings, open_store, start_bot) -> None:
    opted_out = fake_discord.add_member(seeded_guild.guild_id, name="bob")
    with open_store() as store:
        store.set_channel(seeded_guild.guild_id, seeded_guild.random_id, "disabled", True)
        store.set_opt_out(opted_out.user.id, True)
    async with start_bot() as service:
        for text in (POSITIVE_MESSAGE, NEGATIVE_MESSAGE, "meeting moved to 3pm"):
            await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, text)
        await fake_discord.send_message(seeded_guild.general_id, opted_out.user.id, "bob was here, unhappy")
        await fake_discord.send_message(seeded_guild.random_id, seeded_guild.member_id, "nobody counts this")
        await fake_discord.send_message(seeded_guild.general_id, fake_discord.bot_user.id, "the bot itself")
        stats = service.bot.admission.stats  # the 5 messages of members were admitted and handled (the bot's is not)
        await poll_until(lambda: stats.handled + stats.failed >= 5, WAIT, "the members' messages to be handled")
        assert stats.failed == 0
    totals = await channel_totals(settings, seeded_guild.guild_id)
    assert list(totals) == [seeded_guild.general_id]
    general = totals[seeded_guild.general_id]
    assert general.total == 3 and general.positive >= 1 and general.negative >= 1
    assert 0 < general.sum_p_negative < 3 and 0 < general.sum_p_positive < 3


async def test_history_off_counts_nothing(fake_discord, seeded_guild, settings, start_bot) -> None:
    async with start_bot() as service:
        interaction = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.moderator_id, "moodbot", {"enabled": False},
            group="config", subcommand="history",
        )
        answer = await interaction.response(WAIT)
        assert answer.ephemeral and "Mood history off" in (answer.content or "")
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        stats = service.bot.admission.stats
        await poll_until(lambda: stats.handled >= 1, WAIT, "the message to be handled")
    assert await channel_totals(settings, seeded_guild.guild_id) == {}
