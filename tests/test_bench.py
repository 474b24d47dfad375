"""``moodbot bench --json``: every figure is present and sane (speed targets live in the bench output, not here).

Real runs, kept small: all-MiniLM-L6-v2 with its shipped head, the random-initialised DistilBERT architecture, and
the default configuration (both encoder paths behind the language gate) with a mixed-language compare burst.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.config import DEFAULT_MODEL, MULTILINGUAL
from classifier.encoders.bundled import E5
from tests.support.helpers import REPO_ROOT, SHARED_DATA, SST2_DEV, clean_environ
from tests.support.mixed_burst import PARTS, PER_PART, mixed_burst_lines

TWEETS = SHARED_DATA / "tweeteval" / "val_3class.tsv"
MIXED_BURST = REPO_ROOT / "tests" / "data" / "bench" / "mixed_burst.tsv"

REQUIRED = {
    "naive_msgs_per_s", "worker_msgs_per_s", "speedup", "p50_ms", "p99_ms", "cached_msgs_per_s", "cached_p99_ms",
    "disk_cached_msgs_per_s", "disk_cached_p99_ms", "rss_mb", "startup_s", "gflops", "device", "model", "random_init",
    "messages", "loop_lag_max_ms", "mode", "fp32_msgs_per_s", "fast_vs_fp32", "peak_gflops", "fp32_gflops",
    "fp32_peak_gflops", "model_vs_peak", "products_gflops", "model_vs_products", "label_agreement", "max_prob_diff",
    "max_score_diff_by_head", "fast_vs_fp32_label_agreement", "fast_vs_fp32_max_score_diff_by_head", "paths",
    "routed", "gate_ms_per_msg",
}
POSITIVE = {
    "naive_msgs_per_s", "worker_msgs_per_s", "speedup", "p50_ms", "p99_ms", "cached_msgs_per_s", "cached_p99_ms",
    "disk_cached_msgs_per_s", "disk_cached_p99_ms", "rss_mb", "startup_s", "gflops", "fp32_msgs_per_s",
    "fast_vs_fp32", "peak_gflops", "fp32_gflops", "fp32_peak_gflops", "model_vs_peak", "products_gflops",
    "model_vs_products",
}
#: Figures of one burst, in the top level and in ``compare``.
BURST = {
    "messages", "naive_msgs_per_s", "worker_msgs_per_s", "speedup", "p50_ms", "p99_ms", "cached_msgs_per_s",
    "disk_cached_msgs_per_s", "label_agreement", "max_prob_diff", "max_score_diff_by_head", "paths",
    "worker_computed", "cached_memory_hits", "disk_cached_disk_hits", "gate_ms_per_msg", "mean_tokens",
}


def test_the_mixed_burst_file_is_what_its_generator_writes() -> None:
    if not all(path.is_file() for path in PARTS.values()):
        pytest.skip("the shared data files are not available")
    lines = MIXED_BURST.read_text(encoding="utf-8").splitlines()
    assert lines == mixed_burst_lines()  # regenerate with `python -m tests.support.mixed_burst`
    assert len(lines) == PER_PART * len(PARTS) and all(line.rsplit("\t", 1)[1] in "012" for line in lines)


def _start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = (
        clean_environ()
        | {"MOODBOT_CACHE_DIR": str(tmp_path / "cache"), "MOODBOT_DATA_DIR": str(tmp_path / "data")}
        | (env or {})
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "--env-file",
            str(tmp_path / "absent.env"),
            "--log-level",
            "ERROR",
            "bench",
            "--json",
            *args,
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str], timeout: float = 240) -> dict:
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-2000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout  # --json: exactly one object on stdout
    return json.loads(lines[0])


def _check_burst(burst: dict, messages: int) -> None:
    """One burst's figures: counters, per-path shares, and the comparison of its predictions with the naive path's."""
    missing = BURST - burst.keys()
    assert not missing, f"missing keys: {sorted(missing)}"
    assert burst["messages"] == messages
    assert burst["worker_computed"] == messages  # the first burst ran every text through the model
    assert burst["cached_memory_hits"] == messages  # the second burst: all memory-tier hits
    assert burst["disk_cached_disk_hits"] == messages  # a fresh cache object: all disk-tier hits
    paths = burst["paths"]
    assert sum(path["texts"] for path in paths.values()) == messages
    assert sum(path["share"] for path in paths.values()) == pytest.approx(1.0, abs=1e-3)
    for name, path in paths.items():
        if path["texts"]:
            assert path["worker_computed"] == path["texts"], name
            assert path["worker_msgs_per_s"] > 0 and path["naive_msgs_per_s"] > 0, name
    # Predictions are compared label by label and head by head (not by thresholding one probability).
    assert 0.0 <= burst["label_agreement"] <= 1.0
    assert "sentiment" in burst["max_score_diff_by_head"]
    assert burst["max_prob_diff"] == max(burst["max_score_diff_by_head"].values())


def _check_common(result: dict, messages: int) -> None:
    missing = REQUIRED - result.keys()
    assert not missing, f"missing keys: {sorted(missing)}"
    for key in POSITIVE:
        assert isinstance(result[key], (int, float)) and result[key] > 0, (key, result[key])
    _check_burst(result, messages)
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["cached_p50_ms"] <= result["cached_p99_ms"]
    # Both rates are rounded to 0.1 msg/s: on a slow run (random-init model, busy machine) that alone moves the ratio.
    naive, worker = result["naive_msgs_per_s"], result["worker_msgs_per_s"]
    assert result["speedup"] == pytest.approx(worker / naive, rel=0.02 + 0.05 / naive + 0.05 / worker)
    fp32 = result["fp32_msgs_per_s"]  # the same burst with the model in fp32 (itself, when the fast mode is fp32)
    assert result["fast_vs_fp32"] == pytest.approx(worker / fp32, rel=0.02 + 0.05 / fp32 + 0.05 / worker)
    assert result["model_vs_peak"] == pytest.approx(result["gflops"] / result["peak_gflops"], rel=0.01)
    assert result["model_vs_products"] == pytest.approx(result["gflops"] / result["products_gflops"], rel=0.01)
    assert set(result["fast_vs_fp32_max_score_diff_by_head"]) == set(result["max_score_diff_by_head"])
    if result["mode"] == "fp32":  # the fp32 burst is the model burst itself
        assert result["fast_vs_fp32"] == 1.0 and result["fast_vs_fp32_max_prob_diff"] == 0.0
        assert result["fast_vs_fp32_label_agreement"] == 1.0
    assert 0 < result["rss_mb"] < 20_000
    assert 0 < result["startup_s"] < 600
    assert result["loop_lag_max_ms"] >= 0
    assert result["device"].startswith(("cpu", "cuda"))
    assert isinstance(result["random_init"], bool)


def _check_fp32_agreement(burst: dict) -> None:
    """In fp32 a batch and a single message differ by float rounding (about 1e-6): the worker's predictions are the
    naive path's, label for label, on every text."""
    assert burst["max_prob_diff"] < 1e-4, burst["max_score_diff_by_head"]
    assert burst["label_agreement"] == 1.0


@pytest.mark.timeout(300)
def test_bench_json_minilm_and_random_init_distilbert(tmp_path: Path) -> None:
    if not SST2_DEV.is_file():
        pytest.skip(f"{SST2_DEV} not available")
    # both runs at once: this asserts figures, not speed. MiniLM in fp32, so that its agreement is exact.
    minilm = _start(tmp_path / "minilm", "--data", str(SST2_DEV), "--messages", "32", "--model", "minilm",
                    env={"MOODBOT_PRECISION": "fp32"})
    distilbert = _start(tmp_path / "distilbert", "--data", str(SST2_DEV), "--messages", "8",
                        "--model", "distilbert-base-uncased", env={"HF_HUB_OFFLINE": "1"})
    minilm_result, distilbert_result = _result(minilm), _result(distilbert)

    _check_common(minilm_result, 32)
    assert minilm_result["random_init"] is False and minilm_result["routed"] is False
    assert minilm_result["model"] == "minilm"
    assert list(minilm_result["paths"]) == ["minilm"]
    assert "all-MiniLM-L6-v2" in minilm_result["encoder"] and minilm_result["mode"] == "fp32"
    assert minilm_result["head"].startswith("shipped head") and "minilm.sentiment.json" in minilm_result["head"]
    _check_fp32_agreement(minilm_result)
    assert "int8_worker_msgs_per_s" not in minilm_result  # int8 figures are opt-in (moodbot bench --int8)
    assert "compare" not in minilm_result

    _check_common(distilbert_result, 8)
    assert distilbert_result["random_init"] is True
    assert distilbert_result["model"] == "distilbert-base-uncased"
    assert any("RANDOM-INIT" in note for note in distilbert_result["notes"])
    assert distilbert_result["head"].startswith("random")


@pytest.mark.timeout(420)
def test_bench_json_routed_paths_with_a_mixed_language_compare_burst(tmp_path: Path) -> None:
    """The default configuration: both encoder paths behind the language gate, naive and worker alike, on an English
    burst from two data files and beside it the mixed-language burst. Costs a minute or more: the gate's language
    models and both encoders load (fp32, so that no fp32 copies load as well)."""
    if not (SST2_DEV.is_file() and TWEETS.is_file()):
        pytest.skip(f"{SST2_DEV} or {TWEETS} not available")
    assert DEFAULT_MODEL == MULTILINGUAL  # the run below sets no MOODBOT_MODEL
    process = _start(tmp_path, "--data", str(SST2_DEV), "--data", f"{TWEETS}:three-way", "--messages", "12",
                     "--compare", f"{MIXED_BURST}:three-way", env={"MOODBOT_PRECISION": "fp32"})
    result = _result(process, timeout=400)

    _check_common(result, 12)
    assert result["model"] == MULTILINGUAL and result["routed"] is True
    assert (result["english_path"], result["multilingual_path"]) == ("mpnet", "e5")
    assert result["data"] == f"{SST2_DEV}, {TWEETS}:three-way"
    english, multilingual = result["paths"]["mpnet"], result["paths"]["e5"]
    assert english["texts"] > multilingual["texts"]  # SST-2 sentences and English tweets: mostly the English path
    assert "all-mpnet-base-v2" in english["encoder"] and "multilingual-e5-small" in multilingual["encoder"]
    assert english["head"].startswith("shipped head")
    if E5.head_path.is_file():
        assert multilingual["head"].startswith("shipped head")
    else:  # benched for speed with a random head, and said so
        assert multilingual["head"].startswith("random")
        assert any(note.startswith("e5: no usable head") for note in result["notes"])
    assert result["gate_ms_per_msg"] > 0  # the naive path asks the gate for every message

    compare = result["compare"]
    _check_burst(compare, 12)
    assert compare["data"] == f"{MIXED_BURST}:three-way"
    assert compare["paths"]["e5"]["share"] > 0.5  # four parts in five are not English
    worker, compare_worker = result["worker_msgs_per_s"], compare["worker_msgs_per_s"]
    assert result["compare_worker_ratio"] == pytest.approx(
        compare_worker / worker, rel=0.02 + 0.05 / worker + 0.05 / compare_worker
    )
    _check_fp32_agreement(result)
    _check_fp32_agreement(compare)
