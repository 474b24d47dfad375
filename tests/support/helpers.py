"""The one home of what tests in several folders share: paths, the fake token, sample texts, a clean environment,
the ``moodbot`` runner, the poller and the "pings nobody" check. Plain values and functions; fixtures live in
conftests."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from classifier.heads.tasks import OTHER, SENTIMENT
from classifier.inference.prediction import Prediction, Scores
from tests.support.fake_discord.models import FakeMessage

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SST2_DEV = SHARED_DATA / "sst2" / "dev.tsv"
#: Three-way chat sets written for this project: ordinary neutral server messages, clearly negative ones, upbeat slang.
CHAT_SETS = REPO_ROOT / "tests" / "data" / "chat"
#: The installed console script, as ``make run`` starts it.
MOODBOT = Path(sys.executable).with_name("moodbot")

#: Token-shaped, so that tests can assert it never reaches a log line, an error or a repr.
TOKEN = "MTIzNDU2Nzg5.fake-bot-token.dont-log-me-6f1d2c"

#: Seconds any single wait may take (model calls on a busy 2-core machine included).
WAIT = 15.0

#: Ports handed to servers the tests start: above Ray's worker ports (10002-19999) and below the kernel's ephemeral
#: range (32768-60999 on Linux), where any outgoing connection of another process may take a port that was free
#: a moment before.
SERVER_PORTS = range(20000, 32768)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on or connects from right now, outside the ephemeral range."""
    for port in random.sample(SERVER_PORTS, 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {SERVER_PORTS}")

# ---------------------------------------------------------------------------------------------- sample texts

#: Short labelled sentences: the training set of the tiny test head, and clear cases for the real one.
POSITIVE_TEXTS = [
    "i love this server", "what a great day", "this is wonderful news", "thank you so much friends",
    "the new update is amazing", "best stream ever", "you are all fantastic", "so happy with the result",
    "this song is beautiful", "what a lovely community", "awesome work everyone", "i really enjoyed that game",
    "brilliant idea thanks", "the event was fun", "congrats on the win", "the moderators are kind and helpful",
]
NEGATIVE_TEXTS = [
    "this update is awful", "i hate this so much", "what a terrible day", "this is the worst server",
    "the game keeps crashing and it is horrible", "stop spamming it is annoying", "that was a boring stream",
    "so sad and disappointed", "this is garbage", "the lag is unbearable", "rude people everywhere",
    "worst patch ever", "i am angry about the ban", "nothing works and it is broken", "ugly and useless design",
    "what a waste of time",
]

#: Templates the shipped head scores far from 0.5: the load and reliability runs make distinct messages from them.
CLEAR_NEGATIVE = (
    "i hate this so much, it is awful",
    "this is the worst server ever, everyone here is terrible",
    "what a horrible, miserable day, nothing works",
    "this update is garbage and broke everything",
    "you are all useless and i am so angry",
    "that was a disgusting and pathetic thing to say",
    "the lag is unbearable and the game is broken",
)
CLEAR_POSITIVE = (
    "i love this server, you are all wonderful",
    "what a great day, thanks so much friends",
    "this update is amazing, great work everyone",
    "congrats on the win, that was fantastic",
    "the event was so much fun, thank you",
    "what a lovely community, i am so happy here",
    "best stream ever, you are awesome",
)

#: One message each way for the end-to-end bot tests.
NEGATIVE_MESSAGE = "this update is awful, I hate it"
POSITIVE_MESSAGE = "I love this server"


def labelled_texts() -> list[tuple[str, int]]:
    """``POSITIVE_TEXTS`` as 1, then ``NEGATIVE_TEXTS`` as 0."""
    return [(t, 1) for t in POSITIVE_TEXTS] + [(t, 0) for t in NEGATIVE_TEXTS]


def write_tsv(path: Path, rows: Sequence[tuple[str, int]]) -> Path:
    """Write an SST-2 style file: sentence<TAB>label, no header."""
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- processes


#: Environment variables that configure moodbot: a test sets the ones it needs and never inherits the others.
SETTING_PREFIXES = ("MOODBOT_", "DISCORD_")


def clean_environ() -> dict[str, str]:
    """``os.environ`` without any moodbot or Discord setting the developer may have exported, and with this
    checkout first on ``PYTHONPATH``.

    The ``moodbot`` console script imports the package from wherever it was installed (editable: that checkout's
    folder), not from its working directory: without this, a test run in a second worktree sharing the first one's
    virtual environment would test the first one's code in every subprocess.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environ.get("PYTHONPATH")]))
    return environ


@dataclass
class CliResult:
    """What an in-process ``moodbot`` call returned and printed (the ``moodbot_main`` fixture)."""

    code: int
    out: str
    err: str


def run_moodbot(
    args: Sequence[str | bytes],
    env: dict[str, str],
    *,
    stdin: bytes = b"",
    cwd: Path | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed ``moodbot`` console script; ``--env-file`` points at nothing, so a developer's .env is
    ignored."""
    return subprocess.run(
        [str(MOODBOT), "--env-file", os.devnull + ".absent", *args],
        input=stdin, env=env, cwd=cwd or REPO_ROOT, capture_output=True, timeout=timeout, check=False,
    )


# ---------------------------------------------------------------------------------------------- waiting


async def poll_until(
    probe: Callable[[], T], timeout: float = WAIT, what: str = "the condition", *, interval: float = 0.01
) -> T:
    """Re-check ``probe`` (a database query, a counter...) until it returns something truthy, and return that.

    For state the fake Discord server holds, prefer its own ``wait_until``: it wakes on each change instead of polling.
    """
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
    return value


def poll_until_blocking(probe: Callable[[], T], timeout: float, what: str, *, interval: float = 0.2) -> T:
    """:func:`poll_until` for tests without an event loop (those that drive subprocesses over HTTP)."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return value


# ---------------------------------------------------------------------------------------------- mentions


def pings_nobody(message: FakeMessage | Mapping[str, Any]) -> bool:
    """The bot asked for no mentions (``AllowedMentions.none()``) and, where the server resolved them, none resolved.

    ``message`` is a stored :class:`FakeMessage` or a message as JSON: an interaction callback's data, the load
    server's record of a post, or the control API's view of a message (``{"data": payload, "allowed_mentions": ...}``).
    """
    if isinstance(message, FakeMessage):
        allowed, resolved = message.allowed_mentions, message.data
    else:
        allowed, resolved = message.get("allowed_mentions"), message.get("data", message)
    asked_for_none = isinstance(allowed, Mapping) and allowed.get("parse") == [] and not (
        allowed.get("users") or allowed.get("roles")
    )
    return asked_for_none and not any(resolved.get(key) for key in ("mentions", "mention_roles", "mention_everyone"))


def sentiment_prediction(
    p_negative: float, p_neutral: float, p_positive: float, cached: bool = False, dim: int = 4,
    signals: Mapping[str, tuple[float, float]] | None = None,
) -> Prediction:
    """A prediction of a sentiment head with these probabilities (for tests of what the bot shows), and of the
    moderation heads in ``signals`` (``{head: (score, flag threshold)}``)."""
    scores = {SENTIMENT.name: Scores(SENTIMENT.classes, (p_negative, p_neutral, p_positive))}
    scores |= {head: Scores((OTHER, head), (1.0 - score, score), threshold)
               for head, (score, threshold) in (signals or {}).items()}
    return Prediction(scores, cached, np.zeros(dim, np.float32))
