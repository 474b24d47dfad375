"""The mod-log card of a flag: what a moderator reads, with the flagged text quoted and escaped."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import discord

from bot.cogs.moderation import flag_embed
from bot.store import Flag, FlagStatus, excerpt

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
