"""Bundled encoders: short names, the split all-mpnet-base-v2 rebuilt once, truncation to the pooled layers, and
the numeric modes (bf16 on CPU). Real parts in a real site directory, the real mpnet weights, real tokenizers.

The real mpnet folder is rebuilt (once per machine, about 0.85 GB) in the default models dir, which `make run`
uses too; fake parts exercise every failure on a few megabytes.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.settings import SettingsError, load_settings
from classifier.config import ROUTED_MODELS, ClassifierConfig
from classifier.encoders.bundled import DEFAULT_MODELS_DIR, E5, MINILM, MPNET, BundledModelError, bundled_encoder
from classifier.encoders.cpu_bf16 import PackedLinear
from classifier.encoders.hf import Encoder, EncoderError
from classifier.encoders.identity import (
    EncoderIdentity,
    cpu_has_native_bf16,
    local_identity,
    numeric_mode,
    resolve_model,
)
from classifier.encoders.pooling import Pooling
from classifier.encoders.sources.split_wheels import ReassemblyError
from tests.support.helpers import NEGATIVE_TEXTS, POSITIVE_TEXTS, REPO_ROOT
from tests.support.split_parts import FOLDER, build_parts, fake_weights, part_file

TEXTS = [*POSITIVE_TEXTS[:6], *NEGATIVE_TEXTS[:6], "ok", "where do i upload the logs?",
         "a much longer message about the pinned notes, the event schedule and who is bringing the snacks " * 3]


@pytest.fixture(scope="module")
def mpnet_dir() -> Path:
    """The real all-mpnet-base-v2 folder: rebuilt from the installed parts on the first run on this machine."""
    return MPNET.folder(DEFAULT_MODELS_DIR)


@pytest.fixture(scope="module")
def mpnet_fp32(mpnet_dir: Path) -> Encoder:
    """Full depth (the pooling reads the last layer), fp32: the reference."""
    return Encoder.load("mpnet", pooling=Pooling.parse("mean@3,6,9,12"), device="cpu", precision="fp32")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site-packages"
    folder.mkdir()
    return folder


def _mean(states: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    weights = mask.unsqueeze(-1).to(torch.float32)
    return ((states * weights).sum(1) / weights.sum(1)).numpy()


# ------------------------------------------------------------------------------------------------- names


def test_short_and_hub_names_resolve_to_one_encoder(mpnet_dir: Path) -> None:
    for name in ("mpnet", "MPNet", " mpnet ", "sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2"):
        assert bundled_encoder(name) is MPNET, name
    for name in ("mpnet", "all-mpnet-base-v2"):  # each resolution hashes the weights
        source = resolve_model(name)
        assert (source.name, source.load_from) == ("sentence-transformers/all-mpnet-base-v2", str(mpnet_dir))
        assert source.weights_id == f"sha256:{MPNET.weights_sha256}"
    for name in ("minilm", "MINILM", "sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        assert bundled_encoder(name) is MINILM, name
    assert bundled_encoder("distilbert-base-uncased") is None and bundled_encoder("mpnet-large") is None


def test_each_bundled_encoder_names_its_own_head() -> None:
    assert ClassifierConfig(model="mpnet").head_path == MPNET.head_path
    assert ClassifierConfig(model="sentence-transformers/all-MiniLM-L6-v2").head_path == MINILM.head_path
    assert MPNET.head_path != MINILM.head_path and MINILM.head_path.is_file()
    assert E5.head_path.is_file() and E5.shipped_heads().keys() >= {"sentiment", "offensive", "hate"}
    english = bundled_encoder(ROUTED_MODELS[0])  # the default has two paths: a head names its own encoder
    assert english is not None and ClassifierConfig().head_path == english.head_path
    assert ClassifierConfig(model="/some/local/folder").head_path == english.head_path  # refused later, by name
    assert ClassifierConfig(model="mpnet", head=Path("mine.json")).head_path == Path("mine.json")


def test_identity_is_known_without_loading_the_model(mpnet_dir: Path, mpnet_fp32: Encoder) -> None:
    identity, hidden = local_identity(resolve_model("mpnet"), Pooling.parse("mean@3,6,9,12"))
    assert identity == mpnet_fp32.identity and hidden == 768 and identity.max_length == 384
    assert Pooling.parse("mean@3,6,9,12").output_dim(hidden) == mpnet_fp32.dim == 3072


# ------------------------------------------------------------------------------------------------- reassembly


def test_parts_are_rebuilt_once_without_the_stray_files(site: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    weights = fake_weights()
    model = build_parts(site, weights)
    models = tmp_path / "models"
    with caplog.at_level(logging.INFO, logger="classifier.encoders.sources.split_wheels"):
        folder = model.ensure(models, [str(site)])
    assert folder == models / FOLDER
    assert (folder / "model.safetensors").read_bytes() == weights
    assert (folder / "1_Pooling" / "config.json").is_file() and not list(folder.rglob("desktop.ini"))
    assert sorted(p.name for p in models.iterdir()) == [f".{FOLDER}.lock", FOLDER]  # no staging folder left
    assert sum("reassembling" in r.message for r in caplog.records) == 1

    stamp = (folder / "model.safetensors").stat()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="classifier.encoders.sources.split_wheels"):
        assert model.ensure(models, [str(site)]) == folder
    again = (folder / "model.safetensors").stat()
    assert (again.st_ino, again.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)  # verified, not re-extracted
    assert not caplog.records


def test_missing_part_is_a_clear_error(site: Path, tmp_path: Path) -> None:
    model = build_parts(site, fake_weights())
    for info in site.glob("fake_model_part_002-*.dist-info"):
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
    with pytest.raises(ReassemblyError, match=r"part 2 of 3 of fake-model \(fake-model-part-002\) is not installed: "
                                              r"reinstall the parts"):
        model.ensure(tmp_path / "models", [str(site)])
    assert not (tmp_path / "models" / FOLDER).exists()


def test_deleted_part_file_is_a_clear_error(site: Path, tmp_path: Path) -> None:
    model = build_parts(site, fake_weights())
    part_file(site, 3).unlink()
    with pytest.raises(ReassemblyError, match="fake-model-part-003 is installed but its fake-model.zip.003 is missing"):
        model.ensure(tmp_path / "models", [str(site)])


def test_corrupted_part_is_named(site: Path, tmp_path: Path) -> None:
    model = build_parts(site, fake_weights())
    damaged = part_file(site, 2)
    content = bytearray(damaged.read_bytes())
    content[100] ^= 0xFF  # same size, other bytes
    damaged.write_bytes(bytes(content))
    with pytest.raises(ReassemblyError, match=r"fake-model.zip.002 \(part 2 of fake-model\) is damaged"):
        model.ensure(tmp_path / "models", [str(site)])
    assert [p.name for p in (tmp_path / "models").iterdir()] == [f".{FOLDER}.lock"]


def test_weights_that_do_not_match_the_published_hash_are_refused(site: Path, tmp_path: Path) -> None:
    """Intact parts of another file than the one expected: nothing lands in the models dir."""
    built = build_parts(site, fake_weights())
    expecting_other = type(built)(built.folder, built.parts, built.weights_size, "0" * 64, built.repair)
    with pytest.raises(ReassemblyError, match="is not the published model .*SHA-256 .* expected 0000"):
        expecting_other.ensure(tmp_path / "models", [str(site)])
    assert [p.name for p in (tmp_path / "models").iterdir()] == [f".{FOLDER}.lock"]


def test_damaged_folder_is_rebuilt_from_the_parts(site: Path, tmp_path: Path) -> None:
    weights = fake_weights()
    model = build_parts(site, weights)
    folder = model.ensure(tmp_path / "models", [str(site)])
    (folder / "model.safetensors").write_bytes(weights[:-1] + b"X")  # same size, other hash
    assert model.weights_error(folder) is not None
    assert model.ensure(tmp_path / "models", [str(site)]) == folder
    assert (folder / "model.safetensors").read_bytes() == weights
    (folder / "model.safetensors").unlink()
    assert model.ensure(tmp_path / "models", [str(site)]) == folder and model.weights_error(folder) is None


def test_archive_path_outside_the_folder_is_refused(site: Path, tmp_path: Path) -> None:
    model = build_parts(site, fake_weights(), extra={"../../escaped.txt": b"x"})
    with pytest.raises(ReassemblyError, match="unsafe path"):
        model.ensure(tmp_path / "models", [str(site)])
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "models" / FOLDER).exists()


def test_concurrent_first_starts_build_it_once(site: Path, tmp_path: Path) -> None:
    """Two processes start on an empty models dir at once: the file lock lets one build, the other finds it."""
    model = build_parts(site, fake_weights(24 * 1024 * 1024))
    spec = json.dumps([model.folder, model.parts, model.weights_size, model.weights_sha256, model.repair])
    script = (
        "import json, logging, sys; from pathlib import Path\n"
        "from classifier.encoders.sources.split_wheels import SplitModel\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        "f, parts, size, sha, repair = json.loads(sys.argv[1])\n"
        "model = SplitModel(f, tuple(map(tuple, parts)), size, sha, repair)\n"
        "print('folder', model.ensure(Path(sys.argv[2]), [sys.argv[3]]))\n"
    )
    command = [sys.executable, "-c", script, spec, str(tmp_path / "models"), str(site)]
    processes = [subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sum(output.count("reassembling") for output in outputs) == 1, outputs
    assert all(f"folder {tmp_path / 'models' / FOLDER}" in output for output in outputs)
    assert model.weights_error(tmp_path / "models" / FOLDER) is None


def test_unusable_models_dir_is_a_bundled_model_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(BundledModelError, match="cannot build it in .*MOODBOT_MODELS_DIR"):
        MPNET.folder(blocker / "models")


def test_real_mpnet_weights_verified(mpnet_dir: Path) -> None:
    from classifier.encoders.bundled import MPNET_PARTS

    assert (mpnet_dir / "model.safetensors").stat().st_size == 437_971_872
    assert MPNET_PARTS.weights_error(mpnet_dir) is None  # SHA-256 78c0197b...
    assert not list(mpnet_dir.rglob("desktop.ini"))
    assert MPNET.folder(DEFAULT_MODELS_DIR) == mpnet_dir  # a second load finds it built


# ------------------------------------------------------------------------------------------------- truncation


def test_truncated_tiny_model_equals_the_full_models_hidden_state(tiny_model_dir: Path) -> None:
    from transformers import AutoModel

    full = AutoModel.from_pretrained(str(tiny_model_dir)).eval()
    encoder = Encoder.load(str(tiny_model_dir), pooling=Pooling.parse("cls+mean@1"), device="cpu", precision="fp32")
    assert encoder.depth == len(encoder.model.transformer.layer) == 1 < len(full.transformer.layer) == 2
    encoded = encoder.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        state = full(**encoded, output_hidden_states=True).hidden_states[1]
    expected = np.concatenate([state[:, 0].numpy(), _mean(state, encoded["attention_mask"])], axis=1)
    np.testing.assert_allclose(encoder.embed(TEXTS), expected, atol=1e-5)
    # negative indices count from the full model's end: -2 is hidden state 1 of 2 layers
    negative = Encoder.load(str(tiny_model_dir), pooling=Pooling.parse("cls+mean@-2"), device="cpu", precision="fp32")
    assert negative.depth == 1
    np.testing.assert_allclose(negative.embed(TEXTS), expected, atol=1e-5)
    assert negative.fingerprint != encoder.fingerprint  # another spelling of the pooling, another identity


def test_pooling_beyond_the_model_is_an_encoder_error(tiny_model_dir: Path) -> None:
    for spec in ("mean@3", "mean@-4"):
        with pytest.raises(EncoderError, match="reads a hidden state the model does not have"):
            Encoder.load(str(tiny_model_dir), pooling=Pooling.parse(spec), device="cpu")


def test_truncated_mpnet_equals_the_full_models_hidden_states(mpnet_fp32: Encoder) -> None:
    assert mpnet_fp32.depth == 12
    full = mpnet_fp32.embed(TEXTS)
    for spec, depth, columns in (("mean@3,6", 6, slice(0, 1536)), ("mean@-7", 6, slice(768, 1536))):
        pooling = Pooling.parse(spec)
        truncated = Encoder.load("mpnet", pooling=pooling, device="cpu", precision="fp32")
        assert truncated.depth == len(truncated.model.encoder.layer) == depth
        np.testing.assert_allclose(truncated.embed(TEXTS), full[:, columns], rtol=1e-4, atol=1e-4)
        # the same feature: the fingerprint knows nothing of truncation
        identity = EncoderIdentity(mpnet_fp32.name, mpnet_fp32.weights_id, pooling, mpnet_fp32.max_length)
        assert truncated.fingerprint == identity.fingerprint


# ------------------------------------------------------------------------------------------------- numeric modes


def test_numeric_mode_is_decided_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    native = "bf16" if cpu_has_native_bf16() else "fp32"
    assert numeric_mode("cpu") == numeric_mode("cpu", "none", "auto") == native
    assert numeric_mode("cpu", "none", "fp32") == "fp32" and numeric_mode("cpu", "none", "bf16") == "bf16"
    assert numeric_mode("cpu", "int8", "auto") == numeric_mode("cpu", "int8", "fp32") == "int8"
    with pytest.raises(EncoderError, match="cannot be combined with bf16"):
        numeric_mode("cpu", "int8", "bf16")
    with pytest.raises(EncoderError, match="unknown precision"):
        numeric_mode("cpu", "none", "fp8")
    config = ClassifierConfig(device="cpu", precision="fp32")
    assert config.numeric_mode == "fp32"


def test_bf16_features_are_close_to_fp32_on_mpnet(mpnet_fp32: Encoder) -> None:
    bf16 = Encoder.load("mpnet", pooling=mpnet_fp32.pooling, device="cpu", precision="bf16")
    feed_forward = bf16.model.encoder.layer[0].intermediate
    assert bf16.mode == "bf16" and isinstance(feed_forward.dense, PackedLinear)
    assert feed_forward.dense.activation == "gelu" and isinstance(feed_forward.intermediate_act_fn, torch.nn.Identity)
    assert bf16.fingerprint == mpnet_fp32.fingerprint  # heads take either
    assert bf16.cache_namespace == f"{bf16.fingerprint}:bf16" != mpnet_fp32.cache_namespace
    assert mpnet_fp32.cache_namespace == f"{mpnet_fp32.fingerprint}:fp32"
    fast, exact = bf16.embed(TEXTS), mpnet_fp32.embed(TEXTS)
    assert fast.dtype == np.float32
    for layer in range(4):  # hidden states 3, 6, 9 and 12
        a, b = fast[:, layer * 768 : (layer + 1) * 768], exact[:, layer * 768 : (layer + 1) * 768]
        cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() >= 0.9999, (layer, cosine.min())


def test_the_lazy_encoder_promises_the_mode_it_loads(tiny_model_dir: Path, tiny_head_path: Path,
                                                      tmp_path: Path) -> None:
    from classifier.encoders.lazy import LazyEncoder
    from classifier.inference.classifier import Classifier

    for precision in ("fp32", "auto"):
        config = ClassifierConfig(model=str(tiny_model_dir), head=tiny_head_path, cache_dir=tmp_path / precision,
                                  device="cpu", precision=precision)
        classifier = Classifier.load(config)
        try:
            assert isinstance(classifier.encoder, LazyEncoder)
            assert classifier.encoder.cache_namespace.endswith(f":{config.numeric_mode}")
            classifier.warm_up()  # loads the model: its namespace must be the one promised
            assert classifier.encoder.loaded.mode == config.numeric_mode
        finally:
            classifier.close()


# ------------------------------------------------------------------------------------------------- settings


def test_precision_and_models_dir_settings(tmp_path: Path) -> None:
    settings = load_settings({"MOODBOT_PRECISION": "BF16", "MOODBOT_MODELS_DIR": str(tmp_path)}, dotenv_path=None)
    assert settings.classifier.precision == "bf16"
    assert settings.classifier.models_dir == tmp_path
    assert load_settings({}, dotenv_path=None).classifier.precision == "auto"
    with pytest.raises(SettingsError) as caught:
        load_settings({"MOODBOT_PRECISION": "fp8"}, dotenv_path=None)
    assert str(caught.value) == "MOODBOT_PRECISION='fp8' is invalid: expected one of auto|fp32|bf16"
    with pytest.raises(SettingsError, match="^MOODBOT_PRECISION='bf16' with MOODBOT_QUANTIZE='int8': int8"):
        load_settings({"MOODBOT_PRECISION": "bf16", "MOODBOT_QUANTIZE": "int8"}, dotenv_path=None)
    int8 = load_settings({"MOODBOT_QUANTIZE": "int8", "MOODBOT_DEVICE": "cpu"}, dotenv_path=None)
    assert int8.classifier.numeric_mode == "int8"  # auto precision gives way to int8
