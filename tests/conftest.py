"""Shared fixtures for the core-engine tests: real tokenizers, real (tiny) models, real cache directories.

The tiny encoder is a random-init DistilBERT (dim 32, 2 layers) saved with ``save_pretrained`` next to
the real uncased WordPiece vocabulary, then loaded with ``Encoder.load(folder)`` exactly as a user
loads a local ``distilbert-base-uncased`` folder. Accuracy tests use the bundled all-MiniLM-L6-v2 and
the shipped head.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from classifier.pipeline import SentimentClassifier

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SST2_DEV = SHARED_DATA / "sst2" / "dev.tsv"
MOODBOT = Path(sys.executable).with_name("moodbot")

POSITIVE = [
    "i love this server", "what a great day", "this is wonderful news", "thank you so much friends",
    "the new update is amazing", "best stream ever", "you are all fantastic", "so happy with the result",
    "this song is beautiful", "what a lovely community", "awesome work everyone", "i really enjoyed that game",
    "brilliant idea thanks", "the event was fun", "congrats on the win", "the moderators are kind and helpful",
]
NEGATIVE = [
    "this update is awful", "i hate this so much", "what a terrible day", "this is the worst server",
    "the game keeps crashing and it is horrible", "stop spamming it is annoying", "that was a boring stream",
    "so sad and disappointed", "this is garbage", "the lag is unbearable", "rude people everywhere",
    "worst patch ever", "i am angry about the ban", "nothing works and it is broken", "ugly and useless design",
    "what a waste of time",
]


def write_tsv(path: Path, rows: Sequence[tuple[str, int]]) -> Path:
    """Write an SST-2 style file: sentence<TAB>label, no header."""
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return path


def labelled_rows() -> list[tuple[str, int]]:
    return [(t, 1) for t in POSITIVE] + [(t, 0) for t in NEGATIVE]


def build_tiny_model(folder: Path, seed: int) -> Path:
    """A random-init tiny DistilBERT plus the real uncased tokenizer, saved as a local model folder."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    from classifier.bundled import bundled_model_path

    torch.manual_seed(seed)
    config = DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=30522, max_position_embeddings=512)
    DistilBertModel(config).save_pretrained(folder)  # safetensors
    AutoTokenizer.from_pretrained(str(bundled_model_path())).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-distilbert", seed=0)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model with different weights (another seed)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-distilbert-b", seed=1)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):
    from classifier.encoder import Encoder

    return Encoder.load(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def other_encoder(other_model_dir: Path):
    from classifier.encoder import Encoder
    from classifier.pooling import Pooling

    return Encoder.load(str(other_model_dir), pooling=Pooling.parse("mean@-1"), device="cpu")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rows = labelled_rows()
    write_tsv(folder / "train.tsv", rows)
    write_tsv(folder / "dev.tsv", rows[::3])
    return folder


@pytest.fixture(scope="session")
def tiny_head_path(tiny_encoder, tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A head trained for the tiny encoder (accuracy is irrelevant: the encoder is random)."""
    from classifier.data import load_tsv
    from classifier.head import EncoderSpec
    from classifier.training import FeatureSet, TrainingOptions, train_head

    train = load_tsv(tiny_data_dir / "train.tsv")
    features = FeatureSet("train", tiny_encoder.embed(train.texts), train.labels)
    result = train_head(EncoderSpec.of(tiny_encoder), [features], features, TrainingOptions(c_grid=(0.1, 1.0), folds=2))
    path = tmp_path_factory.mktemp("heads") / "tiny-head.json"
    result.head.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_head(tiny_head_path: Path):
    from classifier.head import LogisticHead

    return LogisticHead.load(tiny_head_path)


@pytest.fixture(scope="session")
def shipped_head():
    from classifier.head import DEFAULT_HEAD_PATH, LogisticHead

    assert DEFAULT_HEAD_PATH.is_file(), f"the shipped head is missing: {DEFAULT_HEAD_PATH}"
    return LogisticHead.load(DEFAULT_HEAD_PATH)


@pytest.fixture(scope="session")
def minilm_encoder(shipped_head):
    """The bundled all-MiniLM-L6-v2 (offline, SHA-256 verified) with the shipped head's pooling."""
    from classifier.encoder import Encoder
    from classifier.pooling import Pooling

    return Encoder.load("sentence-transformers/all-MiniLM-L6-v2", pooling=Pooling.parse(shipped_head.encoder.pooling), device="cpu")


class InstrumentedClassifier(SentimentClassifier):
    """A real classifier with a seam for tests: records each model batch, can hold it at a gate, can fail it.

    ``gate``: when set, ``embed`` signals ``entered`` and then waits for the gate (the model thread blocks,
    the event loop does not). ``fail_marker``: a batch holding a text that contains it raises (fault injection).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        self.fail_marker: str | None = None

    def embed(self, texts):
        self.batches.append(list(texts))
        self.entered.set()
        if self.gate is not None and not self.gate.wait(timeout=60):
            raise TimeoutError("test gate never opened")
        if self.fail_marker is not None and any(self.fail_marker in text for text in texts):
            raise RuntimeError(f"injected fault in a batch of {len(texts)}")
        return super().embed(texts)


@pytest.fixture
def make_classifier(tmp_path: Path, tiny_encoder, tiny_head) -> Iterator[Callable]:
    """Factory of classifiers over a fresh cache directory in ``tmp_path`` (closed at teardown)."""
    from cache import EmbeddingCache

    made = []

    def make(cls=SentimentClassifier, encoder=None, head=None, cache_dir: Path | None = None, **cache_options):
        encoder = encoder or tiny_encoder
        cache = EmbeddingCache(cache_dir or tmp_path / "cache", encoder.cache_namespace, dim=encoder.dim, **cache_options)
        classifier = cls(encoder, head or tiny_head, cache)
        made.append(classifier)
        return classifier

    yield make
    for classifier in made:
        classifier.close()


def clean_environ() -> dict[str, str]:
    """``os.environ`` without any moodbot or Discord setting the developer may have exported."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MOODBOT_", "DISCORD_"))}


@pytest.fixture
def cli_env(tmp_path: Path, tiny_model_dir: Path, tiny_head_path: Path) -> dict[str, str]:
    """Settings for a CLI run: tmp cache and data dirs, the tiny model and its head (fast start)."""
    return clean_environ() | {
        "MOODBOT_CACHE_DIR": str(tmp_path / "cache"),
        "MOODBOT_DATA_DIR": str(tmp_path / "var"),
        "MOODBOT_MODEL": str(tiny_model_dir),
        "MOODBOT_HEAD": str(tiny_head_path),
        "MOODBOT_DEVICE": "cpu",
        "MOODBOT_LOG_LEVEL": "warning",
    }


def run_moodbot(
    args: Sequence[str | bytes], env: dict[str, str], *, stdin: bytes = b"", cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed ``moodbot`` console script; ``--env-file`` points at nothing so a developer's .env is ignored."""
    return subprocess.run(
        [str(MOODBOT), "--env-file", os.devnull + ".absent", *args],
        input=stdin, env=env, cwd=cwd or REPO, capture_output=True, timeout=timeout, check=False,
    )


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def moodbot_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cli_env: dict[str, str], tmp_path: Path):
    """Call ``bot.cli.main`` in-process with ``cli_env`` (plus overrides) and optional stdin bytes."""
    from bot.cli import main

    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def run(argv: Sequence[str], stdin: bytes | None = None, **env: str) -> CliResult:
        for key in list(os.environ):
            if key.startswith(("MOODBOT_", "DISCORD_")):
                monkeypatch.delenv(key)
        for key, value in (cli_env | env).items():
            if key.startswith(("MOODBOT_", "DISCORD_")) or key in env:
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
