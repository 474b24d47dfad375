"""``moodbot bench``: the naive one-message-at-a-time bot next to the BatchingWorker, in one run.

Every phase runs in this process on the same unique texts (the first N distinct cleaned lines of
the data file) and the same model object and head:

- **naive**: what a simple bot does in its message handler: ``tokenizer(text, return_tensors="pt")``,
  a forward pass, pooling and the head, one message after the other;
- **worker**: a burst of N concurrent ``BatchingWorker.classify()`` calls on an empty cache (a fresh
  temporary directory), with per-message latency measured from the call to its result;
- **cached**: the same burst again, every text a memory-tier hit; then once more through a new cache
  object on the same directory (memory tier cold, as after a restart), every text a disk-tier hit;
- **fp32**: when the encoder runs a faster numeric mode (bf16 on a CPU with native bf16), the model burst once
  more with the same model in fp32, its baseline; ``peak_gflops`` is a matrix product in the fast mode's dtype
  on the same thread layout (one product per CPU lane), the ceiling the model path's ``gflops`` is read against;
  ``products_gflops`` is the model's own Linear layers alone at the burst's micro-batch shapes, the ceiling at
  its own shapes;
- **serve** (with an inference URL): the model burst once more with ``moodbot serve`` as the worker's encoder.

During each burst a ticker task measures how late the event loop wakes it (``loop_lag_max_ms``):
anything heavy on the loop shows there. A known hub architecture (``distilbert-base-uncased``)
whose weights cannot be loaded is benched random-initialised from its default config with the
real uncased vocabulary of the bundled model; the output says so (``random_init``) and its head is
random (speed only).

The package: :mod:`~classifier.bench.subject` (what is benched), :mod:`~classifier.bench.probes`
(process, device and network probes), :mod:`~classifier.bench.measurements` and
:mod:`~classifier.bench.report`; :func:`run_bench` ties them together.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.bench.measurements import measure
from classifier.bench.probes import (
    MODE_DTYPES,
    matmul_peak_gflops,
    peak_rss_mb,
    products_gflops,
    seconds_since_process_start,
)
from classifier.bench.report import format_table, header
from classifier.bench.subject import bench_texts, fp32_twin, load_subject
from classifier.config import ClassifierConfig, WorkerConfig

__all__ = ["BenchOptions", "format_table", "run_bench"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchOptions:
    """What to bench: the model (``None``: the configured one), the burst size, the texts, and whether to add int8."""

    data: Path
    messages: int = 512
    model: str | None = None
    int8: bool = False
    inference_url: str | None = None  # also burst through `moodbot serve` there (see classifier.bench.serving)
    inference_timeout_s: float = 30.0


def run_bench(options: BenchOptions, config: ClassifierConfig, worker: WorkerConfig) -> dict[str, Any]:
    """Measure naive vs worker vs cache hits; the result is the ``moodbot bench --json`` object."""
    model_name = options.model or config.model
    texts = bench_texts(options.data, max(1, int(options.messages)))
    if len(texts) < options.messages:
        log.warning("%s has only %d distinct texts: benching %d messages", options.data, len(texts), len(texts))
    with tempfile.TemporaryDirectory(prefix="moodbot-bench-") as temporary:
        cache_dir = Path(temporary) / "cache"
        subject = load_subject(model_name, config, cache_dir)
        subject.classifier.warm_up()  # the model loads lazily: "ready" means loaded and run once
        startup_s = seconds_since_process_start()
        try:
            encoder = subject.encoder
            result = {
                "peak_gflops": round(matmul_peak_gflops(encoder, MODE_DTYPES[encoder.mode]), 1),
                "fp32_peak_gflops": round(matmul_peak_gflops(encoder, MODE_DTYPES["fp32"]), 1),
            }
            token_counts = [len(ids) for ids in encoder.token_lengths(texts)]
            result |= measure(subject, texts, token_counts, worker, cache_dir, config.cache_size_mb,
                              int8=options.int8, fp32_twin=lambda: fp32_twin(subject, model_name, config))
            result["model_vs_peak"] = round(result["gflops"] / result["peak_gflops"], 3)
            if (own := products_gflops(encoder, token_counts)) is not None:
                result |= {"products_gflops": round(own, 1), "model_vs_products": round(result["gflops"] / own, 3)}
            if options.inference_url:
                from classifier.bench.serving import serve_figures

                result |= serve_figures(subject, texts, worker, options.inference_url, options.inference_timeout_s,
                                        cache_dir, config.cache_size_mb)
        finally:
            subject.classifier.close()
    result |= {"startup_s": round(startup_s, 2), "bench_rss_mb": round(peak_rss_mb(), 1)}
    return header(subject, model_name, len(texts), str(options.data)) | result
