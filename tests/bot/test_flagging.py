"""Auto-flagging end to end: real bot, real model, fake Discord, real SQLite file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import numpy as np
import pytest

from bot.cogs.moderation.review import CARD_CUSTOM_ID
from bot.store import LABEL_NEUTRAL, FlagStatus, ReviewAction
from classifier.heads.sentiment import NEGATIVE, NEUTRAL
from classifier.text import prepare_text
from tests.support.bot import THRESHOLD, button_ids, click_review, handled, mod_log_posts, review_button
from tests.support.helpers import NEGATIVE_MESSAGE, POSITIVE_MESSAGE, TOKEN, WAIT, pings_nobody, poll_until

pytestmark = pytest.mark.timeout(90)


async def test_negative_message_is_flagged_and_posted(
    fake_discord, seeded_guild, configure, open_store, start_bot, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot():
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, POSITIVE_MESSAGE)
        bad = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        store = open_store()
        [flag] = await poll_until(
            lambda: [f for f in store.flags(seeded_guild.guild_id)[0] if f.modlog_message_id], what="a posted flag"
        )
    assert (flag.message_id, flag.author_id, flag.channel_id, flag.status) == (
        bad.id,
        seeded_guild.member_id,
        seeded_guild.general_id,
        FlagStatus.OPEN,
    )
    assert flag.p_negative >= THRESHOLD and flag.excerpt == NEGATIVE_MESSAGE
    assert (flag.modlog_channel_id, flag.modlog_message_id) == (seeded_guild.mod_log_id, post.id)
    [embed] = post.embeds
    assert NEGATIVE_MESSAGE in embed["description"] and f"Flag #{flag.id}" in embed["footer"]["text"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert str(seeded_guild.member_id) in fields["Author"] and str(seeded_guild.general_id) in fields["Channel"]
    assert f"/{seeded_guild.guild_id}/{seeded_guild.general_id}/{bad.id}" in fields["Message"]
    assert fields["Why"] == f"Negative {flag.p_negative:.2f}" and flag.reasons[0].head == "sentiment"
    assert fields["Sentiment"] == f"p_negative {flag.p_negative:.2f}"
    assert button_ids(post) == [f"moodbot:flag:{a}:{flag.id}:open" for a in ("dismiss", "confirm", "delete")]
    assert pings_nobody(post), post.data
    assert len(store.flags(seeded_guild.guild_id)[0]) == 1  # the positive message was not flagged
    assert TOKEN not in caplog.text


async def test_replayed_message_is_flagged_once(fake_discord, seeded_guild, configure, open_store, start_bot) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot() as service:
        bad = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        fake_discord.gateway.dispatch("MESSAGE_CREATE", bad.data)  # e.g. a resumed session replays it
        await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.member_id, "this is the worst patch ever, horrible"
        )
        await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 2)
        stats = await handled(service.bot, 3)  # the replay is admitted like any message: its handler has finished
    assert (stats.admitted, stats.handled, stats.failed) == (3, 3, 0)
    assert len(open_store().flags(seeded_guild.guild_id)[0]) == 2
    assert len(fake_discord.bot_messages_in(seeded_guild.mod_log_id)) == 2


async def test_opted_out_member_is_ignored(
    fake_discord, seeded_guild, configure, open_store, start_bot, shipped_classifier
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    secret = "I absolutely hate this awful garbage update, opted out edition"
    async with start_bot() as service:
        interaction = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "privacy", subcommand="optout"
        )
        assert (await interaction.response(WAIT)).ephemeral
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, secret)
        await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.moderator_id, NEGATIVE_MESSAGE
        )  # a sentinel after it
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        stats = await handled(service.bot, 2)  # the opted-out member's message too: it was checked and dropped
        assert (stats.admitted, stats.handled, stats.failed) == (2, 2, 0)
        status = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "privacy", subcommand="status"
        )
        assert "opted out" in (await status.response(WAIT)).content
    [flag] = open_store().flags(seeded_guild.guild_id)[0]
    assert flag.author_id == seeded_guild.moderator_id and NEGATIVE_MESSAGE in post.embeds[0]["description"]
    assert shipped_classifier.cache.get_many([prepare_text(secret)]) == [None]  # never classified, never cached


async def test_disabled_channel_exempt_role_and_auto_flag_off(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    with open_store() as store:
        store.set_channel(seeded_guild.guild_id, seeded_guild.random_id, "disabled", True)
        store.set_exempt_role(seeded_guild.guild_id, seeded_guild.moderator_role_id, True)
    async with start_bot() as service:
        await fake_discord.send_message(seeded_guild.random_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.moderator_id, NEGATIVE_MESSAGE)
        await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.member_id, "worst server ever, I hate everyone here"
        )
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        stats = await handled(service.bot, 3)  # the disabled channel's and the exempt role's messages too
        assert (stats.admitted, stats.handled, stats.failed) == (3, 3, 0)
        assert len(fake_discord.bot_messages_in(seeded_guild.mod_log_id)) == 1
    [flag] = open_store().flags(seeded_guild.guild_id)[0]
    assert (flag.author_id, flag.channel_id) == (seeded_guild.member_id, seeded_guild.general_id)
    configure(auto_flag=0)
    async with start_bot() as service:
        await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.member_id, "this is garbage and I am furious"
        )
        stats = await handled(service.bot, 1)
    assert (stats.admitted, stats.handled, stats.failed) == (1, 1, 0)
    assert len(open_store().flags(seeded_guild.guild_id)[0]) == 1
    assert len(fake_discord.bot_messages_in(seeded_guild.mod_log_id)) == 1  # the card of the first run only


async def test_review_buttons_check_permissions_and_record(
    fake_discord, seeded_guild, settings, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot():
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        confirm = review_button(post, "confirm")
        flag_id = int(CARD_CUSTOM_ID.fullmatch(confirm)["flag_id"])

        refused = await fake_discord.click_button(
            seeded_guild.guild_id, seeded_guild.mod_log_id, seeded_guild.member_id, post.id, confirm
        )
        answer = await refused.response(WAIT)
        assert answer.ephemeral and "Manage Messages" in answer.content
        store = open_store()
        assert store.flag(flag_id).status is FlagStatus.OPEN and store.reviews(flag_id) == []

        clicked = await click_review(fake_discord, seeded_guild, post, "confirm")
        assert (await clicked.response(WAIT)).type == 7  # the mod-log message itself is updated
    assert store.flag(flag_id).status is FlagStatus.CONFIRMED
    [review] = store.reviews(flag_id)
    assert (review.moderator_id, review.action, review.old_status) == (
        seeded_guild.moderator_id,
        ReviewAction.CONFIRM,
        FlagStatus.OPEN,
    )
    with sqlite3.connect(settings.database_path) as raw:
        namespace, = raw.execute("SELECT namespace FROM flags").fetchone()
        feedback_row = raw.execute("SELECT * FROM feedback").fetchone()
    raw.close()
    vectors, labels = store.feedback_examples(namespace)
    assert labels.tolist() == [0] and vectors.shape[0] == 1 and np.isfinite(vectors).all() and np.abs(vectors).sum() > 0
    assert NEGATIVE_MESSAGE not in str(feedback_row)  # a vector, never the text
    edited = fake_discord.message(post.id)
    assert "confirmed" in edited.embeds[0]["title"] and str(seeded_guild.moderator_id) in str(
        edited.embeds[0]["fields"]
    )


async def test_two_clicks_on_one_card_at_the_same_moment_record_one_review(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot():
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        confirm, dismiss = (review_button(post, name) for name in ("confirm", "dismiss"))
        guild, channel, moderator = seeded_guild.guild_id, seeded_guild.mod_log_id, seeded_guild.moderator_id
        clicks = await asyncio.gather(
            *(fake_discord.click_button(guild, channel, moderator, post.id, button) for button in (confirm, dismiss))
        )
        answers = [await click.response(WAIT) for click in clicks]
        assert [answer.type for answer in answers] == [7, 7]  # both cards show the one recorded decision
        await fake_discord.wait_until(lambda: any(click.followups for click in clicks), WAIT)
        [note] = [message for click in clicks for message in click.followups]  # only the click that lost hears of it
    [review] = open_store().reviews(int(CARD_CUSTOM_ID.fullmatch(confirm)["flag_id"]))
    assert note.ephemeral and f"This flag was already {review.new_status.value} by <@{moderator}>" in note.content
    assert fake_discord.message(post.id).embeds[0]["title"].endswith(review.new_status.value)


async def test_delete_button_deletes_the_message(
    fake_discord, seeded_guild, settings, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot():
        bad = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        clicked = await click_review(fake_discord, seeded_guild, post, "delete")
        await clicked.response(WAIT)
    assert fake_discord.message(bad.id).deleted
    assert open_store().flags(seeded_guild.guild_id)[0][0].status is FlagStatus.DELETED
    with sqlite3.connect(settings.database_path) as raw:
        assert raw.execute("SELECT label FROM feedback").fetchall() == [(NEGATIVE,)]  # delete: negative
    raw.close()


async def test_dismiss_stores_the_message_as_neutral(
    fake_discord, seeded_guild, settings, configure, open_store, start_bot
) -> None:
    """A dismissed flag was a false flag, almost always ordinary text: its feedback label is neutral."""
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot():
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        clicked = await click_review(fake_discord, seeded_guild, post, "dismiss")
        assert (await clicked.response(WAIT)).type == 7
    store = open_store()
    [flag] = store.flags(seeded_guild.guild_id)[0]
    assert flag.status is FlagStatus.DISMISSED
    with sqlite3.connect(settings.database_path) as raw:
        [(label, namespace)] = raw.execute("SELECT label, namespace FROM feedback").fetchall()
    raw.close()
    assert label == NEUTRAL == LABEL_NEUTRAL
    vectors, labels = store.feedback_examples(namespace)
    assert labels.tolist() == [NEUTRAL] and vectors.shape[0] == 1


async def test_buttons_work_after_restart_and_unposted_flags_are_posted(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot():
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
    with open_store() as store:  # a flag written just before a crash, never posted
        crashed = store.add_flag(
            guild_id=seeded_guild.guild_id,
            channel_id=seeded_guild.general_id,
            message_id=424242,
            author_id=seeded_guild.member_id,
            p_negative=0.97,
            text="stored before the crash",
            vector=np.ones(384, np.float32),
            namespace="ns",
        )
    async with start_bot():  # a new client, worker and store on the same files
        clicked = await click_review(fake_discord, seeded_guild, post, "dismiss")
        assert (await clicked.response(WAIT)).type == 7
        posts = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 2)
    store = open_store()
    assert store.flags(seeded_guild.guild_id, FlagStatus.DISMISSED)[1] == 1
    assert "stored before the crash" in posts[1].embeds[0]["description"]
    assert store.flag(crashed.id).modlog_message_id == posts[1].id


async def test_a_card_posted_before_a_crash_is_found_behind_hundreds_of_newer_ones(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    """A post that timed out may still have reached Discord; a burst then posts many cards after it. The re-poster
    reads the mod-log back to the flag's time, not just the latest cards, so it records that card instead of
    posting a second one."""
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    with open_store() as store:
        flag = store.add_flag(
            guild_id=seeded_guild.guild_id, channel_id=seeded_guild.general_id, message_id=515151,
            author_id=seeded_guild.member_id, p_negative=0.97, text="posted, then the bot crashed",
            vector=np.ones(384, np.float32), namespace="ns",
        )
    button = {"type": 2, "style": 4, "label": "Dismiss", "custom_id": f"moodbot:flag:dismiss:{flag.id}"}
    card = await fake_discord.create_message(
        seeded_guild.mod_log_id, fake_discord.bot_user.id,
        {"content": "", "components": [{"type": 1, "components": [button]}]},
    )
    for index in range(250):  # the burst's later cards (of other flags)
        await fake_discord.create_message(seeded_guild.mod_log_id, fake_discord.bot_user.id, {"content": f"{index}"})
    store = open_store()
    async with start_bot():
        await poll_until(lambda: store.flag(flag.id).modlog_message_id is not None, WAIT, interval=0.2)
    assert store.flag(flag.id).modlog_message_id == card.id
    assert len(fake_discord.bot_messages_in(seeded_guild.mod_log_id)) == 251  # nothing posted again


async def test_flagged_lists_and_pages_for_moderators_only(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    with open_store() as store:
        for message_id in range(1, 8):
            store.add_flag(
                guild_id=seeded_guild.guild_id,
                channel_id=seeded_guild.general_id,
                message_id=message_id,
                author_id=seeded_guild.member_id,
                p_negative=0.95,
                text=f"bad message {message_id}",
                vector=np.ones(4, np.float32),
                namespace="ns",
            )
    async with start_bot():
        refused = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "flagged"
        )
        answer = await refused.response(WAIT)
        assert answer.ephemeral and "Manage Messages" in answer.content and not answer.data.get("embeds")

        listing = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.moderator_id, "flagged", {"status": "open"}
        )
        page = await listing.response(WAIT)
        assert page.ephemeral and page.data["embeds"][0]["title"] == "Open flags (7)"
        assert "bad message 7" in str(page.data["embeds"][0]) and "bad message 2" not in str(page.data["embeds"][0])
        original = await listing.wait_original(timeout=WAIT)
        next_id = button_ids(original)[1]
        clicked = await fake_discord.click_button(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.moderator_id, original.id, next_id
        )
        await clicked.response(WAIT)
        second = await listing.wait_original(lambda m: "Page 2 of 2" in str(m.embeds), timeout=WAIT)
        assert "bad message 2" in str(second.embeds[0])
