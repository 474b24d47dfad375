"""The mod-log card of a flag: what a moderator reads, with the flagged text quoted and escaped."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import discord

from bot.cogs.moderation.cards import flag_embed
from bot.cogs.moderation.review import CARD_CUSTOM_ID, FlagButton, flag_view
from bot.store import Flag, FlaggedAs, FlagStatus, ReviewAction, excerpt
from classifier.flag_policy import Reason

CREATED = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
FLAG = Flag(id=7, guild_id=1, channel_id=2, message_id=3, author_id=4, p_negative=0.934, excerpt="this is awful",
            created_at=CREATED, status=FlagStatus.OPEN, modlog_channel_id=None, modlog_message_id=None)
#: Discord's limits on an embed's description and on all of an embed's text together.
DESCRIPTION_LIMIT, EMBED_LIMIT = 4096, 6000


def test_open_flag_card() -> None:
    embed = flag_embed(FLAG)
    assert embed.title == "Flagged message · open" and embed.colour == discord.Colour.orange()
    assert embed.description == ">>> this is awful"
    assert embed.timestamp == CREATED and embed.footer.text == "Flag #7"
    assert [(f.name, f.value) for f in embed.fields] == [
        ("Author", "<@4> (`4`)"),
        ("Channel", "<#2>"),
        ("Why", "Negative 0.93"),  # a flag from before reasons: sentiment's negative at its p_negative
        ("Sentiment", "p_negative 0.93"),
        ("Message", "[Jump to message](https://discord.com/channels/1/2/3)"),
    ]


def test_reviewed_card_names_the_moderator() -> None:
    embed = flag_embed(replace(FLAG, status=FlagStatus.CONFIRMED), reviewer_id=9)
    assert embed.title == "Flagged message · confirmed" and embed.colour == discord.Colour.red()
    reviewed = embed.fields[-1]
    assert reviewed.name == "Reviewed"
    assert reviewed.value.startswith("Confirmed by <@9> <t:") and reviewed.value.endswith(":R>")
    dismissed = flag_embed(replace(FLAG, status=FlagStatus.DISMISSED), reviewer_id=9)
    assert dismissed.colour == discord.Colour.green() and dismissed.fields[-1].value.startswith("Dismissed by <@9>")


def test_flagged_text_is_quoted_and_escaped_never_formatted() -> None:
    hostile = "**bold** _x_ `code` ||spoiler|| @everyone <@5> <@&6>"
    embed = flag_embed(replace(FLAG, excerpt=hostile))
    assert embed.description == r">>> \*\*bold\*\* \_x\_ \`code\` \|\|spoiler\|\| @everyone <@5> <@&6>"
    # The mentions stay inside the embed's description (embeds never ping); the card adds only the author's.
    others = str([embed.title, embed.footer.text, [f.value for f in embed.fields]])
    assert "@everyone" not in others and "<@5>" not in others and "<@&6>" not in others


def test_longest_excerpt_fits_discord_limits_even_fully_escaped() -> None:
    worst = excerpt("*" * 10_000)  # every character doubles when escaped
    embed = flag_embed(replace(FLAG, excerpt=worst))
    assert worst.endswith("…") and len(embed.description) <= DESCRIPTION_LIMIT and len(embed) <= EMBED_LIMIT


EDITED_AT = dt.datetime(2024, 1, 2, 4, 0, 0, tzinfo=dt.UTC)
#: FLAG once its message was edited into something harmless.
HARMLESS_EDIT = replace(
    FLAG, excerpt="sorry, my bad", p_negative=0.12, reasons=(Reason("sentiment", "negative", 0.12),),
    edited_at=EDITED_AT, first=FlaggedAs("this is awful", 0.934, FLAG.reasons), below_threshold=True, revision=1,
)
FIELD_LIMIT = 1024


def fields(embed: discord.Embed) -> dict[str, str]:
    return {field.name: field.value for field in embed.fields}


def delete_disabled(view: discord.ui.View) -> bool:
    [delete] = [item for item in view.children if isinstance(item, FlagButton) and item.action is ReviewAction.DELETE]
    return delete.item.disabled


def test_an_edited_card_shows_the_new_text_and_what_it_was_first_flagged_as() -> None:
    embed = flag_embed(HARMLESS_EDIT)
    assert embed.title == "Flagged message · edited · open" and embed.description == ">>> sorry, my bad"
    shown = fields(embed)
    assert shown["Why"] == "Negative 0.93" and shown["Sentiment"] == "p_negative 0.12 (was 0.93)"
    assert shown["Edited"] == f"<t:{int(EDITED_AT.timestamp())}:R>; now below the flag threshold: Negative 0.12"
    assert shown["Before the edit"] == ">>> this is awful"
    still = flag_embed(replace(HARMLESS_EDIT, below_threshold=False, reasons=(Reason("sentiment", "negative", 0.9),)))
    assert fields(still)["Edited"].endswith("; now Negative 0.90")
    raised_by_edit = flag_embed(replace(FLAG, edited_at=EDITED_AT))
    assert fields(raised_by_edit)["Edited"].endswith("; flagged as edited") and "Before the edit" not in fields(
        raised_by_edit
    )


async def test_a_deleted_message_is_marked_and_its_delete_button_disabled() -> None:
    deleted = replace(FLAG, deleted_at=EDITED_AT)
    embed = flag_embed(deleted)
    assert embed.title == "Flagged message · deleted · open"
    assert fields(embed)["Message"] == f"Deleted <t:{int(EDITED_AT.timestamp())}:R> (by whom unknown)"
    assert delete_disabled(flag_view(deleted)) and not delete_disabled(flag_view(FLAG))
    by_moderator = flag_embed(replace(deleted, status=FlagStatus.DELETED), reviewer_id=9, reviewed_at=EDITED_AT)
    assert fields(by_moderator)["Message"] == f"Deleted <t:{int(EDITED_AT.timestamp())}:R>"
    assert fields(by_moderator)["Reviewed"] == f"Deleted by <@9> <t:{int(EDITED_AT.timestamp())}:R>"


def test_an_edited_card_of_the_longest_texts_fits_discord_limits() -> None:
    worst = excerpt("*" * 10_000)
    embed = flag_embed(replace(HARMLESS_EDIT, excerpt=worst, first=FlaggedAs(worst, 0.9, FLAG.reasons)))
    assert len(embed.description) <= DESCRIPTION_LIMIT and len(embed) <= EMBED_LIMIT
    assert all(len(field.value) <= FIELD_LIMIT for field in embed.fields)


def test_buttons_carry_the_status_their_card_shows() -> None:
    """A click decides on what its moderator saw: the status rides in the ``custom_id``, not in the card's title."""
    for status in FlagStatus:
        ids = [item.item.custom_id for item in flag_view(replace(FLAG, status=status)).children]
        assert ids == [f"moodbot:flag:{action}:7:{status.value}" for action in ("dismiss", "confirm", "delete")]
        assert {CARD_CUSTOM_ID.fullmatch(custom_id)["seen"] for custom_id in ids} == {status.value}


def test_cards_posted_before_the_status_was_added_still_match() -> None:
    match = CARD_CUSTOM_ID.fullmatch("moodbot:flag:confirm:12")
    assert match is not None and (match["action"], match["flag_id"], match["seen"]) == ("confirm", "12", None)
    assert CARD_CUSTOM_ID.fullmatch("moodbot:flag:confirm:12:maybe") is None
