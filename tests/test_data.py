"""Labelled TSV files and the evaluation metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from classifier.data import DataFormatError, load_tsv
from classifier.metrics import classification_report, expected_calibration_error
from tests.conftest import SST2_DEV


def test_load_tsv_reads_sentences_labels_and_hash(tmp_path: Path) -> None:
    raw = 'a good film\t1\n\n"a ""quoted"" one"\t0\nwith\ttabs inside\t1\r\n'
    path = tmp_path / "data.tsv"
    path.write_bytes(raw.encode())
    data = load_tsv(path)
    assert data.texts == ["a good film", 'a "quoted" one', "with\ttabs inside"]
    assert data.labels.tolist() == [1, 0, 1] and data.labels.dtype == np.int64
    assert data.sha256 == hashlib.sha256(raw.encode()).hexdigest()
    assert len(data) == 3 and data.source == str(path)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("fine\t1\nno tab here\n", 2),
        ("fine\t1\nok\t0\nbad label\t2\n", 3),
        ("fine\t1\n\t1\n", 2),
        ("fine\t1\nlabel missing\t\n", 2),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, content: str, line: int) -> None:
    path = tmp_path / "broken.tsv"
    path.write_text(content)
    with pytest.raises(DataFormatError) as caught:
        load_tsv(path)
    assert str(caught.value).startswith(f"{path}:{line}:")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bytes.tsv"
    path.write_bytes(b"ok\t1\nfine\t0\nbad \xff byte\t1\n")
    with pytest.raises(DataFormatError, match=r"bytes\.tsv:3: not valid UTF-8"):
        load_tsv(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot read .*missing.tsv"):
        load_tsv(tmp_path / "missing.tsv")
    (tmp_path / "empty.tsv").write_text("\n\n")
    with pytest.raises(DataFormatError, match="no labelled lines"):
        load_tsv(tmp_path / "empty.tsv")


def test_shared_sst2_dev_loads() -> None:
    data = load_tsv(SST2_DEV)
    assert len(data) > 800 and set(data.labels.tolist()) == {0, 1}


def test_classification_report_numbers() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.05, 0.2, 0.7, 0.9, 0.6, 0.4])
    report = classification_report(labels, p)
    assert report.n == 6
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.confusion == [[2, 1], [1, 2]]
    assert report.per_class["negative"]["precision"] == pytest.approx(2 / 3)
    assert report.per_class["positive"]["recall"] == pytest.approx(2 / 3)
    assert report.per_class["positive"]["support"] == 3
    assert report.negative_precision_at_0_9 == 1.0  # only p=0.05 has p_negative >= 0.9
    assert report.negative_recall_at_0_9 == pytest.approx(1 / 3)
    assert set(report.to_json()) >= {"n", "accuracy", "per_class", "confusion", "ece"}


def test_expected_calibration_error() -> None:
    labels = np.array([1, 1, 0, 0])
    assert expected_calibration_error(labels, np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(1.0)
