"""The shipped default configuration (``MOODBOT_MODEL=multilingual``: mpnet for English, multilingual-e5-small for the
rest, every shipped head) on the project's chat sets: what a server would see. The bounds are the measured figures
with a margin; the figures themselves are printed and reported in the README."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier.config import ClassifierConfig
from classifier.evaluation.data import load_tsv
from classifier.flag_policy import flag_reasons
from classifier.heads.sentiment import CLASSES, NEUTRAL
from classifier.inference.prediction import Prediction
from classifier.inference.router import Paths, Router
from classifier.text import prepare_text
from tests.support.helpers import CHAT_SETS

pytestmark = pytest.mark.timeout(600)

HARMFUL_ONLY, NEGATIVE_ONLY = frozenset({"harmful"}), frozenset({"negative"})
DEFAULT = HARMFUL_ONLY | NEGATIVE_ONLY


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    cache = tmp_path_factory.mktemp("cache")
    paths = Paths.load(ClassifierConfig(cache_dir=cache, device="cpu"))
    yield Router(paths)
    paths.close()


def classified(router: Router, name: str, three_way: bool = True) -> tuple[list[int], list[Prediction]]:
    data = load_tsv(CHAT_SETS / f"{name}.tsv", three_way=three_way, signal=not three_way)
    return data.labels.tolist(), router.classify([prepare_text(text) for text in data.texts])


def labelled(labels: list[int], predictions: list[Prediction], label: int) -> list[Prediction]:
    """The predictions of the texts labelled ``label``."""
    return [p for text_label, p in zip(labels, predictions, strict=True) if text_label == label]


def flagged(predictions: list[Prediction], flag_on: frozenset[str]) -> int:
    return sum(bool(flag_reasons(p, flag_on)) for p in predictions)


def test_the_default_paths_read_every_language(router: Router) -> None:
    labels, predictions = classified(router, "multilingual_chat")
    languages = Path(CHAT_SETS / "multilingual_chat.languages").read_text().split()
    right = sum(CLASSES[label] == p.label for label, p in zip(labels, predictions, strict=True))
    paths = Counter(p.path for p in predictions)
    neutral = labelled(labels, predictions, NEUTRAL)
    negative = labelled(labels, predictions, 0)
    print(f"\nmultilingual chat ({len(set(languages))} languages): {right}/{len(labels)} labels right, "
          f"paths {dict(paths)}, neutral flagged {flagged(neutral, DEFAULT)}/{len(neutral)}, negative flagged "
          f"{flagged(negative, DEFAULT)}/{len(negative)}")
    assert paths["e5"] >= 0.9 * len(labels)
    assert right >= 0.9 * len(labels)  # measured 79 of 84
    assert flagged(neutral, DEFAULT) == 0  # measured 0 of 36
    assert flagged(negative, DEFAULT) >= 0.7 * len(negative)  # measured 18 of 24


def test_english_chat_keeps_its_figures(router: Router) -> None:
    _, neutral = classified(router, "neutral_chat")
    _, negative = classified(router, "negative_chat")
    print(f"\nEnglish chat: neutral flagged {flagged(neutral, DEFAULT)}/{len(neutral)}, negative flagged "
          f"{flagged(negative, DEFAULT)}/{len(negative)}, paths {dict(Counter(p.path for p in neutral + negative))}")
    assert flagged(neutral, DEFAULT) <= len(neutral) / 40  # measured 0 of 93
    assert flagged(negative, DEFAULT) >= 0.85 * len(negative)  # measured 41 of 45


@pytest.mark.parametrize(
    ("suffix", "measured"),
    [("", "default 29 of 35, harmful 28 of 35, benign 0 of 35"),
     # Written before the own moderation sets last grew and never used for a choice: the unbiased check.
     ("_fresh", "default 19 of 20, harmful 18 of 20, benign 0 of 20")],
)
def test_moderation_flags_harm_and_spares_benign_complaints(router: Router, suffix: str, measured: str) -> None:
    _, harmful = classified(router, f"harmful_chat{suffix}", three_way=False)
    _, benign = classified(router, f"benign_negative_chat{suffix}", three_way=False)
    _, neutral = classified(router, "neutral_chat")
    figures = {policy: (flagged(harmful, on), flagged(benign, on), flagged(neutral, on))
               for policy, on in (("harmful,negative", DEFAULT), ("harmful", HARMFUL_ONLY),
                                  ("negative", NEGATIVE_ONLY))}
    print(f"\nflags (harmful of {len(harmful)}, benign negative of {len(benign)}, neutral of {len(neutral)}): "
          f"{figures}; measured {measured}")
    harmful_default, _, neutral_default = figures["harmful,negative"]
    harmful_only, benign_only, _ = figures["harmful"]
    assert harmful_default >= 0.75 * len(harmful) and neutral_default <= len(neutral) / 40
    assert harmful_only >= 0.7 * len(harmful) and benign_only <= 0.1 * len(benign)


def test_sexual_content_is_flagged_and_its_vocabulary_alone_is_not(router: Router) -> None:
    """Written before any sexual training line and never used for a choice: solicitation, sextortion, grooming,
    explicit text and porn spam against sex education, relationships and the same words in other senses."""
    labels, predictions = classified(router, "sexual_chat_fresh", three_way=False)
    sexual = labelled(labels, predictions, 1)
    harmless = labelled(labels, predictions, 0)
    by_own_head = sum(any(r.head == "sexual" for r in flag_reasons(p, HARMFUL_ONLY)) for p in sexual)
    print(f"\nsexual chat under harmful: {flagged(sexual, HARMFUL_ONLY)}/{len(sexual)} flagged ({by_own_head} by the "
          f"sexual head), harmless {flagged(harmless, HARMFUL_ONLY)}/{len(harmless)}; measured 18, 17 and 0 of 20")
    assert flagged(sexual, HARMFUL_ONLY) >= 0.8 * len(sexual) and by_own_head >= 0.7 * len(sexual)
    assert flagged(harmless, HARMFUL_ONLY) <= 0.1 * len(harmless)
