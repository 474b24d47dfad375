"""The labelled data the training, evaluation and bench commands read: default files, file arguments, cleaned texts.

A data-file argument is ``PATH[:WEIGHT][:three-way|:negatives]``. Files are binary (0 negative, 1 positive) unless
marked ``three-way`` (0 negative, 1 neutral, 2 positive): the kind is declared, never guessed from the labels present,
because a three-way file that happens to hold only 0s and 1s would otherwise be misread as negative/positive.
``negatives`` keeps only a moderation file's rows labelled 0: a head for one signal can learn what is *not* it from
another signal's data (OLID's inoffensive tweets for a threat head) without reading that signal as its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from classifier.text import prepare_text

if TYPE_CHECKING:
    from classifier.evaluation.data import LabelledData

SHARED_DATA = Path("../shared/data")
THREE_WAY, BINARY, NEGATIVES = "three-way", "binary", "negatives"
#: The tweets' sample weight in the shipped heads' training (SST-2 rows weigh 1).
TWEETS_WEIGHT = 1.0
DEFAULT_TRAIN = str(SHARED_DATA / "sst2/train.tsv")
DEFAULT_DEV = str(SHARED_DATA / "sst2/dev.tsv")
DEFAULT_EXTRA = (f"{SHARED_DATA / 'tweeteval/val_3class.tsv'}:{TWEETS_WEIGHT:g}:{THREE_WAY}",)
LABELS_HELP = (
    f"a file is binary (labels 0 negative, 1 positive) unless its argument ends in ':{THREE_WAY}' "
    "(labels 0 negative, 1 neutral, 2 positive)"
)


@dataclass(frozen=True)
class DataArgument:
    """A parsed ``PATH[:WEIGHT][:three-way|:negatives]`` argument."""

    path: Path
    weight: float = 1.0
    three_way: bool = False
    negatives_only: bool = False

    @classmethod
    def parse(cls, argument: str, weighted: bool = False) -> DataArgument:
        """Split the suffixes off the file name (a folder's name may hold ':', a suffix is never a path)."""
        folder, _, name = argument.rpartition("/")
        file_name, *suffixes = name.split(":")
        weight, three_way, negatives_only = 1.0, False, False
        for suffix in suffixes:
            if suffix in (THREE_WAY, BINARY):
                three_way = suffix == THREE_WAY
                continue
            if suffix == NEGATIVES:
                negatives_only = True
                continue
            try:
                weight = float(suffix)
            except ValueError:
                weight = math.nan
            if not weighted or not (math.isfinite(weight) and weight > 0):
                expected = "a positive weight or " if weighted else ""
                raise ValueError(
                    f"{argument!r}: unknown suffix {suffix!r} (expected {expected}'{THREE_WAY}' or '{NEGATIVES}')"
                )
        if three_way and negatives_only:
            raise ValueError(f"{argument!r}: '{NEGATIVES}' is for a moderation file, not a three-way one")
        if not file_name:
            raise ValueError(f"{argument!r}: no file name")
        path = Path(f"{folder}/{file_name}" if folder or argument.startswith("/") else file_name)
        return cls(path, weight, three_way, negatives_only)

    def load(self, signal: bool = False) -> LabelledData:
        """The file's labelled texts; ``signal``: a moderation file (0 other, 1 the signal)."""
        from classifier.evaluation.data import load_tsv

        data = load_tsv(self.path, three_way=self.three_way, signal=signal)
        if not self.negatives_only:
            return data
        if not signal:
            raise ValueError(f"{self.path}: '{NEGATIVES}' keeps a moderation file's 0 rows; this head is sentiment")
        return data.only(data.labels == 0)


def prepared(data: LabelledData) -> list[str]:
    """The data's texts cleaned as the bot cleans messages (the cache's keys)."""
    return [prepare_text(text) for text in data.texts]
