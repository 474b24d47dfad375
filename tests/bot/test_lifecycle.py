"""Start-up, shutdown, a refused token, a refused privileged intent, and ``moodbot run`` as a real process."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import replace

import pytest

from bot.runner import _serve
from classifier.inference.router import Paths
from tests.support.bot import THRESHOLD, mod_log_posts
from tests.support.classifier import InstrumentedClassifier
from tests.support.fake_discord import FakeDiscordServer, seed_default
from tests.support.fake_discord.models import UploadedFile
from tests.support.helpers import NEGATIVE_MESSAGE, POSITIVE_MESSAGE, REPO_ROOT, TOKEN, WAIT, clean_environ

pytestmark = pytest.mark.timeout(120)
INTENT_WARNING = "Discord refused the Message Content intent"


async def test_rejected_token_exits_1_without_logging_it(settings, shipped_classifier, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeDiscordServer(token="the-only-valid-token") as server:
        code = await asyncio.wait_for(
            _serve(
                replace(settings, discord_api_base=server.api_base, discord_gateway_url=server.gateway_url),
                Paths.single(shipped_classifier),
            ),
            WAIT,
        )
    assert code == 1
    assert "rejected the token" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in "".join(str(r.exc_info) for r in caplog.records)


async def test_without_message_content_intent_commands_keep_working(
    fake_discord, seeded_guild, start_bot, caplog
) -> None:
    caplog.set_level(logging.INFO)
    fake_discord.gateway.disallowed_intents = 1 << 15  # the app was not granted Message Content: close 4014
    async with start_bot() as service:
        assert not service.bot.message_content and not service.bot.intents.message_content
        interaction = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "sentiment",
            {"text": POSITIVE_MESSAGE},
        )
        answer = await interaction.response(WAIT)
        target = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        menu = await fake_discord.send_message_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "Check sentiment", target.id
        )
        menu_answer = await menu.response(WAIT)
    assert answer.ephemeral and answer.content.startswith("**Positive**")
    assert menu_answer.content.startswith("**Negative**")  # interactions carry the resolved message's text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and INTENT_WARNING in r.getMessage()]
    assert len(warnings) == 1


async def test_messages_without_text_are_skipped_without_an_intent_warning(
    fake_discord, seeded_guild, configure, open_store, start_bot, caplog
) -> None:
    """Empty content is ordinary (joins, pins, polls, attachment-only posts): with the Message Content intent
    granted, such messages are skipped and nothing tells the owner to enable the intent."""
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    with open_store() as store:
        store.set_channel(seeded_guild.guild_id, seeded_guild.general_id, "live", True)
    caplog.set_level(logging.DEBUG)
    async with start_bot() as service:
        assert service.bot.intents.message_content
        empty = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, "")
        picture = UploadedFile("files[0]", "cat.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(64))
        attachment_only = await fake_discord.create_message(
            seeded_guild.general_id, seeded_guild.member_id, {"content": ""}, [picture]
        )
        assert attachment_only.data["attachments"] and attachment_only.data["content"] == ""
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        stats = service.bot.worker.stats
        assert stats.computed + stats.memory_hits + stats.disk_hits == 1  # only the message with text
    assert empty.reactions == [] and attachment_only.reactions == []
    assert not [r for r in caplog.records if "intent" in r.getMessage().lower() and r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_moodbot_run_serves_and_stops_on_sigterm(tmp_path) -> None:
    """``moodbot run`` with a token and the endpoint settings: connects, answers, exits 0 on SIGTERM.

    It never prints the token.
    """
    async with FakeDiscordServer(token=TOKEN) as server:
        seed = seed_default(server)
        env = clean_environ() | {
            "DISCORD_TOKEN": TOKEN, "DISCORD_API_BASE": server.api_base, "DISCORD_GATEWAY_URL": server.gateway_url,
            "MOODBOT_DATA_DIR": str(tmp_path / "var"), "MOODBOT_DEVICE": "cpu", "MOODBOT_LOG_LEVEL": "debug",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "--env-file", str(tmp_path / "absent.env"), "run",
            env=env, cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            await server.wait_until(
                lambda: server.find_command("sentiment", None) is not None and server.gateway.identify_count >= 1, 90
            )
            interaction = await server.send_slash_command(
                seed.guild_id, seed.general_id, seed.member_id, "sentiment", {"text": POSITIVE_MESSAGE}
            )
            answer = await interaction.response(WAIT)
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), WAIT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert answer.ephemeral and answer.content.startswith("**Positive**")
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    assert TOKEN.encode() not in out + err
    assert b"shutting down" in err


@pytest.mark.expected_errors("classifier.inference.worker")  # the injected fault is logged where it happens
async def test_model_failure_gets_a_clear_answer_and_the_worker_keeps_serving(
    fake_discord, seeded_guild, configure, start_bot, shipped_classifier
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    exploding = InstrumentedClassifier(
        shipped_classifier.encoder, shipped_classifier.heads, shipped_classifier.cache, fail_marker="💥"
    )
    async with start_bot(model=exploding) as service:
        failing = await fake_discord.send_slash_command(
            seeded_guild.guild_id, seeded_guild.general_id, seeded_guild.member_id, "sentiment", {"text": "💥 boom"}
        )
        failure = await failing.response(WAIT)
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, "💥 this update is awful")
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, NEGATIVE_MESSAGE)
        await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        fine = await fake_discord.send_slash_command(
            seeded_guild.guild_id,
            seeded_guild.general_id,
            seeded_guild.member_id,
            "sentiment",
            {"text": "fine and dandy"},
        )
        answer = await fine.response(WAIT)
        assert service.bot.worker.stats.failed_batches >= 1
    assert failure.ephemeral and "model failed" in failure.content
    assert answer.content.startswith("**")


async def test_stopping_lets_messages_in_flight_finish(
    fake_discord, seeded_guild, configure, open_store, start_bot
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id, flag_threshold=THRESHOLD)
    async with start_bot() as service:
        await fake_discord.send_message(
            seeded_guild.general_id, seeded_guild.member_id, "the most awful, hateful update in history, I hate it"
        )
        await fake_discord.wait_until(
            lambda: service.bot.admission.pending > 0 or fake_discord.bot_messages_in(seeded_guild.mod_log_id), WAIT
        )
    [flag] = open_store().flags(seeded_guild.guild_id)[0]  # stopped while classifying: still stored and posted
    assert flag.modlog_message_id is not None and len(fake_discord.bot_messages_in(seeded_guild.mod_log_id)) == 1
