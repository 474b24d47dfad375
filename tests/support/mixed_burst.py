"""``python -m tests.support.mixed_burst``: (re)write ``tests/data/bench/mixed_burst.tsv`` from ``../shared/data``.

The mixed-language burst of ``moodbot bench --compare``: :data:`PER_PART` texts from each part of :data:`PARTS`
(English tweets, Russian VK posts, romanised Hindi, Arabic and Spanish tweets), each the first :data:`PER_PART`
distinct texts of its file after a shuffle with :data:`SEED`, then all of them shuffled together with the same seed,
so a burst of its first N lines is mixed throughout. Validation files only (RuSentiment's random posts have no
split); ``tests/data/bench/README.md`` names each part's source and licence. Three-way labels, ``text<TAB>label``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from classifier.evaluation.data import load_tsv
from classifier.text import prepare_text
from tests.support.helpers import REPO_ROOT, SHARED_DATA

SEED = 15
PER_PART = 200
PARTS = {
    "en": SHARED_DATA / "tweeteval" / "val_3class.tsv",
    "ru": SHARED_DATA / "multilingual" / "rusentiment" / "random_posts.tsv",
    "hi": SHARED_DATA / "multilingual" / "umsab" / "hindi_val.tsv",
    "ar": SHARED_DATA / "multilingual" / "umsab" / "arabic_val.tsv",
    "es": SHARED_DATA / "multilingual" / "umsab" / "spanish_val.tsv",
}
MIXED_BURST = REPO_ROOT / "tests" / "data" / "bench" / "mixed_burst.tsv"


def mixed_burst_lines(parts: dict[str, Path] = PARTS, per_part: int = PER_PART, seed: int = SEED) -> list[str]:
    """The file's lines (without newlines): ``per_part`` texts of each part, distinct once cleaned, mixed."""
    seen: set[str] = set()
    rows: list[tuple[str, int]] = []
    for path in parts.values():
        data = load_tsv(path, three_way=True)
        pairs = list(zip(data.texts, data.labels.tolist(), strict=True))
        random.Random(seed).shuffle(pairs)
        taken = 0
        for text, label in pairs:
            try:
                key = prepare_text(text)
            except ValueError:  # nothing left once cleaned: the bot would not classify it
                continue
            if key in seen or "\t" in text or (len(text) >= 2 and text[0] == text[-1] == '"'):  # not round-trip
                continue
            seen.add(key)
            rows.append((text, label))
            taken += 1
            if taken == per_part:
                break
        if taken < per_part:
            raise ValueError(f"{path}: only {taken} usable distinct texts, {per_part} wanted")
    random.Random(seed).shuffle(rows)
    return [f"{text}\t{label}" for text, label in rows]


def main() -> int:
    missing = [str(path) for path in PARTS.values() if not path.is_file()]
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    MIXED_BURST.parent.mkdir(parents=True, exist_ok=True)
    MIXED_BURST.write_text("\n".join(mixed_burst_lines()) + "\n", encoding="utf-8")
    print(f"wrote {MIXED_BURST}: {PER_PART} texts from each of {', '.join(PARTS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
