"""``/mood``'s presentation: the mood scale, the trend in words and the summary embed (real discord.py channel, no
client)."""

from __future__ import annotations

import datetime as dt

import discord
import numpy as np
import pytest

from bot.cogs.mood import STEADY_WITHIN, Scored, mood_score, summary_embed, trend
from tests.support.bot import parsed_guild
from tests.support.fake_discord import FakeDiscordServer, seed_default
from tests.support.helpers import sentiment_prediction

START = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture
def general() -> discord.TextChannel:
    """#general of the default seed, as discord.py parses it."""
    server = FakeDiscordServer()
    seed = seed_default(server)
    channel = parsed_guild(server, seed.guild_id).get_channel(seed.general_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


def scored(*probabilities: tuple[float, float, float]) -> list[Scored]:
    """One message a minute from ``START``, oldest first, with (negative, neutral, positive) probabilities, labelled
    as the pipeline labels them."""
    made = [sentiment_prediction(*row) for row in probabilities]
    return [
        Scored(START + dt.timedelta(minutes=i), f"https://discord.com/channels/1/2/{100 + i}", prediction)
        for i, prediction in enumerate(made)
    ]


def binary(*p_positive: float) -> list[Scored]:
    """Messages scored by a head without a neutral class."""
    return scored(*((1 - p, 0.0, p) for p in p_positive))


def test_mood_score_is_positive_minus_negative() -> None:
    [positive, neutral, negative] = scored((0.0, 0.1, 0.9), (0.1, 0.8, 0.1), (0.7, 0.2, 0.1))
    assert [round(mood_score(s.prediction), 6) for s in (positive, neutral, negative)] == [0.9, 0.0, -0.6]
    assert [s.prediction.label for s in (positive, neutral, negative)] == ["positive", "neutral", "negative"]


@pytest.mark.parametrize("scores", [[], [0.9], [0.1, 0.9, 0.1]])
def test_trend_needs_four_messages(scores: list[float]) -> None:
    assert trend(scores) == "not enough messages"


def test_trend_in_words() -> None:
    assert trend([0.9, 0.9, 0.1, 0.1]) == "worsening (-0.80 from the first half to the second)"
    assert trend([0.1, 0.1, 0.9, 0.9]) == "improving (+0.80 from the first half to the second)"
    assert trend([0.5, 0.6, 0.6, 0.5]) == "steady (+0.00)"
    assert trend([1.0, 1.0, 0.0, 0.0, 0.0]) == "worsening (-1.00 from the first half to the second)"  # odd: 2 vs 3


def test_trend_steady_boundary() -> None:
    assert STEADY_WITHIN == 0.1
    assert trend([0.0, 0.0, 0.09, 0.09]) == "steady (+0.09)"
    assert trend([0.0, 0.0, 0.1, 0.1]) == "improving (+0.10 from the first half to the second)"  # not strictly within
    assert trend([0.1, 0.1, 0.0, 0.0]) == "worsening (-0.10 from the first half to the second)"


def test_summary_embed(general: discord.TextChannel) -> None:
    embed = summary_embed(general, binary(0.9, 0.8, 0.2, 0.1), skipped=2)
    assert embed.title == "Mood of #general" and embed.image.url == "attachment://mood.png"
    first = int(START.timestamp())
    assert embed.description == (f"**4** messages from <t:{first}> to <t:{first + 180}> "
                                 "(2 skipped: bots, opted-out members, no text)")
    fields = {f.name: f.value for f in embed.fields}
    assert fields == {
        "Positive": "50%",
        "Neutral": "0%",
        "Negative": "50%",
        "Average mood (positive − negative)": "`█████░░░░░` +0.00",
        "Trend": "worsening (-1.40 from the first half to the second)",
        "Most negative": "90% negative · [jump](https://discord.com/channels/1/2/103)\n"
                         "80% negative · [jump](https://discord.com/channels/1/2/102)",
    }


def test_summary_embed_with_neutral_messages(general: discord.TextChannel) -> None:
    calm = scored((0.05, 0.9, 0.05), (0.1, 0.8, 0.1), (0.0, 0.2, 0.8), (0.92, 0.06, 0.02), (0.2, 0.7, 0.1))
    fields = {f.name: f.value for f in summary_embed(general, calm, skipped=0).fields}
    assert (fields["Positive"], fields["Neutral"], fields["Negative"]) == ("20%", "60%", "20%")
    assert fields["Average mood (positive − negative)"] == "`█████░░░░░` -0.04"
    assert fields["Most negative"] == "92% negative · [jump](https://discord.com/channels/1/2/103)"  # neutral ones not


def test_summary_embed_lists_at_most_three_negatives_and_none_when_all_positive(general: discord.TextChannel) -> None:
    gloomy = {f.name: f.value for f in summary_embed(general, binary(0.3, 0.01, 0.2, 0.05, 0.4), skipped=0).fields}
    assert gloomy["Most negative"].splitlines() == [
        "99% negative · [jump](https://discord.com/channels/1/2/101)",
        "95% negative · [jump](https://discord.com/channels/1/2/103)",
        "80% negative · [jump](https://discord.com/channels/1/2/102)",
    ]
    assert (gloomy["Positive"], gloomy["Negative"]) == ("0%", "100%")
    sunny = {f.name: f.value for f in summary_embed(general, binary(0.9), skipped=0).fields}
    assert sunny["Most negative"] == "none" and sunny["Trend"] == "not enough messages"
    assert (sunny["Positive"], sunny["Negative"]) == ("100%", "0%")


def test_summary_embed_mentions_nobody(general: discord.TextChannel) -> None:
    """The summary carries scores and links, never message text, so nothing in it can read as a mention."""
    rendered = str(summary_embed(general, binary(*np.linspace(0.0, 1.0, 50)), skipped=7).to_dict())
    assert "<@" not in rendered and "@everyone" not in rendered and "@here" not in rendered
