"""The JSON logistic head: round trip, version-1 heads, encoder fingerprint check, tampering, malformed files,
no pickle; training (binary and three-way sets)."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from classifier.config import ClassifierConfig
from classifier.encoders.bundled import MINILM
from classifier.evaluation.data import load_tsv
from classifier.heads.logistic import HeadError, LogisticHead, _checksum
from classifier.heads.sentiment import CLASSES, NEGATIVE, NEUTRAL, POSITIVE
from classifier.heads.training import FeatureSet, TrainingOptions, train_head
from classifier.inference.classifier import Classifier, by_task
from tests.support.helpers import NEGATIVE_TEXTS, POSITIVE_TEXTS


def test_head_json_round_trip_gives_identical_predictions(tiny_head, tiny_encoder, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "head.json"
    tiny_head.save(path)
    loaded = LogisticHead.load(path)
    features = tiny_encoder.embed(POSITIVE_TEXTS + NEGATIVE_TEXTS)
    assert np.array_equal(loaded.predict_proba(features), tiny_head.predict_proba(features))
    assert np.array_equal(loaded.weights, tiny_head.weights) and np.array_equal(loaded.biases, tiny_head.biases)
    assert loaded.temperature == tiny_head.temperature and loaded.classes == tiny_head.classes
    assert loaded.encoder == tiny_head.encoder == tiny_encoder.identity
    assert loaded.to_dict() == tiny_head.to_dict()
    assert not list(path.parent.glob("*.tmp"))  # written atomically
    saved_again = tmp_path / "again.json"
    loaded.save(saved_again)
    assert saved_again.read_bytes() == path.read_bytes()


def test_head_file_is_plain_json_with_its_provenance(tiny_head_path: Path, tiny_encoder) -> None:
    data = json.loads(tiny_head_path.read_text())
    assert data["format"] == "moodbot-head" and data["version"] == 3 and data["task"] == "sentiment"
    assert data["classes"] == ["negative", "positive"]  # trained on binary data only: no neutral class to learn
    assert data["encoder"]["fingerprint"] == tiny_encoder.fingerprint
    assert data["feature"] == {"pooling": "cls@-1", "dim": 32, "standardize": True}
    assert [len(row) for row in data["weights"]] == [32, 32] and len(data["biases"]) == 2
    assert len(data["mean"]) == len(data["scale"]) == 32
    assert data["calibration"]["method"] == "temperature" and data["calibration"]["temperature"] > 0
    assert data["checksum"].startswith("sha256:")
    assert {"C", "cv_score", "cv_by_set", "dev_accuracy", "temperature"} <= set(data["training"])


def test_shipped_head_loads_and_matches_the_bundled_encoder(shipped_head, minilm_encoder) -> None:
    shipped_head.check_encoder(minilm_encoder)
    assert shipped_head.dim == minilm_encoder.dim
    data = json.loads(MINILM.head_path.read_text())
    assert {"dev_accuracy", "date", "data"} <= set(data["training"])
    assert all(len(entry["sha256"]) == 64 for entry in data["training"]["data"])


def test_fingerprint_mismatch_says_to_run_moodbot_train(tiny_head, other_encoder, tmp_path: Path) -> None:
    from cache import EmbeddingCache

    with pytest.raises(HeadError) as caught:
        tiny_head.check_encoder(other_encoder)
    message = str(caught.value)
    assert (
        "moodbot train" in message and other_encoder.fingerprint in message and tiny_head.encoder.fingerprint in message
    )
    cache = EmbeddingCache(tmp_path / "c", other_encoder.cache_namespace, dim=other_encoder.dim)
    try:
        with pytest.raises(HeadError, match="moodbot train"):
            Classifier(other_encoder, by_task(tiny_head), cache)
    finally:
        cache.close()


def test_loading_through_the_pipeline_with_the_wrong_model_fails(
    tiny_head_path: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(HeadError, match="moodbot train --model tiny-distilbert-b"):
        Classifier.load(
            ClassifierConfig(str(other_model_dir), tiny_head_path, tmp_path / "cache", device="cpu")
        )


def _edit(path: Path, target: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    target.write_text(json.dumps(data, indent=1))
    return target


def test_tampered_weight_is_rejected(tiny_head_path: Path, tmp_path: Path) -> None:
    def tamper(data):
        data["weights"][0][3] += 0.5

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
        "short.json": (lambda d: d["mean"].pop(), "same length"),
        "ragged.json": (lambda d: d["weights"][0].pop(), "weights must be a non-empty matrix"),
        "rows.json": (lambda d: d["weights"].append(d["weights"][0]), r"weights must be a \[2, dim\] matrix"),
        "zero-scale.json": (lambda d: d["scale"].__setitem__(0, 0.0), "scale values must be positive"),
        "nan.json": (lambda d: d["weights"][1].__setitem__(0, float("nan")), "finite numbers"),
        "bias.json": (lambda d: d["biases"].__setitem__(0, "1.0"), "finite numbers"),
        "temperature.json": (lambda d: d["calibration"].__setitem__("temperature", 0.0), "must be positive"),
        "classes.json": (lambda d: d.__setitem__("classes", ["positive", "negative"]), "classes must be one of"),
        "version.json": (lambda d: d.__setitem__("version", 99), "unsupported version"),
    }
    for name, (change, message) in cases.items():
        path = _edit(tiny_head_path, tmp_path / name, resign(change))
        with pytest.raises(HeadError, match=message):
            LogisticHead.load(path)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"format": "something-else"}',
        b"\xff\xfe\x00garbage",
        b'{"format": "moodbot-head", "version": 1}',
    ],
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
    first = train_head(tiny_encoder.identity, sets, dev, options, {"date": "2024-01-01"})
    second = train_head(tiny_encoder.identity, sets, dev, options, {"date": "2024-01-01"})
    assert first.head.to_dict() == second.head.to_dict()
    report = first.report
    assert report["C"] in (0.01, 1.0) and set(report["cv_score_by_C"]) == {"0.01", "1.0"}
    assert report["cv_score"] == max(report["cv_score_by_C"].values())
    assert set(report["cv_by_set"]) == {"a", "b"} and report["classes"] == ["negative", "positive"]
    assert all(set(figures) == {"accuracy", "ece"} for figures in report["cv_by_set"].values())  # binary sets
    assert 0.0 <= report["dev_accuracy"] <= 1.0 and report["folds"] == 2 and report["dev_neutral_share"] == 0.0
    assert first.head.training["date"] == "2024-01-01" and first.head.dim == 32
    p = first.head.probabilities_for(features, CLASSES)
    assert p.shape == (len(train), 3) and np.all(p[:, NEUTRAL] == 0.0)
    assert np.all((p[:, [NEGATIVE, POSITIVE]] > 0) & (p[:, [NEGATIVE, POSITIVE]] < 1))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_training_separates_separable_features(tiny_encoder) -> None:
    """On features that carry the label the fitted head is right, calibrated probabilities included."""
    rng = np.random.default_rng(0)
    labels = np.array([NEGATIVE, POSITIVE] * 40)
    features = rng.standard_normal((80, 32)) + (labels == POSITIVE)[:, None] * 3.0
    result = train_head(
        tiny_encoder.identity, [FeatureSet("s", features, labels)], None, TrainingOptions(c_grid=(0.1,), folds=3)
    )
    assert result.report["cv_by_set"]["s"]["accuracy"] == 1.0 and "dev_accuracy" not in result.report
    p = result.head.probabilities_for(features, CLASSES)
    assert np.array_equal(p.argmax(axis=1), labels)


def three_way_features(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Negative texts load on feature 0, positive ones on feature 1, neutral ones on neither."""
    features = rng.standard_normal((len(labels), 32)) * 0.5
    features[:, 0] += (labels == NEGATIVE) * 3.0
    features[:, 1] += (labels == POSITIVE) * 3.0
    return features


def test_three_way_training_with_a_binary_and_a_three_way_set(tiny_encoder, tmp_path: Path) -> None:
    """SST-2-like binary rows plus tweet-like three-way rows give a calibrated three-class head; the binary rows
    (which hold no neutral text) do not stop it from calling neutral texts neutral."""
    rng = np.random.default_rng(1)
    binary_labels = np.array([NEGATIVE, POSITIVE] * 100)
    three_labels = np.array([NEGATIVE, NEUTRAL, POSITIVE] * 30)
    sets = [
        FeatureSet("polar", three_way_features(rng, binary_labels), binary_labels),
        FeatureSet("tweets", three_way_features(rng, three_labels), three_labels, weight=2.0, three_way=True),
    ]
    dev_labels = np.array([NEGATIVE, POSITIVE] * 20)
    dev = FeatureSet("dev", three_way_features(rng, dev_labels), dev_labels)
    options = TrainingOptions(c_grid=(0.01, 0.1, 1.0), folds=3)
    result = train_head(tiny_encoder.identity, sets, dev, options)
    head, report = result.head, result.report
    assert head.three_way and head.classes == ("negative", "neutral", "positive") and head.temperature > 0
    assert report["classes"] == ["negative", "neutral", "positive"]
    assert [s["labels"] for s in report["sets"]] == ["binary", "three-way"]
    tweets = report["cv_by_set"]["tweets"]
    assert set(tweets) == {"accuracy", "accuracy_three_way", "macro_recall", "macro_f1", "recall", "ece"}
    assert set(tweets["recall"]) == {"negative", "neutral", "positive"} and tweets["macro_recall"] > 0.9
    assert report["cv_score"] == pytest.approx((report["cv_by_set"]["polar"]["accuracy"] + tweets["macro_recall"]) / 2)
    assert report["dev_accuracy"] > 0.9 and 0.0 <= report["dev_ece"] <= 1.0
    fresh = np.array([NEGATIVE, NEUTRAL, POSITIVE] * 20)
    p = head.predict_proba(three_way_features(rng, fresh))
    assert np.mean(p.argmax(axis=1) == fresh) > 0.9
    assert np.mean(p[fresh == NEUTRAL].argmax(axis=1) == NEUTRAL) > 0.9
    path = tmp_path / "three.json"
    head.save(path)
    assert np.array_equal(LogisticHead.load(path).predict_proba(dev.features), head.predict_proba(dev.features))

    # binary_rows="full": the binary rows also say "not neutral", so polar texts get less neutral probability
    full = train_head(tiny_encoder.identity, sets, dev, replace(options, binary_rows="full"))
    assert full.report["binary_rows"] == "full" and report["binary_rows"] == "partial"
    polar = sets[0].features
    assert full.head.predict_proba(polar)[:, NEUTRAL].mean() < head.predict_proba(polar)[:, NEUTRAL].mean()


def version_1_head(tiny_head: LogisticHead, weights: list[float], bias: float, slope: float, intercept: float) -> dict:
    """A head file as moodbot wrote it before three-way heads (format version 1)."""
    body = {
        "format": "moodbot-head", "version": 1, "classes": ["negative", "positive"],
        "encoder": tiny_head.encoder.to_json(), "feature": {"pooling": "cls@-1", "dim": 32, "standardize": True},
        "mean": [0.5] * 32, "scale": [2.0] * 32, "weights": weights, "bias": bias,
        "calibration": {"method": "platt", "slope": slope, "intercept": intercept},
        "training": {"C": 0.001, "cv_accuracy": 0.8},
    }
    return body | {"checksum": _checksum(body)}


def test_version_1_binary_head_still_loads_with_no_neutral(tiny_head, tiny_encoder, tmp_path: Path) -> None:
    weights = np.random.default_rng(2).standard_normal(32)
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(version_1_head(tiny_head, weights.tolist(), 0.3, 1.2, -0.1)))
    head = LogisticHead.load(path)
    assert head.classes == ("negative", "positive") and not head.three_way
    features = tiny_encoder.embed(["a fine day", "a bad day", "the meeting is at noon"])
    p = head.probabilities_for(features, CLASSES)
    logit = 1.2 * (((features.astype(np.float64) - 0.5) / 2.0) @ weights + 0.3) - 0.1
    expected = 1.0 / (1.0 + np.exp(-logit))  # what version 1 computed
    np.testing.assert_allclose(p[:, POSITIVE], expected, rtol=1e-9)
    np.testing.assert_allclose(p[:, NEGATIVE], 1.0 - expected, rtol=1e-9)
    assert np.all(p[:, NEUTRAL] == 0.0)
    assert head.training == {"C": 0.001, "cv_accuracy": 0.8}
    resaved = tmp_path / "v3.json"
    head.save(resaved)  # saving writes the current version, with the same predictions
    assert json.loads(resaved.read_text())["version"] == 3
    np.testing.assert_allclose(LogisticHead.load(resaved).probabilities_for(features, CLASSES), p, rtol=1e-12)


def test_version_2_head_loads_as_a_sentiment_head(tiny_head, tiny_encoder, tmp_path: Path) -> None:
    """A head written before heads named their task (version 2, no ``task``) is a sentiment head, same numbers."""
    from classifier.heads.logistic import _checksum

    body = {k: v for k, v in tiny_head.to_dict().items() if k not in ("checksum", "task")} | {"version": 2}
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(body | {"checksum": _checksum(body)}))
    loaded = LogisticHead.load(path)
    features = tiny_encoder.embed(["a fine day", "a bad day"])
    assert loaded.task == "sentiment" and loaded.classes == tiny_head.classes
    assert np.array_equal(loaded.predict_proba(features), tiny_head.predict_proba(features))


def test_a_moderation_head_has_its_own_classes(tiny_head) -> None:
    """A head declares its task; its classes must be that task's (a moderation head: other / its signal)."""
    weights = np.vstack([np.zeros(tiny_head.dim), np.ones(tiny_head.dim)])
    head = LogisticHead(tiny_head.encoder, weights, np.zeros(2), tiny_head.mean, tiny_head.scale,
                        classes=("other", "offensive"), task="offensive")
    p = head.predict_proba(tiny_head.mean[None, :] + tiny_head.scale)  # one standard deviation up on every feature
    assert p.shape == (1, 2) and p[0, 1] > 0.99
    with pytest.raises(ValueError, match="offensive head's classes must be one of"):
        LogisticHead(tiny_head.encoder, weights, np.zeros(2), tiny_head.mean, tiny_head.scale,
                     classes=("negative", "positive"), task="offensive")
    with pytest.raises(ValueError, match="unknown head task 'spam'"):
        LogisticHead(tiny_head.encoder, weights, np.zeros(2), tiny_head.mean, tiny_head.scale, task="spam")


def test_malformed_version_1_heads_are_clear_errors(tiny_head, tmp_path: Path) -> None:
    cases = {
        "short.json": (version_1_head(tiny_head, [0.1] * 31, 0.0, 1.0, 0.0), "same length"),
        "slope.json": (version_1_head(tiny_head, [0.1] * 32, 0.0, float("inf"), 0.0), "finite number"),
        "bias.json": (version_1_head(tiny_head, [0.1] * 32, "0.3", 1.0, 0.0), "bias must be a finite number"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(data))
        with pytest.raises(HeadError, match=message):
            LogisticHead.load(tmp_path / name)


def test_balanced_three_way_weights_the_classes_inside_three_way_sets(tiny_encoder) -> None:
    """With neutral the majority of the three-way set, balancing it lowers the neutral class's prior (its bias
    relative to the others) and leaves the binary set's rows at their weight."""
    rng = np.random.default_rng(3)
    binary_labels = np.array([NEGATIVE, POSITIVE] * 40)
    three_labels = np.array([NEUTRAL] * 60 + [NEGATIVE] * 10 + [POSITIVE] * 20)
    sets = [
        FeatureSet("polar", three_way_features(rng, binary_labels), binary_labels),
        FeatureSet("tweets", three_way_features(rng, three_labels), three_labels, three_way=True),
    ]
    plain, balanced = (
        train_head(tiny_encoder.identity, sets, None, TrainingOptions(c_grid=(0.1,), folds=3, class_weight=weighting))
        for weighting in (None, "balanced-three-way")
    )
    assert balanced.report["class_weight"] == "balanced-three-way"

    def neutral_lead(head: LogisticHead) -> float:
        return head.biases[NEUTRAL] - head.biases[[NEGATIVE, POSITIVE]].mean()

    assert neutral_lead(balanced.head) < neutral_lead(plain.head)
