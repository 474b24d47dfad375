"""Learning from moderators: ``moodbot train --feedback`` on a real bot database (issue 6).

Everything is real: the tiny random-init DistilBERT from ``conftest``, a SQLite file opened with
:class:`bot.store.Store` at ``MOODBOT_DATA_DIR/moodbot.sqlite3``, flags whose vectors are the tiny
encoder's own embeddings (as the bot stores them), moderator reviews through ``Store.review_flag``,
and the ``moodbot`` CLI (installed script in a subprocess, or ``bot.cli.main`` in-process) over a
temporary embedding cache.

A random-init encoder knows no sentiment, so the labelled data is a small synthetic language it
*can* separate: each sentence alternates two words of one polarity ("love nice love nice ...").
The permutations are split into train, dev and a pool of messages that moderators later review.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bot.store import ReviewAction, Store
from classifier.evaluation.data import load_tsv
from classifier.evaluation.metrics import binary_accuracy
from classifier.heads.logistic import LogisticHead
from classifier.heads.sentiment import NEGATIVE, NEUTRAL, POSITIVE
from classifier.text import prepare_text
from tests.support.helpers import clean_environ, run_moodbot, write_tsv

MODERATOR = 4242
GUILD, OTHER_GUILD = 1001, 2002
POSITIVE_WORDS = ["love", "great", "happy", "wonderful", "awesome", "nice", "thanks"]
NEGATIVE_WORDS = ["hate", "awful", "sad", "terrible", "horrible", "ugly", "boring"]

BEFORE_AFTER = re.compile(r"^dev accuracy before feedback (\d\.\d{4}), after (\d\.\d{4})$", re.M)
DEV_ACCURACY = re.compile(r"^dev accuracy (\d\.\d{4})  dev ECE", re.M)


def sentences(words: list[str], label: int) -> list[tuple[str, int]]:
    return [(f"{a} {b} {a} {b} {a} {b}", label) for a, b in itertools.permutations(words, 2)]


@dataclass(frozen=True)
class ChatData:
    folder: Path  # train.tsv (34 rows) and dev.tsv (17 rows)
    pool: list[tuple[str, int]]  # 33 messages with their true label, for moderators to review
    base_head: Path  # `moodbot train` without feedback: the current head for the tiny encoder
    base_dev: float  # its dev accuracy as the CLI printed it


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tiny_head_path: Path) -> ChatData:
    rows = sentences(POSITIVE_WORDS, 1) + sentences(NEGATIVE_WORDS, 0)
    folder = tmp_path_factory.mktemp("chat")
    write_tsv(folder / "train.tsv", [r for i, r in enumerate(rows) if i % 5 in (1, 2)])
    write_tsv(folder / "dev.tsv", [r for i, r in enumerate(rows) if i % 5 == 0])
    pool = [r for i, r in enumerate(rows) if i % 5 in (3, 4)]
    # the current head, trained by the installed `moodbot train` script (cls pooling, like the conftest tiny head)
    env = clean_environ() | {
        "MOODBOT_CACHE_DIR": str(folder / "cache"), "MOODBOT_DATA_DIR": str(folder / "var"),
        "MOODBOT_MODEL": str(tiny_model_dir), "MOODBOT_HEAD": str(tiny_head_path), "MOODBOT_DEVICE": "cpu",
        "MOODBOT_PRECISION": "fp32", "MOODBOT_LOG_LEVEL": "warning",  # as cli_env: its figures are compared
    }
    base = folder / "base-head.json"
    process = run_moodbot(train_args(folder, base), env)
    assert process.returncode == 0, process.stderr.decode(errors="replace")[-2000:]
    base_dev = float(DEV_ACCURACY.search(process.stdout.decode()).group(1))
    return ChatData(folder, pool, base, base_dev)


def train_args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    """``moodbot train`` on the chat train/dev TSVs with no extra set (``--extra`` followed by nothing)."""
    return [
        "train",
        "--data",
        str(data_dir / "train.tsv"),
        "--dev",
        str(data_dir / "dev.tsv"),
        "--extra",
        "--out",
        str(out),
        *extra,
    ]


def database(env: dict[str, str]) -> Path:
    return Path(env["MOODBOT_DATA_DIR"]) / "moodbot.sqlite3"


def review_of(label: int, index: int) -> ReviewAction:
    """A flag on a message that was not negative (``label`` 1 in the binary files) is dismissed; a negative one is
    confirmed or deleted."""
    if label == 1:
        return ReviewAction.DISMISS
    return ReviewAction.CONFIRM if index % 2 == 0 else ReviewAction.DELETE


def raise_and_review(
    store: Store, encoder, guild_id: int, reviews: list[tuple[str, ReviewAction]], first_message_id: int
) -> None:
    """Flag each text with the encoder's real embedding (as the bot does) and review it as a moderator."""
    vectors = encoder.embed([prepare_text(text) for text, _ in reviews])
    for offset, ((text, action), vector) in enumerate(zip(reviews, vectors, strict=True)):
        flag = store.add_flag(
            guild_id=guild_id, channel_id=77, message_id=first_message_id + offset, author_id=500 + offset,
            p_negative=0.95, text=text, vector=vector, namespace=encoder.cache_namespace,
        )
        assert flag is not None
        store.review_flag(flag.id, MODERATOR, action)


def error_lines(err: str) -> list[str]:
    """The CLI's own stderr lines (progress bars aside), and never a traceback."""
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("moodbot:")]


def test_feedback_retrain_per_guild(
    tmp_path: Path, cli_env: dict[str, str], moodbot_main, tiny_encoder, chat: ChatData
) -> None:
    base = LogisticHead.load(chat.base_head)
    assert base.training["sets"] == [{"name": "sst2-train", "n": 34, "weight": 1.0, "labels": "binary"}]
    assert base.classes == ("negative", "positive")
    guild_reviews = [(text, review_of(label, i)) for i, (text, label) in enumerate(chat.pool[::2])]  # 17
    other_reviews = [(text, review_of(label, i)) for i, (text, label) in enumerate(chat.pool[1::2])]  # 16
    with Store.open_sync(database(cli_env)) as store:
        raise_and_review(store, tiny_encoder, GUILD, guild_reviews, first_message_id=10_000)
        raise_and_review(store, tiny_encoder, OTHER_GUILD, other_reviews, first_message_id=20_000)
        vectors, labels = store.feedback_examples(tiny_encoder.cache_namespace, GUILD)
        # dismiss stores neutral (a false flag is ordinary text), confirm and delete store negative
        assert labels.tolist() == [NEUTRAL if label == 1 else NEGATIVE for _, label in chat.pool[::2]]
        expected = tiny_encoder.embed([prepare_text(text) for text, _ in guild_reviews])
        np.testing.assert_array_equal(vectors, expected)  # the stored vector is the embedding itself
        assert len(store.feedback_examples(tiny_encoder.cache_namespace)[1]) == 33

    # never the text: the feedback table holds ids, a namespace, a float32 blob, a label and the head it teaches
    texts = [text for text, _ in chat.pool]
    with sqlite3.connect(database(cli_env)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(feedback)")]
        rows = db.execute("SELECT * FROM feedback").fetchall()
    assert columns == [
        "id", "flag_id", "guild_id", "namespace", "vector", "label", "moderator_id", "created_at", "head"
    ]
    assert len(rows) == 33
    for row in rows:
        assert len(row[columns.index("vector")]) == 4 * tiny_encoder.dim
        for value in row:
            if isinstance(value, str):
                assert not any(text in value or value in text for text in texts)
            elif isinstance(value, bytes):
                assert not any(word.encode() in value for word in POSITIVE_WORDS + NEGATIVE_WORDS)

    # `moodbot train --feedback --guild` (the installed script, a separate process) against the current head
    env = cli_env | {"MOODBOT_HEAD": str(chat.base_head)}
    new = tmp_path / "guild-head.json"
    process = run_moodbot(train_args(chat.folder, new, "--feedback", "--guild", str(GUILD)), env)
    out, err = process.stdout.decode(), process.stderr.decode()
    assert process.returncode == 0, err[-2000:]
    assert error_lines(err) == []
    before, after = map(float, BEFORE_AFTER.search(out).groups())
    assert before == pytest.approx(chat.base_dev, abs=1e-4)  # "before" is the current head on the same dev set
    assert after >= before - 0.01
    assert DEV_ACCURACY.search(out).group(1) == f"{after:.4f}" and f"wrote {new}" in out
    head = LogisticHead.load(new)
    assert head.encoder.fingerprint == tiny_encoder.fingerprint
    assert head.training["sets"] == [
        {"name": "sst2-train", "n": 34, "weight": 1.0, "labels": "binary"},
        {"name": "feedback", "n": 17, "weight": 1.0, "labels": "three-way"},
    ]
    assert head.classes == ("negative", "neutral", "positive")  # dismissals taught it neutral
    assert set(head.training["cv_by_set"]) == {"sst2-train", "feedback"}
    assert set(head.training["cv_by_set"]["feedback"]["recall"]) == {"negative", "neutral"}
    assert head.training["dev_accuracy"] == pytest.approx(after, abs=1e-4)
    dev = load_tsv(chat.folder / "dev.tsv")
    p = head.predict_proba(tiny_encoder.embed([prepare_text(t) for t in dev.texts]))
    assert binary_accuracy(dev.labels, p) == pytest.approx(after, abs=1e-4)  # the written head is the one reported

    # without --guild both guilds' feedback joins (17 + 16): --guild above left the other guild's 16 out
    everyone = tmp_path / "all-guilds-head.json"
    result = moodbot_main(train_args(chat.folder, everyone, "--feedback"), MOODBOT_HEAD=str(chat.base_head))
    assert result.code == 0, result.err[-2000:]
    before_all, after_all = map(float, BEFORE_AFTER.search(result.out).groups())
    # (printed only now: the in-process run reset the captured output)
    print(f"\nguild {GUILD} only (17 feedback rows): dev accuracy before {before:.4f}, after {after:.4f}")
    print(f"all guilds (33 feedback rows): dev accuracy before {before_all:.4f}, after {after_all:.4f}")
    assert before_all == before and after_all >= before - 0.01
    # what dismissals teach: texts like the dismissed ones are not negative, so they score lower p_negative
    dev_vectors = tiny_encoder.embed([prepare_text(t) for t in dev.texts])

    def mean_p_negative(path: Path, label: int) -> float:
        return float(LogisticHead.load(path).predict_proba(dev_vectors)[dev.labels == label, NEGATIVE].mean())

    print(f"mean p_negative of dev positives: base {mean_p_negative(chat.base_head, POSITIVE):.3f}, "
          f"guild {mean_p_negative(new, POSITIVE):.3f}, all {mean_p_negative(everyone, POSITIVE):.3f}; "
          f"of dev negatives: base {mean_p_negative(chat.base_head, NEGATIVE):.3f}, "
          f"all {mean_p_negative(everyone, NEGATIVE):.3f}")
    assert mean_p_negative(everyone, POSITIVE) < mean_p_negative(chat.base_head, POSITIVE)
    assert LogisticHead.load(everyone).training["sets"][1] == {
        "name": "feedback", "n": 33, "weight": 1.0, "labels": "three-way"
    }


def test_refuses_a_head_that_loses_dev_accuracy(
    tmp_path: Path, cli_env: dict[str, str], moodbot_main, tiny_encoder, chat: ChatData
) -> None:
    # "moderators" who label the dev sentences the wrong way round, four times over
    dev = load_tsv(chat.folder / "dev.tsv")
    flipped = [
        (text, review_of(1 - label, i)) for i, (text, label) in enumerate(zip(dev.texts, dev.labels, strict=True))
    ]
    with Store.open_sync(database(cli_env)) as store:
        for copy in range(4):
            raise_and_review(store, tiny_encoder, GUILD, flipped, first_message_id=100_000 * (copy + 1))
        assert len(store.feedback_examples(tiny_encoder.cache_namespace, GUILD)[1]) == 4 * len(dev)

    out = tmp_path / "worse-head.json"
    result = moodbot_main(
        train_args(chat.folder, out, "--feedback", "--guild", str(GUILD)), MOODBOT_HEAD=str(chat.base_head)
    )
    assert result.code == 2
    before, after = map(float, BEFORE_AFTER.search(result.out).groups())
    print(
        f"\nflipped feedback (68 rows): dev accuracy before {before:.4f}, after {after:.4f}; {error_lines(result.err)}"
    )
    assert before == pytest.approx(chat.base_dev, abs=1e-4)
    assert after < before - 0.01
    assert error_lines(result.err) == [
        "moodbot: error: refusing to write the head: "
        f"dev accuracy would drop from {before:.4f} to {after:.4f} (more than 1 point)"
    ]
    assert not out.exists()
    assert "wrote" not in result.out


def test_feedback_of_a_quantized_bot_is_used(
    tmp_path: Path, cli_env: dict[str, str], moodbot_main, tiny_model_dir: Path, chat: ChatData
) -> None:
    """With MOODBOT_QUANTIZE=int8 the bot stores vectors under the encoder's ``:int8`` namespace; the same
    settings must let ``moodbot train --feedback`` (which embeds its data sets in fp32) find them."""
    from classifier.encoders.hf import Encoder

    bot_encoder = Encoder.load(
        str(tiny_model_dir), device="cpu", quantize="int8"
    )  # the bot's classifier, as Classifier.load builds it
    assert bot_encoder.cache_namespace.endswith(":int8")
    reviews = [(text, review_of(label, i)) for i, (text, label) in enumerate(chat.pool)]
    with Store.open_sync(database(cli_env)) as store:
        raise_and_review(store, bot_encoder, GUILD, reviews, first_message_id=30_000)

    out = tmp_path / "head.json"
    result = moodbot_main(
        train_args(chat.folder, out, "--feedback"), MOODBOT_HEAD=str(chat.base_head), MOODBOT_QUANTIZE="int8"
    )
    assert result.code == 0, error_lines(result.err)
    before, after = map(float, BEFORE_AFTER.search(result.out).groups())
    print(f"\nint8 bot feedback (33 rows): dev accuracy before {before:.4f}, after {after:.4f}")
    assert after >= before - 0.01
    assert LogisticHead.load(out).training["sets"][1] == {
        "name": "feedback", "n": 33, "weight": 1.0, "labels": "three-way"
    }


def test_no_feedback_is_a_one_line_error(
    tmp_path: Path, cli_env: dict[str, str], moodbot_main, tiny_encoder, chat: ChatData
) -> None:
    out = tmp_path / "head.json"
    env = {"MOODBOT_HEAD": str(chat.base_head)}
    result = moodbot_main(train_args(chat.folder, out, "--feedback"), **env)
    assert result.code == 2
    assert error_lines(result.err) == ["moodbot: error: no moderator feedback stored for this encoder"]
    assert not out.exists()

    # feedback of another guild only: asking for this guild is the same clear error, naming the guild
    with Store.open_sync(database(cli_env)) as store:
        raise_and_review(
            store, tiny_encoder, OTHER_GUILD, [(chat.pool[0][0], ReviewAction.DISMISS)], first_message_id=1
        )
    result = moodbot_main(train_args(chat.folder, out, "--feedback", "--guild", str(GUILD)), **env)
    assert result.code == 2
    assert error_lines(result.err) == [
        f"moodbot: error: no moderator feedback stored for this encoder in guild {GUILD}"
    ]
    assert not out.exists()
