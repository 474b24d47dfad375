"""Slash commands, the context menu, live mode and mentions, end to end through the fake Discord server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.cogs.live import UNSURE_BELOW
from bot.store import FlagStatus
from classifier.evaluation.data import load_tsv
from classifier.heads.sentiment import NEGATIVE, POSITIVE
from classifier.heads.training import FeatureSet, TrainingOptions, train_head
from classifier.inference.classifier import Classifier, by_task
from classifier.text import prepare_text
from tests.support.bot import THRESHOLD, mod_log_posts
from tests.support.helpers import (
    CHAT_SETS,
    NEGATIVE_MESSAGE,
    NEGATIVE_TEXTS,
    POSITIVE_MESSAGE,
    POSITIVE_TEXTS,
    WAIT,
    pings_nobody,
)

pytestmark = pytest.mark.timeout(90)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: In the neutral chat set the three-way test head is trained on: that head calls it neutral.
NEUTRAL_MESSAGE = "the meeting notes are in the drive"


@pytest.fixture(scope="module")
def three_way_classifier(
    shipped_classifier: Classifier, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Classifier]:
    """The bundled encoder with a small three-way head trained here on its real features (the shipped head may
    still be a binary one): the sample texts as a binary set, the repo's chat sets as a three-way set."""
    from cache import EmbeddingCache

    encoder = shipped_classifier.encoder
    chats = [load_tsv(CHAT_SETS / f"{name}.tsv", three_way=True) for name in ("neutral_chat", "negative_chat")]
    polar = np.array([POSITIVE] * len(POSITIVE_TEXTS) + [NEGATIVE] * len(NEGATIVE_TEXTS))
    sets = [
        FeatureSet("samples", encoder.embed(POSITIVE_TEXTS + NEGATIVE_TEXTS), polar),
        FeatureSet("chat", encoder.embed([prepare_text(t) for chat in chats for t in chat.texts]),
                   np.concatenate([chat.labels for chat in chats]), three_way=True),
    ]
    head = train_head(encoder.identity, sets, None, TrainingOptions(c_grid=(0.01, 0.1), folds=3)).head
    cache_dir: Path = tmp_path_factory.mktemp("three-way-cache")
    classifier = Classifier(encoder, by_task(head), EmbeddingCache(cache_dir, encoder.cache_namespace, dim=encoder.dim))
    [neutral] = classifier.classify([NEUTRAL_MESSAGE])
    assert neutral.label == "neutral" and neutral.confidence >= UNSURE_BELOW, neutral  # the premise of the tests
    yield classifier
    classifier.close()


async def test_sentiment_answers_privately_with_a_bar(fake_discord, seeded_guild, start_bot) -> None:
    async with start_bot():
        first = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "sentiment",
            {"text": POSITIVE_MESSAGE},
        )
        answer = await first.response(WAIT)
        again = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "sentiment",
            {"text": POSITIVE_MESSAGE},
        )
        repeated = await again.response(WAIT)
        negative = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "sentiment",
            {"text": NEGATIVE_MESSAGE},
        )
        bad = await negative.response(WAIT)
    assert answer.type == 4 and answer.ephemeral
    assert answer.content.startswith("**Positive**") and "█" in answer.content and "% confidence" in answer.content
    assert all(f" {name} " in answer.content for name in ("negative", "neutral", "positive"))  # one bar per class
    assert "cached" in repeated.content  # the second time the vector comes from the cache
    assert bad.content.startswith("**Negative**")
    assert fake_discord.bot_messages_in(seeded_guild.general_id) == []  # nothing public


async def test_sentiment_has_a_per_user_cooldown(fake_discord, seeded_guild, start_bot) -> None:
    async with start_bot():
        answers = []
        for number in range(6):
            interaction = await fake_discord.send_slash_command(
                seeded_guild.guild_id,
                seeded_guild.general_id,
                seeded_guild.member_id,
                "sentiment",
                {"text": f"message number {number}"},
            )
            answers.append(await interaction.response(WAIT))
        other = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.moderator_id, "sentiment", {"text": "hello"}
        )
        other_answer = await other.response(WAIT)
    assert all(a.ephemeral for a in answers)
    assert "Slow down" in answers[-1].content and all("Slow down" not in a.content for a in answers[:-1])
    assert "Slow down" not in other_answer.content


async def test_check_sentiment_context_menu(fake_discord, seeded_guild, start_bot) -> None:
    async with start_bot():
        target = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        interaction = await fake_discord.send_message_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.moderator_id, "Check sentiment", target.id
        )
        answer = await interaction.response(WAIT)
    assert answer.ephemeral and answer.content.startswith("**Negative**")
    assert f"/{seeded_guild.general_id}/{target.id}" in answer.content


async def test_mood_reads_history_and_posts_a_chart(fake_discord, seeded_guild, start_bot, open_store) -> None:
    texts = [
        POSITIVE_MESSAGE,
        "what a great day",
        "thanks everyone, awesome work",
        NEGATIVE_MESSAGE,
        "this is garbage",
        "the lag is unbearable",
        "I really enjoyed the event",
        "worst patch ever",
    ]
    for text in texts:
        await fake_discord.send_message(seeded_guild.random_id, seeded_guild.member_id, text)
    await fake_discord.send_message(seeded_guild.random_id, seeded_guild.moderator_id, "   ")  # no text: skipped
    with open_store() as store:
        store.set_opt_out(seeded_guild.moderator_id, True)
    await fake_discord.send_message(
        seeded_guild.random_id, seeded_guild.moderator_id, "opted out members are not counted"
    )
    channel = fake_discord.channels[seeded_guild.random_id]
    async with start_bot():
        interaction = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "mood",
            {"channel": channel, "messages": 50},
        )
        assert (await interaction.response(WAIT)).type == 5  # deferred while it reads and classifies
        summary = await interaction.followup(0, WAIT)
    assert summary.ephemeral
    history = fake_discord.requests_matching("GET", f"/channels/{seeded_guild.random_id}/messages")
    assert history and history[0].query.get("limit") == "50"
    [png] = summary.files
    assert png.filename == "mood.png" and png.data.startswith(PNG_MAGIC) and len(png.data) > 5000
    [embed] = summary.embeds
    assert embed["title"] == "Mood of #random" and embed["image"]["url"] == "attachment://mood.png"
    assert "**8** messages" in embed["description"] and "2 skipped" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Positive"] == "50%" and fields["Negative"] == "50%" and "Neutral" in fields
    assert fields["Trend"].startswith("worsening")
    assert fields["Most negative"].count("[jump](") == 3
    assert pings_nobody(summary), summary.data


async def test_mood_enforces_caps_and_reports_empty_windows(fake_discord, seeded_guild, start_bot) -> None:
    async with start_bot():
        too_many = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "mood", {"messages": 5000}
        )
        await too_many.response(WAIT)
        capped = await too_many.followup(0, WAIT)
        empty = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "mood", {"hours": 100_000}
        )
        await empty.response(WAIT)
        nothing = await empty.followup(0, WAIT)
    assert "No messages" in capped.content and "No messages" in nothing.content
    limits = [
        int(r.query["limit"])
        for r in fake_discord.requests_matching("GET", f"/channels/{seeded_guild.general_id}/messages")
    ]
    assert limits and max(limits) <= 100  # paged, and at most 1000 in all
    assert sum(limits[: len(limits) // 2]) <= 1000


async def test_live_mode_reacts_and_classifies_once(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    with open_store() as store:
        store.set_channel(seeded_guild.guild_id, seeded_guild.general_id, "live", True)
    async with start_bot() as service:
        happy = await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.member_id, "I love this server so much, thank you all"
        )
        angry = await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.member_id, "this update is terrible and awful, I hate it"
        )
        await fake_discord.wait_until(lambda: happy.reactions and angry.reactions, WAIT)
        await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        stats = service.bot.worker.stats
        assert (
            stats.computed + stats.memory_hits + stats.disk_hits == 2
        )  # one model pass feeds both live mode and flagging
    assert [r["emoji"]["name"] for r in happy.reactions] == ["😊"]
    assert [r["emoji"]["name"] for r in angry.reactions] == ["😠"]
    quiet = await fake_discord.send_message(seeded_guild.random_id, seeded_guild.member_id, "I love this server")
    assert quiet.reactions == []


async def test_config_changes_persist_across_restart(fake_discord, seeded_guild, open_store, start_bot) -> None:
    admin = seeded_guild.moderator_id  # the seeded moderator role has Manage Server
    mod_log = fake_discord.channels[seeded_guild.mod_log_id]
    general = fake_discord.channels[seeded_guild.general_id]
    role = fake_discord.guilds[seeded_guild.guild_id].roles[seeded_guild.moderator_role_id]
    changes = [
        ("modlog", {"channel": mod_log}), ("threshold", {"value": 0.75}), ("autoflag", {"enabled": False}),
        ("live", {"channel": general, "enabled": True}), ("disable", {"channel": mod_log, "disabled": True}),
        ("exempt", {"role": role, "exempt": True}),
    ]
    async with start_bot():
        for subcommand, options in changes:
            interaction = await fake_discord.send_slash_command(
                seeded_guild.guild_id,
                seeded_guild.general_id,
                admin,
                "moodbot",
                options,
                group="config",
                subcommand=subcommand,
            )
            answer = await interaction.response(WAIT)
            assert answer.ephemeral and answer.data.get("embeds"), (subcommand, answer.data)
    async with start_bot():
        shown = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, admin, "moodbot", group="config", subcommand="show"
        )
        answer = await shown.response(WAIT)
    fields = {f["name"]: f["value"] for f in answer.data["embeds"][0]["fields"]}
    assert fields["Mod-log channel"] == f"<#{seeded_guild.mod_log_id}>" and "0.75" in fields["Flag threshold"]
    assert fields["Auto-flagging"] == "off" and fields["Live-mode channels"] == f"<#{seeded_guild.general_id}>"
    assert (
        fields["Disabled channels"] == f"<#{seeded_guild.mod_log_id}>"
        and fields["Exempt roles"] == f"<@&{seeded_guild.moderator_role_id}>"
    )
    config = open_store().guild_config(seeded_guild.guild_id)
    assert (config.modlog_channel_id, config.flag_threshold, config.auto_flag) == (seeded_guild.mod_log_id, 0.75, False)


async def test_threshold_outside_range_is_refused(fake_discord, seeded_guild, open_store, start_bot) -> None:
    async with start_bot():
        interaction = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.moderator_id,
            "moodbot",
            {"value": 0.2},
            group="config",
            subcommand="threshold",
        )
        answer = await interaction.response(WAIT)
    assert answer.ephemeral and "between 0.5 and 1.0" in answer.content
    assert open_store().guild_config(seeded_guild.guild_id).flag_threshold == 0.9


@pytest.mark.parametrize(("name", "group", "subcommand", "options"), [
    ("moodbot", "config", "show", {}),
    ("moodbot", "config", "threshold", {"value": 0.6}),
    ("moodbot", "config", "autoflag", {"enabled": False}),
    ("moodbot", "config", "modlog", {}),
    ("flagged", None, None, {}),
])
async def test_admin_commands_refuse_members_without_permission(
    fake_discord, seeded_guild, open_store, start_bot, name, group, subcommand, options
) -> None:
    async with start_bot():
        interaction = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            name,
            options,
            group=group,
            subcommand=subcommand,
        )
        answer = await interaction.response(WAIT)
    assert answer.ephemeral and "You need the" in answer.content and not answer.data.get("embeds")
    config = open_store().guild_config(seeded_guild.guild_id)
    assert (config.flag_threshold, config.auto_flag, config.modlog_channel_id) == (0.9, True, None)


async def test_nothing_the_bot_posts_can_ping(fake_discord, seeded_guild, configure, open_store, start_bot) -> None:
    role = fake_discord.add_role(seeded_guild.guild_id, "everyone-pingable", mentionable=True)
    hostile = (
        f"@everyone @here <@&{role.id}> <@{seeded_guild.moderator_id}> this is the worst patch ever, horrible garbage"
    )
    configure(
        modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=0.6
    )  # this test is about mentions, not accuracy
    with open_store() as store:
        store.set_channel(seeded_guild.guild_id, seeded_guild.general_id, "live", True)
    interactions = []
    async with start_bot():
        message = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, hostile)
        [post] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        interactions.append(
            await fake_discord.send_slash_command(
                seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "sentiment", {"text": hostile}
            )
        )
        interactions.append(
            await fake_discord.send_message_command(
                seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "Check sentiment", message.id
            )
        )
        interactions.append(
            await fake_discord.send_slash_command(
                seeded_guild.guild_id,
                seeded_guild.general_id,
                seeded_guild.moderator_id,
                "moodbot",
                {"role": fake_discord.guilds[seeded_guild.guild_id].roles[role.id], "exempt": True},
                group="config",
                subcommand="exempt",
            )
        )
        interactions.append(
            await fake_discord.send_slash_command(
                seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "mood"
            )
        )
        answers = [await i.response(WAIT) for i in interactions]
        summary = await interactions[-1].followup(0, WAIT)
        await fake_discord.wait_until(lambda: message.reactions, WAIT)
    assert pings_nobody(post), post.data
    assert pings_nobody(summary), summary.data
    for answer in answers:
        if answer.type != 5:  # a deferral carries no content
            assert pings_nobody(answer.data), answer.data
    for channel_id in (seeded_guild.general_id, seeded_guild.random_id, seeded_guild.mod_log_id):
        for sent in fake_discord.bot_messages_in(channel_id):
            assert pings_nobody(sent), sent.data
    assert open_store().flags(seeded_guild.guild_id, FlagStatus.OPEN)[1] == 1


async def test_neutral_everywhere_with_a_three_way_head(
    fake_discord, seeded_guild, configure, open_store, start_bot, three_way_classifier
) -> None:
    """Live mode reacts 😐 to a neutral message and does not flag it; /sentiment and the context menu say Neutral;
    /mood lists three shares, neutral included."""
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    with open_store() as store:
        store.set_channel(seeded_guild.guild_id, seeded_guild.general_id, "live", True)
    async with start_bot(model=three_way_classifier):
        calm = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEUTRAL_MESSAGE)
        angry = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        await fake_discord.wait_until(lambda: calm.reactions and angry.reactions, WAIT)
        await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        checked = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "sentiment",
            {"text": NEUTRAL_MESSAGE},
        )
        verdict = await checked.response(WAIT)
        menu = await fake_discord.send_message_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "Check sentiment", calm.id
        )
        menu_verdict = await menu.response(WAIT)
        mood = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "mood"
        )
        await mood.response(WAIT)
        summary = await mood.followup(0, WAIT)
    assert [r["emoji"]["name"] for r in calm.reactions] == ["😐"]
    assert [r["emoji"]["name"] for r in angry.reactions] == ["😠"]
    [flag] = open_store().flags(seeded_guild.guild_id)[0]
    assert flag.message_id == angry.id  # the neutral message was not flagged
    lines = verdict.content.splitlines()
    assert verdict.ephemeral and lines[0].startswith("**Neutral** · ") and len(lines) == 4
    assert [line.split()[1] for line in lines[1:]] == ["negative", "neutral", "positive"]
    assert menu_verdict.content.startswith("**Neutral** · ")
    fields = {f["name"]: f["value"] for f in summary.embeds[0]["fields"]}
    shares = ["Positive", "Neutral", "Negative"]
    assert [name for name in fields if name in shares] == shares
    assert fields["Neutral"] == "50%" and fields["Negative"] == "50%" and fields["Positive"] == "0%"
    assert pings_nobody(summary) and pings_nobody(verdict.data)
