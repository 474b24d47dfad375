"""Labelled data files: one ``sentence<TAB>label`` per line, no header.

A file is binary (0 negative, 1 positive; SST-2) or three-way (0 negative, 1 neutral, 2 positive; TweetEval).
Which one is never guessed from the labels, since a three-way file that happens to hold only 0s and 1s would
read as negative/positive: the caller says so. Labels come out as class indices of
:data:`classifier.heads.sentiment.CLASSES`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.heads.sentiment import BINARY_TO_CLASS


class DataFormatError(ValueError):
    """A data file is unreadable or has a malformed line; the message names the file and line."""


@dataclass(frozen=True)
class LabelledData:
    """Texts, their class indices, whether the file was three-way, and the SHA-256 of the file they came from."""

    texts: list[str]
    labels: np.ndarray
    sha256: str
    source: str
    three_way: bool = False

    def __len__(self) -> int:
        return len(self.texts)

    def only(self, keep: np.ndarray) -> LabelledData:
        """The rows where ``keep`` is true (same file digest: a recipe names the file it read)."""
        rows = np.flatnonzero(keep)
        return LabelledData([self.texts[i] for i in rows], self.labels[rows], self.sha256, self.source, self.three_way)


def load_tsv(path: str | Path, three_way: bool = False, signal: bool = False) -> LabelledData:
    """Read a labelled TSV file; blank lines are skipped, anything else malformed is an error.

    ``signal``: a moderation file, whose 0 and 1 (other, the signal) are kept as they are.
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise DataFormatError(f"cannot read {file}: {error.strerror or error}") from error
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataFormatError(f"{file}:{line}: not valid UTF-8") from None
    allowed = ("0", "1", "2") if three_way else ("0", "1")
    expected = "0, 1 or 2 (three-way file)" if three_way else "0 or 1 (binary file; a three-way file must be declared)"
    texts: list[str] = []
    labels: list[int] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        if not tab or label.strip() not in allowed or not text.strip():
            raise DataFormatError(
                f"{file}:{number}: expected 'sentence<TAB>label' with label {expected}, got {line[:80]!r}"
            )
        texts.append(_unquote(text.strip()))
        labels.append(int(label) if three_way or signal else BINARY_TO_CLASS[int(label)])
    if not texts:
        raise DataFormatError(f"{file}: no labelled lines")
    digest = hashlib.sha256(raw).hexdigest()
    return LabelledData(texts, np.asarray(labels, dtype=np.int64), digest, str(file), three_way)


def _unquote(text: str) -> str:
    """Drop the CSV-style double quotes some exports wrap around a sentence."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"')
    return text
