"""The default paths end to end: the real bot with mpnet for English and multilingual-e5-small for the rest, against
the fake Discord server. A non-English insult reaches the mod-log, read by the multilingual path; a guild's language
pin overrides the gate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from classifier.config import ClassifierConfig
from classifier.inference.router import Paths
from tests.support.bot import mod_log_posts
from tests.support.helpers import WAIT, poll_until

pytestmark = pytest.mark.timeout(300)

RUSSIAN_INSULT = "ты тупой идиот, заткнись уже и вали с этого сервера"
SPANISH_QUESTION = "¿alguien sabe a qué hora empieza el torneo del sábado?"


@pytest.fixture(scope="module")
def default_paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    paths = Paths.load(ClassifierConfig(cache_dir=tmp_path_factory.mktemp("cache"), device="cpu"))
    paths.warm_up()
    yield paths
    paths.close()


async def test_a_non_english_insult_is_flagged_by_the_multilingual_path(
    fake_discord, seeded_guild, configure, open_store, start_bot, default_paths: Paths
) -> None:
    configure(modlog_channel_id=seeded_guild.mod_log_id)
    async with start_bot(model=default_paths) as service:
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, SPANISH_QUESTION)
        insult = await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, RUSSIAN_INSULT)
        [card] = await mod_log_posts(fake_discord, seeded_guild.mod_log_id, 1)
        stats = service.bot.admission.stats
        await poll_until(lambda: stats.handled >= 2, WAIT, "both messages to be handled")
    [flag] = open_store().flags(seeded_guild.guild_id)[0]  # the question is not flagged
    assert flag.message_id == insult.id and RUSSIAN_INSULT in card.embeds[0]["description"]
    e5 = default_paths.classifiers["e5"].encoder.cache_namespace
    assert default_paths.classifiers["e5"].cache.get_many([RUSSIAN_INSULT])[0] is not None  # embedded by e5 ...
    assert default_paths.classifiers["mpnet"].cache.get_many([RUSSIAN_INSULT])[0] is None  # ... and only by e5
    assert e5 != default_paths.classifiers["mpnet"].encoder.cache_namespace


async def test_a_language_pin_overrides_the_gate(
    fake_discord, seeded_guild, configure, start_bot, default_paths: Paths
) -> None:
    """A guild pinned to English has its Spanish message read by mpnet; unpinned, the gate sends it to e5."""
    pinned_text = "el servidor está tranquilo esta semana, nos vemos el viernes"
    configure(language="english")
    async with start_bot(model=default_paths) as service:
        await fake_discord.send_message(seeded_guild.general_id, seeded_guild.member_id, pinned_text)
        stats = service.bot.admission.stats
        await poll_until(lambda: stats.handled >= 1, WAIT, "the message to be handled")
        [detected] = await service.bot.worker.classify_many([SPANISH_QUESTION])
    assert default_paths.classifiers["mpnet"].cache.get_many([pinned_text])[0] is not None
    assert default_paths.classifiers["e5"].cache.get_many([pinned_text])[0] is None
    assert (detected.path, detected.language) == ("e5", "es")
