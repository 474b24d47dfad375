"""The JSON logistic head: round trip, encoder fingerprint check, tampering, malformed files, no pickle; training."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from classifier.data import load_tsv
from classifier.head import DEFAULT_HEAD_PATH, EncoderSpec, HeadError, LogisticHead, _checksum
from classifier.pipeline import SentimentClassifier
from classifier.training import FeatureSet, TrainingOptions, train_head
from tests.conftest import NEGATIVE, POSITIVE


def test_head_json_round_trip_gives_identical_predictions(tiny_head, tiny_encoder, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "head.json"
    tiny_head.save(path)
    loaded = LogisticHead.load(path)
    features = tiny_encoder.embed(POSITIVE + NEGATIVE)
    assert np.array_equal(loaded.predict_proba(features), tiny_head.predict_proba(features))
    assert np.array_equal(loaded.weights, tiny_head.weights) and loaded.bias == tiny_head.bias
    assert loaded.encoder == tiny_head.encoder == EncoderSpec.of(tiny_encoder)
    assert loaded.to_dict() == tiny_head.to_dict()
    assert not list(path.parent.glob("*.tmp"))  # written atomically
    saved_again = tmp_path / "again.json"
    loaded.save(saved_again)
    assert saved_again.read_bytes() == path.read_bytes()


def test_head_file_is_plain_json_with_its_provenance(tiny_head_path: Path, tiny_encoder) -> None:
    data = json.loads(tiny_head_path.read_text())
    assert data["format"] == "moodbot-head" and data["classes"] == ["negative", "positive"]
    assert data["encoder"]["fingerprint"] == tiny_encoder.fingerprint
    assert data["feature"] == {"pooling": "cls@-1", "dim": 32, "standardize": True}
    assert len(data["weights"]) == len(data["mean"]) == len(data["scale"]) == 32
    assert data["checksum"].startswith("sha256:")
    assert {"C", "cv_accuracy", "dev_accuracy"} <= set(data["training"])


def test_shipped_head_loads_and_matches_the_bundled_encoder(shipped_head, minilm_encoder) -> None:
    shipped_head.check_encoder(minilm_encoder)
    assert shipped_head.dim == minilm_encoder.dim
    data = json.loads(DEFAULT_HEAD_PATH.read_text())
    assert {"cv_accuracy", "dev_accuracy", "date", "data"} <= set(data["training"])
    assert all(len(entry["sha256"]) == 64 for entry in data["training"]["data"])


def test_fingerprint_mismatch_says_to_run_moodbot_train(tiny_head, other_encoder, tmp_path: Path) -> None:
    from cache import EmbeddingCache

    with pytest.raises(HeadError) as caught:
        tiny_head.check_encoder(other_encoder)
    message = str(caught.value)
    assert "moodbot train" in message and other_encoder.fingerprint in message and tiny_head.encoder.fingerprint in message
    cache = EmbeddingCache(tmp_path / "c", other_encoder.cache_namespace, dim=other_encoder.dim)
    try:
        with pytest.raises(HeadError, match="moodbot train"):
            SentimentClassifier(other_encoder, tiny_head, cache)
    finally:
        cache.close()


def test_loading_through_the_pipeline_with_the_wrong_model_fails(tiny_head_path: Path, other_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(HeadError, match="moodbot train --model tiny-distilbert-b"):
        SentimentClassifier.load(str(other_model_dir), tiny_head_path, tmp_path / "cache", device="cpu")


def _edit(path: Path, target: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    target.write_text(json.dumps(data, indent=1))
    return target


def test_tampered_weight_is_rejected(tiny_head_path: Path, tmp_path: Path) -> None:
    def tamper(data):
        data["weights"][3] += 0.5

    path = _edit(tiny_head_path, tmp_path / "tampered.json", tamper)
    with pytest.raises(HeadError, match=r"tampered\.json.*checksum mismatch: the file was modified"):
        LogisticHead.load(path)


def test_tampered_head_with_recomputed_checksum_still_validated(tiny_head_path: Path, tmp_path: Path) -> None:
    """Someone who also fixes the checksum still cannot load a structurally invalid head."""

    def resign(change):
        def apply(data):
            change(data)
            data["checksum"] = _checksum({k: v for k, v in data.items() if k != "checksum"})

        return apply

    cases = {
        "short.json": (lambda d: d["weights"].pop(), "same length"),
        "zero-scale.json": (lambda d: d["scale"].__setitem__(0, 0.0), "scale values must be positive"),
        "nan.json": (lambda d: d["weights"].__setitem__(0, float("nan")), "finite numbers"),
        "bias.json": (lambda d: d.__setitem__("bias", "1.0"), "finite numbers"),
        "version.json": (lambda d: d.__setitem__("version", 99), "unsupported version"),
    }
    for name, (change, message) in cases.items():
        path = _edit(tiny_head_path, tmp_path / name, resign(change))
        with pytest.raises(HeadError, match=message):
            LogisticHead.load(path)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"[]", b'{"format": "something-else"}', b"\xff\xfe\x00garbage", b'{"format": "moodbot-head", "version": 1}'],
)
def test_malformed_head_files_are_clear_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(HeadError, match=r"invalid head file .*bad\.json"):
        LogisticHead.load(path)


def test_missing_head_file(tmp_path: Path) -> None:
    with pytest.raises(HeadError, match="cannot read head file .*nope.json"):
        LogisticHead.load(tmp_path / "nope.json")


class _Tripwire:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_head_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "UNPICKLED"
    path = tmp_path / "head.pkl"
    path.write_bytes(pickle.dumps(_Tripwire(marker)))
    with pytest.raises(HeadError):
        LogisticHead.load(path)
    assert not marker.exists()


def test_training_is_deterministic_and_reports_held_out_numbers(tiny_encoder, tiny_data_dir: Path) -> None:
    train = load_tsv(tiny_data_dir / "train.tsv")
    features = tiny_encoder.embed(train.texts)
    sets = [FeatureSet("a", features[::2], train.labels[::2]), FeatureSet("b", features[1::2], train.labels[1::2], 0.5)]
    dev = FeatureSet("dev", features, train.labels)
    options = TrainingOptions(c_grid=(0.01, 1.0), folds=2)
    first = train_head(EncoderSpec.of(tiny_encoder), sets, dev, options, {"date": "2024-01-01"})
    second = train_head(EncoderSpec.of(tiny_encoder), sets, dev, options, {"date": "2024-01-01"})
    assert first.head.to_dict() == second.head.to_dict()
    report = first.report
    assert report["C"] in (0.01, 1.0) and set(report["cv_accuracy_by_C"]) == {"0.01", "1.0"}
    assert report["cv_accuracy"] == max(report["cv_accuracy_by_C"].values())
    assert set(report["cv_accuracy_by_set"]) == {"a", "b"}
    assert 0.0 <= report["dev_accuracy"] <= 1.0 and report["folds"] == 2
    assert first.head.training["date"] == "2024-01-01" and first.head.dim == 32
    p = first.head.predict_proba(features)
    assert p.shape == (len(train),) and np.all((p > 0) & (p < 1))


def test_training_separates_separable_features(tiny_encoder) -> None:
    """On features that carry the label the fitted head is right, calibrated probabilities included."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 40)
    features = rng.standard_normal((80, 32)) + labels[:, None] * 3.0
    result = train_head(EncoderSpec.of(tiny_encoder), [FeatureSet("s", features, labels)], None, TrainingOptions(c_grid=(0.1,), folds=3))
    assert result.report["cv_accuracy"] == 1.0 and "dev_accuracy" not in result.report
    p = result.head.predict_proba(features)
    assert np.array_equal(p >= 0.5, labels == 1)
