"""Labelled data files: one ``sentence<TAB>label`` per line (label 0 = negative, 1 = positive), no header."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataFormatError(ValueError):
    """A data file is unreadable or has a malformed line; the message names the file and line."""


@dataclass(frozen=True)
class LabelledData:
    """Texts, their 0/1 labels, and the SHA-256 of the file they came from."""

    texts: list[str]
    labels: np.ndarray
    sha256: str
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def load_tsv(path: str | Path) -> LabelledData:
    """Read a labelled TSV file; blank lines are skipped, anything else malformed is an error."""
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
    texts: list[str] = []
    labels: list[int] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        if not tab or label.strip() not in ("0", "1") or not text.strip():
            raise DataFormatError(f"{file}:{number}: expected 'sentence<TAB>label' with label 0 or 1, got {line[:80]!r}")
        texts.append(_unquote(text.strip()))
        labels.append(int(label))
    if not texts:
        raise DataFormatError(f"{file}: no labelled lines")
    return LabelledData(texts, np.asarray(labels, dtype=np.int64), hashlib.sha256(raw).hexdigest(), str(file))


def _unquote(text: str) -> str:
    """Drop the CSV-style double quotes some exports wrap around a sentence."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"')
    return text
