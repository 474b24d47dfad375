"""The synchronous classifier: encoder + cache + head, and cache isolation between two encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifier.heads.logistic import LogisticHead
from classifier.heads.sentiment import CLASSES
from classifier.inference.embeddings import CachedEncoder
from tests.support.classifier import InstrumentedClassifier, assert_as_alone
from tests.support.helpers import NEGATIVE_TEXTS, POSITIVE_TEXTS

#: The keys of one `classify --json` object for a head without moderation signals.
JSON_KEYS = {"text", "label", "p_negative", "p_neutral", "p_positive", "encoder", "language", "cached"}


def test_classify_fills_then_reads_the_cache(make_classifier, tiny_encoder, tiny_head) -> None:
    classifier = make_classifier()
    texts = POSITIVE_TEXTS[:4] + NEGATIVE_TEXTS[:4]
    embed_calls = tiny_encoder.embed_calls
    first = classifier.classify(texts)
    assert tiny_encoder.embed_calls == embed_calls + 1
    assert [p.cached for p in first] == [False] * 8
    assert all(0.0 < p.p_positive < 1.0 for p in first)
    expected = tiny_head.probabilities_for(tiny_encoder.embed(texts), CLASSES)
    np.testing.assert_allclose([[p.p_negative, p.p_neutral, p.p_positive] for p in first], expected, rtol=1e-6)
    assert [p.label for p in first] == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert_as_alone(first, texts, tiny_encoder, tiny_head)  # a batch of 8 answers as each text alone would

    embed_calls = tiny_encoder.embed_calls
    second = classifier.classify(texts)
    assert tiny_encoder.embed_calls == embed_calls  # no model call at all
    assert [p.cached for p in second] == [True] * 8
    assert [p.p_positive for p in second] == [p.p_positive for p in first]
    assert classifier.cache.stats().entries == 8


def test_duplicates_in_one_call_are_embedded_once(make_classifier) -> None:
    classifier = make_classifier(cls=InstrumentedClassifier)
    vectors, cached = classifier.embeddings.vectors(["same", "other", "same", "same"])
    assert classifier.batches == [["same", "other"]]
    assert vectors.shape == (4, 32) and cached == [False] * 4
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[0], vectors[3])
    assert classifier.cache.stats().entries == 2


def test_prediction_json_and_confidence(make_classifier) -> None:
    prediction = make_classifier().classify(["hello there"])[0]
    as_json = prediction.to_json("  hello there ")
    assert as_json == {
        "text": "  hello there ",
        "label": prediction.label,
        "p_negative": round(prediction.p_negative, 6),
        "p_neutral": 0.0,  # the tiny head was trained on binary data: it has no neutral class
        "p_positive": round(prediction.p_positive, 6),
        "encoder": "",
        "language": None,
        "cached": False,
    }
    assert prediction.p_negative + prediction.p_positive == pytest.approx(1.0)
    assert prediction.confidence == max(prediction.p_positive, prediction.p_negative)
    assert prediction.vector.shape == (32,)


def test_a_three_way_head_labels_neutral(make_classifier, tiny_encoder, tiny_head) -> None:
    """A head whose neutral class wins for one chosen text: that text is labelled neutral, with three probabilities
    in the JSON, and the label is always the most probable class."""
    texts = ["the meeting notes are in the drive", "i love this server", "this update is awful"]
    chosen = tiny_encoder.embed(texts[:1])[0].astype(np.float64)
    neutral_row = (chosen - tiny_head.mean) / tiny_head.scale  # its logit peaks at the chosen text
    head = LogisticHead(
        tiny_head.encoder, np.vstack([np.zeros(32), neutral_row, np.zeros(32)]), np.array([0.0, 0.0, 0.0]),
        tiny_head.mean, tiny_head.scale,
    )
    predictions = make_classifier(head=head).classify(texts)
    assert predictions[0].label == "neutral" and predictions[0].p_neutral > 0.9
    for p in predictions:
        assert p.label == max(p.probabilities, key=p.probabilities.get)
        assert p.p_negative + p.p_neutral + p.p_positive == pytest.approx(1.0)
        assert set(p.to_json("x")) == JSON_KEYS


def test_two_encoders_never_read_each_others_vectors(tmp_path: Path, tiny_encoder, other_encoder) -> None:
    """Same cache directory, two models (different weights and pooling): separate namespaces, no cross reads."""
    assert tiny_encoder.fingerprint != other_encoder.fingerprint
    assert tiny_encoder.cache_namespace != other_encoder.cache_namespace
    texts = ["shared sentence one", "shared sentence two"]
    a = CachedEncoder.open(tiny_encoder, str(tmp_path / "cache"))
    b = CachedEncoder.open(other_encoder, str(tmp_path / "cache"))
    try:
        vectors_a, cached_a = a.vectors(texts)
        assert cached_a == [False, False]
        calls = other_encoder.embed_calls
        vectors_b, cached_b = b.vectors(texts)
        assert cached_b == [False, False] and other_encoder.embed_calls == calls + 1  # computed, not read from a
        assert not np.allclose(vectors_a, vectors_b)
        assert a.cache.stats().entries == 4  # both namespaces live in one directory
        again_a, hit_a = a.vectors(texts)
        again_b, hit_b = b.vectors(texts)
        assert hit_a == hit_b == [True, True]
        assert np.array_equal(again_a, vectors_a) and np.array_equal(again_b, vectors_b)
        assert b.cache.misses == 2 and a.cache.misses == 2
    finally:
        a.close()
        b.close()


def test_dataset_vectors_counts_hits(make_classifier) -> None:
    classifier = make_classifier()
    texts = [f"sentence {i}" for i in range(300)]  # more than one progress chunk
    vectors, hits = classifier.embeddings.dataset_vectors(texts)
    assert vectors.shape == (300, 32) and hits == 0
    again, hits = classifier.embeddings.dataset_vectors(texts)
    assert hits == 300 and np.array_equal(again, vectors)
    empty, hits = classifier.embeddings.dataset_vectors([])
    assert empty.shape == (0, 32) and hits == 0


def test_classifier_survives_a_corrupt_cache_directory(tmp_path: Path, make_classifier) -> None:
    cache_dir = tmp_path / "cache"
    first = make_classifier(cache_dir=cache_dir)
    first.classify(["warm up"])
    first.close()
    (cache_dir / "cache.db").write_bytes(b"\x00garbage" * 2048)
    classifier = make_classifier(cache_dir=cache_dir)
    predictions = classifier.classify(["warm up", "another"])
    assert [p.cached for p in predictions] == [False, False]
    assert len(list(tmp_path.glob("cache.corrupt-*"))) == 1
