"""``moodbot bench``: the naive one-message-at-a-time bot next to the BatchingWorker, in one run.

What is benched is the configuration as the bot runs it: one encoder path, or with ``MOODBOT_MODEL=multilingual``
(the default) two, the English one and the multilingual one, with the language gate choosing per message
(:class:`~classifier.inference.router.RoutedWorker`). Every phase runs in this process on the same unique texts (the
first N distinct cleaned lines of the data files, each file's share in proportion to its weight) and the same model
objects and heads:

- **naive**: what a simple bot does in its message handler: the gate (with two paths), then on that path's encoder
  ``tokenizer(text, return_tensors="pt")``, a forward pass, pooling and every head, one message after the other;
- **worker**: a burst of N concurrent ``RoutedWorker.classify()`` calls on an empty cache (a fresh temporary
  directory), with per-message latency measured from the call to its result, and per path its share of the texts
  and its rate (its texts over the time to its last answer);
- **cached**: the same burst again, every text a memory-tier hit; then once more through new cache objects on the
  same directory (memory tier cold, as after a restart), every text a disk-tier hit;
- **compare** (``--compare DATA``): naive, worker and cached once more on a second burst (say, mixed languages
  beside an English one), over caches of its own, and its worker rate over the first burst's;
- **fp32**: when an encoder runs a faster numeric mode (bf16 on a CPU with native bf16), the model burst once
  more with the same models in fp32, its baseline; ``peak_gflops`` is a matrix product in the fast mode's dtype
  on the same thread layout (one product per CPU lane), the ceiling the model path's ``gflops`` is read against;
  ``products_gflops`` is the models' own Linear layers alone at the burst's micro-batch shapes, the ceiling at
  their own shapes;
- **serve** (with an inference URL, one path only): the model burst once more with ``moodbot serve`` as the worker's
  encoder.

Runs are compared by their predictions (never by thresholding one probability): the share of texts whose sentiment
label agrees, and each head's largest score difference. During each burst a ticker task measures how late the event
loop wakes it (``loop_lag_max_ms``): anything heavy on the loop shows there. A path whose head does not load (say
e5's, before it is trained) is benched with a random head, and the output says so (speed only). A known hub
architecture (``distilbert-base-uncased``) whose weights cannot be loaded is benched random-initialised from its
default config with the real uncased vocabulary of the bundled model; the output says so (``random_init``).

The package: :mod:`~classifier.bench.subject` (what is benched), :mod:`~classifier.bench.probes`
(process, device and network probes), :mod:`~classifier.bench.measurements` and
:mod:`~classifier.bench.report`; :func:`run_bench` ties them together.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.bench.measurements import Measured, measure_burst, mode_figures, model_flops, rss_figures
from classifier.bench.probes import (
    MODE_DTYPES,
    matmul_peak_gflops,
    peak_rss_mb,
    products_gflops,
    seconds_since_process_start,
)
from classifier.bench.report import format_table, header
from classifier.bench.subject import BenchConfiguration, DataFile, bench_texts, fp32_twin, load_configuration
from classifier.config import ClassifierConfig, WorkerConfig

__all__ = ["BenchOptions", "DataFile", "format_table", "run_bench"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchOptions:
    """What to bench: the texts (and a second burst to compare with), the burst size, the model (``None``: the
    configured one), and whether to add int8 and a ``moodbot serve``."""

    data: tuple[DataFile, ...]
    messages: int = 512
    model: str | None = None
    int8: bool = False
    inference_url: str | None = None  # also burst through `moodbot serve` there (see classifier.bench.serving)
    inference_timeout_s: float = 30.0
    compare: tuple[DataFile, ...] = ()  # a second burst, benched beside the first (e.g. mixed languages)


def _texts(files: tuple[DataFile, ...], messages: int) -> list[str]:
    texts = bench_texts(files, max(1, int(messages)))
    if len(texts) < messages:
        log.warning("%s: only %d distinct texts: benching %d messages", _describe(files), len(texts), len(texts))
    return texts


def _describe(files: tuple[DataFile, ...]) -> str:
    return ", ".join(str(file) for file in files)


def run_bench(options: BenchOptions, config: ClassifierConfig, worker: WorkerConfig) -> dict[str, Any]:
    """Measure naive vs worker vs cache hits; the result is the ``moodbot bench --json`` object."""
    model_name = options.model or config.model
    texts = _texts(options.data, options.messages)
    compare_texts = _texts(options.compare, options.messages) if options.compare else None
    if options.inference_url and dataclasses.replace(config, model=model_name, head=None).path_configs()[1]:
        raise ValueError(f"--inference-url benches one encoder path: set --model to one encoder, not {model_name!r}")
    with tempfile.TemporaryDirectory(prefix="moodbot-bench-") as temporary:
        cache_dir = Path(temporary) / "cache"
        configuration = load_configuration(model_name, config, cache_dir)
        try:
            configuration.warm_up()  # the models load lazily: "ready" means loaded and run once, the gate loaded
            startup_s = seconds_since_process_start()
            english = configuration.subjects[configuration.english].encoder
            result: dict[str, Any] = {
                "peak_gflops": round(matmul_peak_gflops(english, MODE_DTYPES[english.mode]), 1),
                "fp32_peak_gflops": round(matmul_peak_gflops(english, MODE_DTYPES["fp32"]), 1),
            }
            measured = measure_burst(configuration, configuration.paths, texts, worker, cache_dir,
                                     config.cache_size_mb)
            result |= measured.figures
            if compare_texts is not None:  # before the fp32 copies load: both bursts in the same process state
                result |= _compare_figures(configuration, compare_texts, options, worker, Path(temporary),
                                           config.cache_size_mb, measured)
            result |= rss_figures()
            result |= mode_figures(configuration, measured, texts, worker, cache_dir, config.cache_size_mb,
                                   int8=options.int8,
                                   fp32_twins=lambda: {n: fp32_twin(s) for n, s in configuration.subjects.items()})
            result["model_vs_peak"] = round(result["gflops"] / result["peak_gflops"], 3)
            if (own := _products_gflops(configuration, measured)) is not None:
                result |= {"products_gflops": round(own, 1), "model_vs_products": round(result["gflops"] / own, 3)}
            if options.inference_url:
                from classifier.bench.serving import serve_figures

                subject = configuration.subjects[configuration.english]
                result |= serve_figures(subject, texts, worker, options.inference_url, options.inference_timeout_s,
                                        cache_dir, config.cache_size_mb)
        finally:
            configuration.close()
    result |= {"startup_s": round(startup_s, 2), "bench_rss_mb": round(peak_rss_mb(), 1)}
    return header(configuration, len(texts), _describe(options.data)) | result


def _compare_figures(configuration: BenchConfiguration, texts: list[str], options: BenchOptions,
                     worker: WorkerConfig, temporary: Path, cache_size_mb: int, measured: Measured) -> dict[str, Any]:
    """The second burst's figures (``compare``, on caches of its own) and its worker rate over the first's."""
    cache_dir = temporary / "cache-compare"
    paths = configuration.with_caches(cache_dir, cache_size_mb)
    try:
        compared = measure_burst(configuration, paths, texts, worker, cache_dir, cache_size_mb)
    finally:
        paths.close()
    figures = {"data": _describe(options.compare)} | compared.figures
    return {
        "compare": figures,
        "compare_worker_ratio": round(compared.model.msgs_per_s / measured.model.msgs_per_s, 3),
    }


def _products_gflops(configuration: BenchConfiguration, measured: Measured) -> float | None:
    """The paths' own Linear products alone at the burst's shapes: one rate over the paths, each weighted by its
    share of the burst's FLOPs; ``None`` where a path's layers are not plain or bf16-packed Linear layers."""
    work = seconds = 0.0
    for name, counts in measured.token_counts.items():
        if not counts:
            continue
        encoder = configuration.subjects[name].encoder
        rate = products_gflops(encoder, counts)
        if rate is None:
            return None
        flops = model_flops(encoder, counts)
        work, seconds = work + flops, seconds + flops / (rate * 1e9)
    return work / seconds / 1e9 if seconds else None
