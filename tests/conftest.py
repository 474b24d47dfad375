"""Fixtures shared by every test folder: real tokenizers, real (tiny) models, real cache directories, the CLI
in-process, and the fake Discord server. Helpers that are not fixtures live in :mod:`tests.support`.

Accuracy tests use the bundled all-MiniLM-L6-v2 and the shipped head; the rest use a tiny random-init model
(:func:`tests.support.classifier.build_tiny_model`) so that they start fast.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import discord
import pytest
import pytest_asyncio

from classifier.config import ClassifierConfig
from classifier.inference.classifier import Classifier, by_task
from tests.support.classifier import build_tiny_model
from tests.support.fake_discord import FakeDiscordServer, Seed, seed_default
from tests.support.helpers import SETTING_PREFIXES, CliResult, clean_environ, labelled_texts, write_tsv
from tests.support.postgres import PostgresServer
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-distilbert", seed=0)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model with different weights (another seed)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-distilbert-b", seed=1)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):
    from classifier.encoders.hf import Encoder

    return Encoder.load(str(tiny_model_dir), device="cpu", precision="fp32")  # exact: tests compare its vectors


@pytest.fixture(scope="session")
def other_encoder(other_model_dir: Path):
    from classifier.encoders.hf import Encoder
    from classifier.encoders.pooling import Pooling

    return Encoder.load(str(other_model_dir), pooling=Pooling.parse("mean@-1"), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rows = labelled_texts()
    write_tsv(folder / "train.tsv", rows)
    write_tsv(folder / "dev.tsv", rows[::3])
    return folder


@pytest.fixture(scope="session")
def tiny_head_path(tiny_encoder, tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A head trained for the tiny encoder (accuracy is irrelevant: the encoder is random)."""
    from classifier.evaluation.data import load_tsv
    from classifier.heads.training import FeatureSet, TrainingOptions, train_head

    train = load_tsv(tiny_data_dir / "train.tsv")
    features = FeatureSet("train", tiny_encoder.embed(train.texts), train.labels)
    result = train_head(tiny_encoder.identity, [features], features, TrainingOptions(c_grid=(0.1, 1.0), folds=2))
    path = tmp_path_factory.mktemp("heads") / "tiny-head.json"
    result.head.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_head(tiny_head_path: Path):
    from classifier.heads.logistic import LogisticHead

    return LogisticHead.load(tiny_head_path)


@pytest.fixture(scope="session")
def shipped_head():
    """The head shipped for the fast bundled encoder, MiniLM (the suite's real-model tests use it for speed)."""
    from classifier.encoders.bundled import MINILM
    from classifier.heads.logistic import LogisticHead

    assert MINILM.head_path.is_file(), f"the shipped head is missing: {MINILM.head_path}"
    return LogisticHead.load(MINILM.head_path)


@pytest.fixture(scope="session")
def minilm_encoder(shipped_head):
    """The bundled all-MiniLM-L6-v2 (offline, SHA-256 verified) with the shipped head's pooling."""
    from classifier.encoders.hf import Encoder

    return Encoder.load("sentence-transformers/all-MiniLM-L6-v2", pooling=shipped_head.encoder.pooling, device="cpu")


@pytest.fixture(scope="session")
def shipped_classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Classifier]:
    """The bundled all-MiniLM-L6-v2 with the shipped head, loaded once per session, over a tmp cache."""
    root = tmp_path_factory.mktemp("classifier")
    loaded = Classifier.load(ClassifierConfig(model="minilm", cache_dir=root / "cache", device="cpu"))
    yield loaded
    loaded.close()


@pytest.fixture
def make_classifier(tmp_path: Path, tiny_encoder, tiny_head) -> Iterator[Callable]:
    """Factory of classifiers over a fresh cache directory in ``tmp_path`` (closed at teardown)."""
    from cache import EmbeddingCache

    made = []

    def make(cls=Classifier, encoder=None, head=None, cache_dir: Path | None = None, **cache_options):
        encoder = encoder or tiny_encoder
        directory = cache_dir or tmp_path / "cache"
        cache = EmbeddingCache(directory, encoder.cache_namespace, dim=encoder.dim, **cache_options)
        classifier = cls(encoder, by_task(head or tiny_head), cache)
        made.append(classifier)
        return classifier

    yield make
    for classifier in made:
        classifier.close()


@pytest.fixture
def cli_env(tmp_path: Path, tiny_model_dir: Path, tiny_head_path: Path) -> dict[str, str]:
    """Settings for a CLI run: tmp cache and data dirs, the tiny model and its head (fast start)."""
    return clean_environ() | {
        "MOODBOT_CACHE_DIR": str(tmp_path / "cache"),
        "MOODBOT_DATA_DIR": str(tmp_path / "var"),
        "MOODBOT_MODEL": str(tiny_model_dir),
        "MOODBOT_HEAD": str(tiny_head_path),
        "MOODBOT_DEVICE": "cpu",
        "MOODBOT_PRECISION": "fp32",  # the tiny_encoder fixture's mode: tests compare their vectors
        "MOODBOT_LOG_LEVEL": "warning",
    }


@pytest.fixture
def moodbot_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cli_env: dict[str, str], tmp_path: Path
):
    """Call ``bot.cli.main`` in-process with ``cli_env`` (plus overrides) and optional stdin bytes."""
    from bot.cli import main

    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def run(argv: Sequence[str], stdin: bytes | None = None, **env: str) -> CliResult:
        for key in list(os.environ):
            if key.startswith(SETTING_PREFIXES):
                monkeypatch.delenv(key)
        for key, value in (cli_env | env).items():
            if key.startswith(SETTING_PREFIXES) or key in env:
                monkeypatch.setenv(key, value)
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        try:
            code = main(["--env-file", str(tmp_path / "absent.env"), *argv])
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    yield run
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscordServer]:
    """A started, empty in-process :class:`FakeDiscordServer`; add guilds with its builders (or ``seeded_guild``)."""
    server = FakeDiscordServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def seeded_guild(fake_discord: FakeDiscordServer) -> Seed:
    """One guild on ``fake_discord``: #general, #random, #mod-log, a moderator (Manage Messages + Manage Server)
    and a member."""
    return seed_default(fake_discord)


@pytest.fixture
def restore_discord_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restore discord.py's REST and gateway endpoints after the test (the bot points them at its settings' URLs)."""
    websocket = discord.gateway.DiscordWebSocket
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(websocket, "DEFAULT_GATEWAY", websocket.DEFAULT_GATEWAY)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole session; ``postgres.create_database()`` gives a test its own."""
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server on 127.0.0.1 for one test (it may stop, restart or pause it)."""
    with RedisServer(tmp_path / "redis") as server:
        yield server
