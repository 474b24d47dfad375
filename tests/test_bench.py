"""``moodbot bench --json``: every figure is present and sane (speed targets live in the bench output, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from classifier.config import DEFAULT_MODEL
from tests.support.helpers import REPO_ROOT, SST2_DEV, clean_environ

REQUIRED = {
    "naive_msgs_per_s", "worker_msgs_per_s", "speedup", "p50_ms", "p99_ms", "cached_msgs_per_s", "cached_p99_ms",
    "disk_cached_msgs_per_s", "disk_cached_p99_ms", "rss_mb", "startup_s", "gflops", "device", "model", "random_init",
    "messages", "loop_lag_max_ms", "mode", "fp32_msgs_per_s", "fast_vs_fp32", "peak_gflops", "fp32_gflops",
    "fp32_peak_gflops", "model_vs_peak", "products_gflops", "model_vs_products",
}
POSITIVE = {
    "naive_msgs_per_s", "worker_msgs_per_s", "speedup", "p50_ms", "p99_ms", "cached_msgs_per_s", "cached_p99_ms",
    "disk_cached_msgs_per_s", "disk_cached_p99_ms", "rss_mb", "startup_s", "gflops", "fp32_msgs_per_s",
    "fast_vs_fp32", "peak_gflops", "fp32_gflops", "fp32_peak_gflops", "model_vs_peak", "products_gflops",
    "model_vs_products",
}


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
            "--data",
            str(SST2_DEV),
            *args,
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str]) -> dict:
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-2000:]
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout  # --json: exactly one object on stdout
    return json.loads(lines[0])


def _check_common(result: dict, messages: int) -> None:
    missing = REQUIRED - result.keys()
    assert not missing, f"missing keys: {sorted(missing)}"
    for key in POSITIVE:
        assert isinstance(result[key], (int, float)) and result[key] > 0, (key, result[key])
    assert result["messages"] == messages
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["cached_p50_ms"] <= result["cached_p99_ms"]
    # Both rates are rounded to 0.1 msg/s: on a slow run (random-init model, busy machine) that alone moves the ratio.
    naive, worker = result["naive_msgs_per_s"], result["worker_msgs_per_s"]
    assert result["speedup"] == pytest.approx(worker / naive, rel=0.02 + 0.05 / naive + 0.05 / worker)
    fp32 = result["fp32_msgs_per_s"]  # the same burst with the model in fp32 (itself, when the fast mode is fp32)
    assert result["fast_vs_fp32"] == pytest.approx(worker / fp32, rel=0.02 + 0.05 / fp32 + 0.05 / worker)
    assert result["model_vs_peak"] == pytest.approx(result["gflops"] / result["peak_gflops"], rel=0.01)
    assert result["model_vs_products"] == pytest.approx(result["gflops"] / result["products_gflops"], rel=0.01)
    if result["mode"] == "fp32":
        assert result["fast_vs_fp32"] == 1.0 and result["fast_vs_fp32_max_prob_diff"] == 0.0
    if not result["random_init"]:  # a random head's near-ties may flip under rounding; a trained head's do not
        assert result["fast_vs_fp32_label_agreement"] >= 0.9  # bf16 or not, the same predictions
    assert result["worker_computed"] == messages  # the first burst ran every text through the model
    assert result["cached_memory_hits"] == messages  # the second burst: all memory-tier hits
    assert result["disk_cached_disk_hits"] == messages  # a fresh cache object: all disk-tier hits
    assert 0 < result["rss_mb"] < 20_000
    assert 0 < result["startup_s"] < 600
    assert result["loop_lag_max_ms"] >= 0
    assert result["device"].startswith(("cpu", "cuda"))
    assert isinstance(result["random_init"], bool)


@pytest.mark.timeout(300)
def test_bench_json_default_model_and_random_init_distilbert(tmp_path: Path) -> None:
    if not SST2_DEV.is_file():
        pytest.skip(f"{SST2_DEV} not available")
    # both runs at once: this asserts figures, not speed
    default = _start(tmp_path / "minilm", "--messages", "32")
    distilbert = _start(tmp_path / "distilbert", "--messages", "8", "--model", "distilbert-base-uncased",
                        env={"HF_HUB_OFFLINE": "1"})
    minilm_result, distilbert_result = _result(default), _result(distilbert)

    _check_common(minilm_result, 32)
    assert minilm_result["random_init"] is False
    assert minilm_result["model"] == DEFAULT_MODEL
    # batching and padding do not change the predictions (beyond rounding: bf16 keeps about 3 significant digits)
    assert minilm_result["max_prob_diff"] < (1e-3 if minilm_result["mode"] == "fp32" else 1e-2)
    assert "int8_worker_msgs_per_s" not in minilm_result  # int8 figures are opt-in (moodbot bench --int8)

    _check_common(distilbert_result, 8)
    assert distilbert_result["random_init"] is True
    assert distilbert_result["model"] == "distilbert-base-uncased"
    assert any("RANDOM-INIT" in note for note in distilbert_result["notes"])
