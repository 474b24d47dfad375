"""Edited and deleted messages end to end: real bot, real model, fake Discord, real SQLite file."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.runner import BotService
from bot.store import FlagStatus
from classifier.text import prepare_text
from tests.support.bot import THRESHOLD, button_ids, click_review, mod_log_posts
from tests.support.classifier import InstrumentedClassifier
from tests.support.fake_discord import FakeDiscordServer, FakeMessage
from tests.support.helpers import NEGATIVE_MESSAGE, POSITIVE_MESSAGE, WAIT, pings_nobody, poll_until

pytestmark = pytest.mark.timeout(90)

OTHER_INSULT = "this is the worst patch ever, horrible"


async def handled(service: BotService, admitted: int) -> None:
    """Wait until the bot has admitted ``admitted`` items (messages, edits, deletions) and finished them all."""
    admission = service.bot.admission
    await poll_until(lambda: admission.stats.admitted >= admitted and admission.pending == 0, WAIT, "the handlers")


async def edit(server: FakeDiscordServer, message: FakeMessage, content: str) -> None:
    """The author edits the message (MESSAGE_UPDATE with a new ``edited_timestamp``)."""
    await server.edit_message(message, {"content": content})


def card_fields(card: FakeMessage) -> dict[str, str]:
    return {field["name"]: field["value"] for field in card.embeds[0]["fields"]}


def delete_button(card: FakeMessage) -> dict:
    return next(c for row in card.components for c in row["components"] if ":delete:" in c["custom_id"])


async def test_an_edit_into_an_insult_is_flagged_once(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot() as service:
        message = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, POSITIVE_MESSAGE)
        await handled(service, 1)
        await edit(fake_discord, message, NEGATIVE_MESSAGE)
        [card] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        fake_discord.gateway.dispatch("MESSAGE_UPDATE", message.data)  # a resumed session replays the edit ...
        await fake_discord.send_message(seeded_guild.random_id, seeded_guild.member_id, POSITIVE_MESSAGE)
        await handled(service, 3)
        stats = service.bot.admission.stats
        # ... which discord.py's cached copy shows unchanged: one edit read (by the model, or from the embedding
        # cache when an earlier test of this session embedded the same text)
        assert stats.edits == 1 and stats.edits_classified + stats.edits_cached == 1
    async with start_bot() as service:  # another process, or this one restarted: no cached copy to compare with
        fake_discord.gateway.dispatch("MESSAGE_UPDATE", message.data)
        await handled(service, 1)
        assert (service.bot.admission.stats.edits, service.bot.admission.stats.edits_cached) == (1, 1)
    [flag] = open_store().flags(seeded_guild.guild_id)[0]
    assert (flag.message_id, flag.excerpt, flag.modlog_message_id) == (message.id, NEGATIVE_MESSAGE, card.id)
    assert flag.edited_at is not None and flag.first is None  # flagged for the edit, never flagged before it
    assert len(fake_discord.bot_messages_in(seeded_guild.mod_log_id)) == 1
    assert card.embeds[0]["title"] == "Flagged message · edited · open"
    assert "flagged as edited" in card_fields(card)["Edited"] and pings_nobody(card)


async def test_an_edit_of_a_flagged_message_updates_its_card_in_place(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot() as service:
        bad = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [card] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        clicked = await click_review(fake_discord, seeded_guild, card, "confirm")
        assert (await clicked.response(WAIT)).type == 7
        await handled(service, 1)

        await edit(fake_discord, bad, f"{POSITIVE_MESSAGE} <@{seeded_guild.moderator_id}> @everyone")
        harmless_at = bad.data["edited_timestamp"]
        await fake_discord.wait_until(lambda: "edited" in card.embeds[0]["title"], WAIT)
        harmless = card_fields(card)
        assert card.embeds[0]["title"] == "Flagged message · edited · confirmed"  # the review stands
        assert POSITIVE_MESSAGE in card.embeds[0]["description"] and NEGATIVE_MESSAGE in harmless["Before the edit"]
        assert "now below the flag threshold: Negative" in harmless["Edited"]
        assert harmless["Why"].startswith("Negative") and "(was " in harmless["Sentiment"]
        assert f"Confirmed by <@{seeded_guild.moderator_id}>" in harmless["Reviewed"] and pings_nobody(card)

        await edit(fake_discord, bad, OTHER_INSULT)
        await fake_discord.wait_until(lambda: OTHER_INSULT in card.embeds[0]["description"], WAIT)
        await handled(service, 3)
    async with start_bot() as service:  # the first edit arrives again, late (a replay to a process without a cache)
        replayed = {**bad.data, "content": "an older edit, arriving late", "edited_timestamp": harmless_at}
        fake_discord.gateway.dispatch("MESSAGE_UPDATE", replayed)
        await handled(service, 1)
    store = open_store()
    [flag] = store.flags(seeded_guild.guild_id)[0]
    assert (flag.message_id, flag.status, flag.modlog_message_id) == (bad.id, FlagStatus.CONFIRMED, card.id)
    assert flag.excerpt == OTHER_INSULT and flag.first.excerpt == NEGATIVE_MESSAGE and not flag.below_threshold
    assert flag.revision == 3  # the review and two edits: the late one wrote nothing
    assert "now Negative" in card_fields(card)["Edited"] and len(store.reviews(flag.id)) == 1
    assert [m.id for m in fake_discord.bot_messages_in(seeded_guild.mod_log_id)] == [card.id]  # never a second card


async def test_edits_racing_the_first_check_wait_for_it_and_end_on_one_card(
    fake_discord, seeded_guild, configure, open_store, start_bot, shipped_classifier
) -> None:
    """Edits admitted while the message is still being classified (its model batch held) wait for it: one card,
    showing the last text and what the message was first flagged as."""
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    held = InstrumentedClassifier(shipped_classifier.encoder, shipped_classifier.heads, shipped_classifier.cache)
    first = "this update is awful, I hate it, and the racing edits know it"  # not cached: it needs the model
    async with start_bot(model=held) as service:
        held.entered.clear()
        held.gate = threading.Event()
        bad = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, first)
        assert await asyncio.to_thread(held.entered.wait, WAIT)  # its classification is in the model thread
        await edit(fake_discord, bad, OTHER_INSULT)
        await asyncio.sleep(0.002)  # edits are ordered by Discord's edited_timestamp, which counts milliseconds
        await edit(fake_discord, bad, "fine, never mind")
        await poll_until(lambda: service.bot.admission.stats.edits == 2, WAIT, "the edits to be admitted")
        assert service.bot.admission.stats.handled == 0
        held.gate.set()
        await handled(service, 3)
    [flag] = open_store().flags(seeded_guild.guild_id)[0]
    [card] = fake_discord.bot_messages_in(seeded_guild.mod_log_id)
    assert (flag.excerpt, flag.first.excerpt, flag.modlog_message_id) == ("fine, never mind", first, card.id)
    assert "fine, never mind" in card.embeds[0]["description"] and "below the flag threshold" in str(card.embeds)


async def test_a_deletion_updates_the_card_and_delete_then_answers_clearly(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot() as service:
        bad = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [card] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        assert not delete_button(card).get("disabled")
        await fake_discord.delete_message(bad)  # by its author, or another bot: the gateway does not say
        await fake_discord.wait_until(lambda: "deleted" in card.embeds[0]["title"], WAIT)
        assert card_fields(card)["Message"].endswith("(by whom unknown)") and delete_button(card)["disabled"]
        await handled(service, 2)

        clicked = await click_review(fake_discord, seeded_guild, card, "delete")  # a card shown before the update
        assert (await clicked.response(WAIT)).type == 7
        note = await clicked.followup(0, WAIT)
        assert note.ephemeral and note.content == "This message was already deleted."
    store = open_store()
    [flag] = store.flags(seeded_guild.guild_id)[0]
    assert flag.deleted_at is not None and flag.status is FlagStatus.OPEN and store.reviews(flag.id) == []
    assert card.embeds[0]["title"] == "Flagged message · deleted · open" and delete_button(card)["disabled"]
    assert len(button_ids(card)) == 3 and len(fake_discord.bot_messages_in(seeded_guild.mod_log_id)) == 1


async def test_delete_of_a_message_deleted_while_the_bot_was_away_answers_clearly(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot():
        bad = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [card] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
    await fake_discord.delete_message(bad)  # no bot connected: nobody hears of it
    async with start_bot():
        clicked = await click_review(fake_discord, seeded_guild, card, "delete")
        assert (await clicked.response(WAIT)).type == 7
        assert (await clicked.followup(0, WAIT)).content == "This message was already deleted."
    [flag] = open_store().flags(seeded_guild.guild_id)[0]
    assert flag.deleted_at is not None and flag.status is FlagStatus.OPEN
    assert "deleted" in card.embeds[0]["title"] and delete_button(card)["disabled"]


async def test_a_bulk_delete_marks_every_flagged_card(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot() as service:
        sent = [
            await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, text)
            for text in (NEGATIVE_MESSAGE, POSITIVE_MESSAGE, OTHER_INSULT)
        ]
        cards = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 2)
        await handled(service, 3)
        await fake_discord.delete_messages(seeded_guild.general_id, sent)
        await fake_discord.wait_until(lambda: all("deleted" in card.embeds[0]["title"] for card in cards), WAIT)
        await handled(service, 4)
        assert service.bot.admission.stats.deletions == 1
    flags = open_store().flags(seeded_guild.guild_id)[0]
    assert len(flags) == 2 and all(flag.deleted_at is not None for flag in flags)
    assert all(delete_button(card)["disabled"] for card in cards)


async def test_an_edit_by_an_opted_out_member_is_ignored(
    fake_discord, seeded_guild, configure, open_store, start_bot, shipped_classifier
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    secret = "I absolutely hate this awful garbage update, edited while opted out"
    async with start_bot() as service:
        interaction = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "privacy", subcommand="optout"
        )
        assert (await interaction.response(WAIT)).ephemeral
        message = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, "hello")
        await edit(fake_discord, message, secret)
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.moderator_id, NEGATIVE_MESSAGE)
        [card] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)  # the sentinel's
        await handled(service, 3)
        assert service.bot.admission.stats.edits_classified + service.bot.admission.stats.edits_cached == 0
    [flag] = open_store().flags(seeded_guild.guild_id)[0]
    assert flag.author_id == seeded_guild.moderator_id and NEGATIVE_MESSAGE in card.embeds[0]["description"]
    assert shipped_classifier.cache.get_many([prepare_text(secret)]) == [None]  # never classified, never cached


async def test_the_live_reaction_follows_an_edit(fake_discord, seeded_guild, configure, open_store, start_bot) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    with open_store() as store:
        store.set_channel(seeded_guild.guild_id, seeded_guild.general_id, "live", True)

    def reactions(message: FakeMessage) -> list[str]:
        return [r["emoji"]["name"] for r in message.reactions if r["me"]]

    async with start_bot() as service:
        message = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, POSITIVE_MESSAGE)
        await fake_discord.wait_until(lambda: reactions(message) == ["😊"], WAIT)
        await edit(fake_discord, message, NEGATIVE_MESSAGE)
        await fake_discord.wait_until(lambda: reactions(message) == ["😠"], WAIT)
        await handled(service, 2)
    async with start_bot() as service:  # replayed to a process without a cached copy: the reaction is right already
        fake_discord.gateway.dispatch("MESSAGE_UPDATE", message.data)
        await handled(service, 1)
    changes = fake_discord.requests_matching(path=rf"/channels/\d+/messages/{message.id}/reactions/.*")
    assert reactions(message) == ["😠"]
    assert [r.method for r in changes] == ["PUT", "PUT", "DELETE"]  # 😊, then 😠 in its place; nothing on replay
