"""Labelled TSV files (binary and three-way) and the evaluation metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from classifier.evaluation.data import DataFormatError, load_tsv
from classifier.evaluation.metrics import calibration_noise_floor, classification_report, expected_calibration_error
from classifier.heads.sentiment import NEGATIVE, NEUTRAL, POSITIVE
from tests.support.helpers import CHAT_SETS, SST2_DEV


def test_load_tsv_reads_sentences_labels_and_hash(tmp_path: Path) -> None:
    raw = 'a good film\t1\n\n"a ""quoted"" one"\t0\nwith\ttabs inside\t1\r\n'
    path = tmp_path / "data.tsv"
    path.write_bytes(raw.encode())
    data = load_tsv(path)
    assert data.texts == ["a good film", 'a "quoted" one', "with\ttabs inside"]
    assert data.labels.tolist() == [POSITIVE, NEGATIVE, POSITIVE] and data.labels.dtype == np.int64  # 1 = positive
    assert data.sha256 == hashlib.sha256(raw.encode()).hexdigest()
    assert len(data) == 3 and data.source == str(path) and not data.three_way


def test_three_way_file_is_read_only_when_declared(tmp_path: Path) -> None:
    path = tmp_path / "tweets.tsv"
    path.write_text("so bad\t0\nat noon\t1\nso good\t2\n")
    data = load_tsv(path, three_way=True)
    assert data.three_way and data.labels.tolist() == [NEGATIVE, NEUTRAL, POSITIVE]
    with pytest.raises(DataFormatError, match=r"tweets\.tsv:3: .*label 0 or 1 \(binary file; a three-way file must be"):
        load_tsv(path)  # never guessed from the labels: undeclared, it is binary, and 2 is an error
    only_zeros_and_ones = tmp_path / "calm.tsv"
    only_zeros_and_ones.write_text("so bad\t0\nat noon\t1\n")
    assert load_tsv(only_zeros_and_ones, three_way=True).labels.tolist() == [NEGATIVE, NEUTRAL]  # 1 stays neutral


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


def test_shared_data_and_chat_sets_load() -> None:
    data = load_tsv(SST2_DEV)
    assert len(data) > 800 and set(data.labels.tolist()) == {NEGATIVE, POSITIVE}
    tweets = load_tsv(SST2_DEV.parents[1] / "tweeteval" / "val_3class.tsv", three_way=True)
    assert len(tweets) == 2000 and set(tweets.labels.tolist()) == {NEGATIVE, NEUTRAL, POSITIVE}
    expected = {"neutral_chat.tsv": NEUTRAL, "negative_chat.tsv": NEGATIVE, "positive_slang_chat.tsv": POSITIVE}
    for name, label in expected.items():
        chat = load_tsv(CHAT_SETS / name, three_way=True)
        assert set(chat.labels.tolist()) == {label} and len(set(chat.texts)) == len(chat), name
    assert len(load_tsv(CHAT_SETS / "neutral_chat.tsv", three_way=True)) >= 40



def test_multilingual_chat_set_covers_ten_languages_and_all_three_labels() -> None:
    """Each line of ``multilingual_chat.languages`` names the language of the same line of the TSV."""
    chat = load_tsv(CHAT_SETS / "multilingual_chat.tsv", three_way=True)
    languages = (CHAT_SETS / "multilingual_chat.languages").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(chat) == len(languages) >= 60 and len(set(chat.texts)) == len(chat)
    assert len(set(languages)) >= 10 and "en" not in languages
    for language in set(languages):
        labels = {int(label) for label, lang in zip(chat.labels, languages, strict=True) if lang == language}
        assert labels == {NEGATIVE, NEUTRAL, POSITIVE}, language

def binary(p_positive: list[float]) -> np.ndarray:
    """Probabilities of a binary head: no neutral."""
    p = np.asarray(p_positive)
    return np.stack([1 - p, np.zeros_like(p), p], axis=1)


def test_classification_report_numbers_on_binary_data() -> None:
    labels = np.array([NEGATIVE] * 3 + [POSITIVE] * 3)
    report = classification_report(labels, binary([0.05, 0.2, 0.7, 0.9, 0.6, 0.4]), three_way=False)
    assert report.n == 6 and report.classes == ["negative", "positive"] and not report.three_way
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.confusion == [[2, 1], [1, 2]]
    assert report.per_class["negative"]["precision"] == pytest.approx(2 / 3)
    assert report.per_class["positive"]["recall"] == pytest.approx(2 / 3)
    assert report.per_class["positive"]["support"] == 3
    assert report.flags == 1 and report.negative_precision_at_flag == 1.0  # only p=0.05 has p_negative >= 0.9
    assert report.negative_recall_at_flag == pytest.approx(1 / 3)
    assert report.macro_recall is None and report.binary_accuracy is None
    expected = {"n", "accuracy", "per_class", "confusion", "ece", "ece_noise_floor", "flags_at_0_9"}
    assert set(report.to_json()) >= expected


def test_binary_data_compares_negative_with_positive_only() -> None:
    """A three-way head on binary data: a text it calls neutral still counts by its negative-vs-positive side."""
    labels = np.array([NEGATIVE, NEGATIVE, POSITIVE, POSITIVE])
    p = np.array([[0.3, 0.6, 0.1], [0.95, 0.04, 0.01], [0.1, 0.5, 0.4], [0.45, 0.1, 0.45]])
    report = classification_report(labels, p, three_way=False)
    assert report.accuracy == 1.0 and report.confusion == [[2, 0], [0, 2]]  # a tie goes to positive
    assert report.label_shares == {"negative": 0.5, "neutral": 0.5, "positive": 0.0}  # argmax: ties to negative
    assert report.flags == 1 and report.negative_recall_at_flag == 0.5


def test_classification_report_numbers_on_three_way_data() -> None:
    labels = np.array([NEGATIVE, NEGATIVE, NEUTRAL, NEUTRAL, NEUTRAL, POSITIVE])
    p = np.array([
        [0.92, 0.05, 0.03],  # negative, flagged
        [0.30, 0.60, 0.10],  # called neutral
        [0.20, 0.70, 0.10],
        [0.91, 0.08, 0.01],  # a neutral text flagged: a false flag
        [0.10, 0.30, 0.60],  # called positive
        [0.05, 0.15, 0.80],
    ])
    report = classification_report(labels, p, three_way=True)
    assert report.classes == ["negative", "neutral", "positive"]
    assert report.confusion == [[1, 1, 0], [1, 1, 1], [0, 0, 1]]
    assert report.accuracy == pytest.approx(3 / 6)
    assert report.macro_recall == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)
    assert report.binary_accuracy == 1.0  # the negative and the positive rows, negative vs positive
    assert report.per_class["neutral"] == {"precision": 0.5, "recall": pytest.approx(1 / 3), "f1": 0.4, "support": 3}
    assert report.flags == 2 and report.negative_precision_at_flag == 0.5 and report.negative_recall_at_flag == 0.5
    only_neutral = classification_report(labels[2:5], p[2:5], three_way=True)
    assert only_neutral.flags == 1 and only_neutral.negative_recall_at_flag is None


def test_expected_calibration_error() -> None:
    labels = np.array([POSITIVE, POSITIVE, NEGATIVE, NEGATIVE])
    assert expected_calibration_error(labels, binary([1.0, 1.0, 0.0, 0.0]), False) == pytest.approx(0.0)
    assert expected_calibration_error(labels, binary([0.0, 0.0, 1.0, 1.0]), False) == pytest.approx(1.0)
    three = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert expected_calibration_error(labels, three, True) == pytest.approx(0.25)  # one confident mistake in four


def test_calibration_noise_floor_shrinks_with_rows_and_vanishes_for_certain_predictions() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4000, 3)) * 2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    small, large = calibration_noise_floor(p[:300], True), calibration_noise_floor(p, True)
    assert 0.03 < small < 0.12 and large < small / 2  # binned ECE's bias falls roughly as 1/sqrt(n)
    assert calibration_noise_floor(binary([1.0, 1.0, 0.0, 0.0]), False) == pytest.approx(0.0)
    assert 0.0 < calibration_noise_floor(binary([0.7] * 300), False) < 0.1
