"""Data-file arguments: the ``negatives`` suffix keeps a moderation file's harmless rows, and only makes sense there."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.datasets import DataArgument
from tests.support.helpers import write_tsv


def test_negatives_keeps_only_the_rows_labelled_zero(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "offensive.tsv", [("you are awful", 1), ("nice match", 0), ("see you at 8", 0)])
    argument = DataArgument.parse(f"{path}:3:negatives", weighted=True)
    assert (argument.weight, argument.three_way, argument.negatives_only) == (3.0, False, True)
    data = argument.load(signal=True)
    assert data.texts == ["nice match", "see you at 8"] and data.labels.tolist() == [0, 0]
    assert data.sha256 == DataArgument.parse(str(path)).load(signal=True).sha256  # the file read, not the rows kept


def test_negatives_is_refused_where_it_means_nothing(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "sentiment.tsv", [("great", 1), ("bad", 0)])
    with pytest.raises(ValueError, match="not a three-way one"):
        DataArgument.parse(f"{path}:three-way:negatives")
    with pytest.raises(ValueError, match="this head is sentiment"):
        DataArgument.parse(f"{path}:negatives").load(signal=False)
