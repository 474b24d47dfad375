"""The measurements, over every encoder path of the configuration: the naive one-at-a-time path, worker bursts
(model, memory tier, disk tier), FLOPs, and the worker burst again in fp32 (the fast mode's baseline) and int8.

Two runs of the same texts are compared by their predictions: the share of texts with the same sentiment label,
and each head's largest score difference (:func:`agreement`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from classifier.bench.probes import LoopLagProbe, peak_rss_mb
from classifier.bench.subject import BenchConfiguration, loaded
from classifier.config import WorkerConfig
from classifier.encoders.hf import Encoder
from classifier.inference.prediction import Prediction, predictions
from classifier.inference.router import Paths, RoutedWorker, Router

NAIVE_WARMUP_PER_PATH = 4
NAIVE_SAMPLE = 48
#: The per-message counters of a worker that a burst reports (differences over the burst).
COUNTERS = ("memory_hits", "disk_hits", "computed", "batches")


def linear_macs_per_token(model: torch.nn.Module) -> int:
    """Multiply-accumulates per token in the model's Linear layers (float or dynamically quantized)."""
    macs = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            continue
        in_features, out_features = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if isinstance(in_features, int) and isinstance(out_features, int) and not list(module.children()):
            macs += in_features * out_features
    return macs


def model_flops(encoder: Encoder, token_counts: Sequence[int]) -> float:
    """FLOPs to encode texts of these token lengths: 2 x Linear MACs per token plus attention (QK^T and AV)."""
    config = encoder.model.config
    layers = encoder.depth  # the layers it runs: a model truncated to the pooled hidden states runs fewer
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "dim", 0))
    per_token = 2 * linear_macs_per_token(encoder.model)
    lengths = np.asarray(token_counts, dtype=np.float64)
    return float(per_token * lengths.sum() + 4 * layers * hidden * (lengths**2).sum())


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if len(seconds) else 0.0


def agreement(reference: Sequence[Prediction], other: Sequence[Prediction]) -> dict[str, Any]:
    """How far ``other``'s predictions are from ``reference``'s for the same texts: ``label_agreement``, the share of
    texts with the same sentiment label; ``max_score_diff_by_head``, each head's largest absolute difference of any
    class's score (on texts both read on the same path); ``max_prob_diff``, the largest of those."""
    same_label = [a.label == b.label for a, b in zip(reference, other, strict=True)]
    by_head: dict[str, float] = {}
    for a, b in zip(reference, other, strict=True):
        if a.path != b.path:
            continue
        for head, scores in a.scores.items():
            theirs = b.scores[head]
            difference = max(abs(x - y) for x, y in zip(scores.probabilities, theirs.probabilities, strict=True))
            by_head[head] = max(by_head.get(head, 0.0), difference)
    return {
        "label_agreement": round(float(np.mean(same_label)), 4) if same_label else 1.0,
        "max_prob_diff": round(max(by_head.values(), default=0.0), 6),
        "max_score_diff_by_head": {head: round(value, 6) for head, value in sorted(by_head.items())},
    }


def prefixed(prefix: str, figures: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{key}": value for key, value in figures.items()}


@dataclass
class BurstResult:
    """One burst: every message's latency from its own call, its latency in the burst (from the burst's start, when
    every message has arrived, to its answer: what a model burst reports, as the naive burst's latency counts from its
    start too) and its prediction; the event loop's lag; the workers' counters over the burst, in all and per path.

    The two latencies differ where something synchronous runs before a call first yields (the language gate, inline
    in the routed worker): the later calls start only once the earlier ones have passed it. Cache-hit bursts report
    the latency from the call (the cost of one hit)."""

    seconds: float
    latencies: list[float]
    finished: list[float]
    predictions: list[Prediction]
    loop_lag_max_ms: float
    loop_lag_p99_ms: float
    counters: dict[str, int]
    path_counters: dict[str, dict[str, int]]

    @property
    def msgs_per_s(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def memory_hits(self) -> int:
        return self.counters["memory_hits"]

    @property
    def disk_hits(self) -> int:
        return self.counters["disk_hits"]

    @property
    def computed(self) -> int:
        return self.counters["computed"]

    @property
    def batches(self) -> int:
        return self.counters["batches"]

    def on_path(self, path: str) -> list[int]:
        """The indices of the messages that path answered."""
        return [i for i, prediction in enumerate(self.predictions) if prediction.path == path]

    def path_msgs_per_s(self, path: str) -> float | None:
        """The path's messages over the time from the burst's start to the last of their answers (both paths run at
        once, sharing the cores: this is each path's rate within the mixed burst)."""
        indices = self.on_path(path)
        return len(indices) / max(self.finished[i] for i in indices) if indices else None


async def _burst(worker: RoutedWorker, texts: Sequence[str], progress: tqdm | None) -> BurstResult:
    started = time.perf_counter()

    async def one(text: str) -> tuple[float, float, Prediction]:
        call = time.perf_counter()
        prediction = await worker.classify(text)
        answered = time.perf_counter()
        if progress is not None:
            progress.update(1)
        return answered - call, answered - started, prediction

    before = {name: dataclasses.replace(path.stats) for name, path in worker.workers.items()}
    with LoopLagProbe() as probe:
        await asyncio.sleep(0)  # let the ticker start
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one(text) for text in texts))
        seconds = time.perf_counter() - started
    path_counters = {
        name: {item: getattr(path.stats, item) - getattr(before[name], item) for item in COUNTERS}
        for name, path in worker.workers.items()
    }
    counters = {item: sum(c[item] for c in path_counters.values()) for item in COUNTERS}
    return BurstResult(
        seconds, [o[0] for o in outcomes], [o[1] for o in outcomes], [o[2] for o in outcomes], probe.max_ms,
        percentile_ms(probe.lags, 99), counters, path_counters,
    )


async def worker_bursts(
    paths: Paths, texts: Sequence[str], config: WorkerConfig, phases: Sequence[str]
) -> dict[str, BurstResult]:
    """Run the named bursts on one routed worker (one batching worker per path, the language gate in front, as the
    bot runs them): ``model`` (cache empty), then ``memory`` (all hits)."""
    results = {}
    async with RoutedWorker.configured(paths, config) as worker:
        for name, path in worker.workers.items():
            await path.classify(f"warm-up: the {name} worker's threads and queue")
        for phase in phases:
            if phase == "model":  # the cache bursts take milliseconds: no progress bar in their way
                with tqdm(total=len(texts), desc="worker burst", unit="msg", leave=False, disable=None) as progress:
                    results[phase] = await _burst(worker, texts, progress)
            else:  # a later burst: the first one's cache writes have landed and its garbage is collected
                await worker.flush_cache_writes()
                gc.collect()
                results[phase] = await _burst(worker, texts, None)
    return results


@dataclass
class NaivePass:
    """Per message: the seconds of the whole handler, those of the language gate alone, and the prediction."""

    seconds: list[float]
    gate_seconds: list[float]
    predictions: list[Prediction]


def naive_pass(router: Router, texts: Sequence[str], desc: str = "naive one-at-a-time",
               budget_s: float = math.inf) -> NaivePass:
    """A simple bot's handler for each message in turn: the language gate (with two paths), then on that path's
    encoder tokenize, forward, pool, and every head; it stops early once its messages took ``budget_s``."""
    classifiers = router.paths.classifiers
    encoders = {name: loaded(classifier.encoder) for name, classifier in classifiers.items()}
    seconds, gate_seconds, found = [], [], []
    with torch.inference_mode():
        for text in tqdm(texts, desc=desc, unit="msg", leave=False, disable=None):
            started = time.perf_counter()
            ((path, language),) = router.routes([text])
            gate_seconds.append(time.perf_counter() - started)
            encoder = encoders[path]
            encoded = encoder.tokenizer(encoder.prefix + text, return_tensors="pt", truncation=True,
                                        max_length=encoder.max_length)
            ids, mask = encoded["input_ids"].to(encoder.device), encoded["attention_mask"].to(encoder.device)
            vector = encoder.features(ids, mask).cpu().numpy()
            prediction = predictions(classifiers[path].heads, vector, [False], path)[0].with_route(path, language)
            seconds.append(time.perf_counter() - started)
            found.append(prediction)
            if sum(seconds) > budget_s:
                break
    return NaivePass(seconds, gate_seconds, found)


@dataclass
class Measured:
    """A burst's figures (the bench's JSON keys) and what later measurements compare with."""

    figures: dict[str, Any]
    model: BurstResult
    naive: list[Prediction]
    naive_msgs_per_s: float
    flops: float
    by_path: dict[str, list[int]]  # the texts' indices per path, as the gate routed them
    token_counts: dict[str, list[int]]  # their token counts, in the same order


def measure_burst(configuration: BenchConfiguration, paths: Paths, texts: list[str], config: WorkerConfig,
                  cache_dir: Path, cache_size_mb: int) -> Measured:
    """Naive vs worker vs cache hits on one burst of ``texts``; ``paths`` are the configuration's paths over empty
    caches in ``cache_dir``."""
    router = Router(paths)
    routes = router.routes(texts)  # the gate is deterministic: the naive pass and the worker route them the same
    by_path = {name: [i for i, (path, _) in enumerate(routes) if path == name] for name in paths.classifiers}
    encoders = {name: loaded(classifier.encoder) for name, classifier in paths.classifiers.items()}
    token_counts = {
        name: [len(ids) for ids in encoders[name].token_lengths([texts[i] for i in indices])] if indices else []
        for name, indices in by_path.items()
    }
    flops = sum(model_flops(encoders[name], counts) for name, counts in token_counts.items() if counts)

    # warm-up of the worker's code path, outside the cache (the naive one warms up at each thread count below)
    for name, indices in by_path.items():
        if indices:
            encoders[name].embed([texts[i] for i in indices[:64]])

    # the naive baseline at its best: one message's small matrix products often run faster on one
    # thread (always, when other processes share the cores); pick on a sample, then time every text.
    # One thread first: a thread count whose sample takes longer than that is the slower one, and stops there.
    threads = torch.get_num_threads()
    sample = texts[:NAIVE_SAMPLE]
    warm_up = [texts[i] for indices in by_path.values() for i in indices[:NAIVE_WARMUP_PER_PATH]]
    naive_sample_rates: dict[int, float] = {}
    for count in sorted({threads, 1}):
        torch.set_num_threads(count)
        naive_pass(router, warm_up, desc=f"naive warm-up, {count} thread(s)")
        budget = len(sample) / max(naive_sample_rates.values()) if naive_sample_rates else math.inf
        seconds = naive_pass(router, sample, desc=f"naive sample, {count} thread(s)", budget_s=budget).seconds
        naive_sample_rates[count] = len(seconds) / sum(seconds)
    naive_threads = max(naive_sample_rates, key=naive_sample_rates.__getitem__)
    torch.set_num_threads(naive_threads)
    try:
        naive_run = naive_pass(router, texts)
    finally:
        torch.set_num_threads(threads)
    naive_seconds, naive = naive_run.seconds, naive_run.predictions
    naive_total = sum(naive_seconds)
    # a burst of N messages handled one after the other: message i waits for all before it
    naive_burst_latency = list(np.cumsum(naive_seconds))

    bursts = asyncio.run(worker_bursts(paths, texts, config, ("model", "memory")))
    model_burst, memory_burst = bursts["model"], bursts["memory"]

    # a restarted bot: new cache objects on the same directory, memory tier cold
    disk_paths = configuration.with_caches(cache_dir, cache_size_mb)
    try:
        disk_burst = asyncio.run(worker_bursts(disk_paths, texts, config, ("disk",)))["disk"]
    finally:
        disk_paths.close()

    naive_msgs = len(texts) / naive_total
    all_counts = [count for counts in token_counts.values() for count in counts]
    figures: dict[str, Any] = {
        "messages": len(texts),
        "naive_msgs_per_s": round(naive_msgs, 1),
        "naive_threads": naive_threads,
        "naive_sample_msgs_per_s_by_threads": {str(k): round(v, 1) for k, v in naive_sample_rates.items()},
        "worker_msgs_per_s": round(model_burst.msgs_per_s, 1),
        "speedup": round(model_burst.msgs_per_s / naive_msgs, 2),
        "p50_ms": round(percentile_ms(model_burst.finished, 50), 1),
        "p99_ms": round(percentile_ms(model_burst.finished, 99), 1),
        "naive_p50_ms": round(percentile_ms(naive_burst_latency, 50), 1),
        "naive_p99_ms": round(percentile_ms(naive_burst_latency, 99), 1),
        "naive_call_p50_ms": round(percentile_ms(naive_seconds, 50), 2),
        "naive_call_p99_ms": round(percentile_ms(naive_seconds, 99), 2),
        "cached_msgs_per_s": round(memory_burst.msgs_per_s, 1),
        "cached_p50_ms": round(percentile_ms(memory_burst.latencies, 50), 3),
        "cached_p99_ms": round(percentile_ms(memory_burst.latencies, 99), 3),
        "cached_speedup_vs_model": round(memory_burst.msgs_per_s / model_burst.msgs_per_s, 1),
        "cached_memory_hits": memory_burst.memory_hits,
        "disk_cached_msgs_per_s": round(disk_burst.msgs_per_s, 1),
        "disk_cached_p50_ms": round(percentile_ms(disk_burst.latencies, 50), 3),
        "disk_cached_p99_ms": round(percentile_ms(disk_burst.latencies, 99), 3),
        "disk_cached_disk_hits": disk_burst.disk_hits,
        "gflops": round(flops / model_burst.seconds / 1e9, 2),
        "naive_gflops": round(flops / naive_total / 1e9, 2),
        "loop_lag_max_ms": round(model_burst.loop_lag_max_ms, 2),
        "loop_lag_p99_ms": round(model_burst.loop_lag_p99_ms, 2),
        "cached_loop_lag_max_ms": round(max(memory_burst.loop_lag_max_ms, disk_burst.loop_lag_max_ms), 2),
        "worker_batches": model_burst.batches,
        "worker_computed": model_burst.computed,
        # the language gate alone, as each message meets it (inline, on the event loop, in the routed worker)
        "gate_ms_per_msg": round(1000 * float(np.mean(naive_run.gate_seconds)), 3),
        "gate_p99_ms": round(percentile_ms(naive_run.gate_seconds, 99), 3),
        **agreement(naive, model_burst.predictions),  # the worker's predictions against the naive path's
        "tokens": int(sum(all_counts)),
        "mean_tokens": round(float(statistics.fmean(all_counts)), 1),
        "paths": {name: _path_figures(configuration, name, by_path[name], token_counts[name], naive_seconds,
                                      model_burst, len(texts))
                  for name in paths.classifiers},
    }
    return Measured(figures, model_burst, naive, naive_msgs, flops, by_path, token_counts)


def _path_figures(configuration: BenchConfiguration, name: str, indices: list[int], token_counts: list[int],
                  naive_seconds: list[float], burst: BurstResult, messages: int) -> dict[str, Any]:
    """One path's share of a burst: what it runs, how many texts the gate gave it, and its rates."""
    subject = configuration.subjects[name]
    figures: dict[str, Any] = {
        "encoder": subject.encoder.describe(),
        "head": subject.head_note,
        "random_init": subject.random_init,
        "texts": len(indices),
        "share": round(len(indices) / messages, 4),
    }
    if not indices:
        return figures
    answered = burst.on_path(name)
    rate = burst.path_msgs_per_s(name)
    return figures | {
        "worker_msgs_per_s": round(rate, 1) if rate is not None else None,
        "naive_msgs_per_s": round(len(indices) / sum(naive_seconds[i] for i in indices), 1),
        "p50_ms": round(percentile_ms([burst.finished[i] for i in answered], 50), 1),
        "p99_ms": round(percentile_ms([burst.finished[i] for i in answered], 99), 1),
        "worker_batches": burst.path_counters[name]["batches"],
        "worker_computed": burst.path_counters[name]["computed"],
        "mean_tokens": round(float(statistics.fmean(token_counts)), 1),
    }


def other_mode_burst(configuration: BenchConfiguration, encoders: Mapping[str, Encoder], measured: Measured,
                     texts: list[str], config: WorkerConfig, cache_dir: Path, cache_size_mb: int) -> BurstResult:
    """The worker's model burst with ``encoders`` (the paths' own in another numeric mode; a path not named keeps
    its encoder) on empty caches in ``cache_dir``.

    The heads' fingerprint check does not see the numeric mode: the other mode's vectors feed the same heads.
    """
    paths = configuration.with_caches(cache_dir, cache_size_mb, dict(encoders))
    try:
        for name, encoder in encoders.items():  # warm-up, on the path's own texts
            if measured.by_path[name]:
                encoder.embed([texts[i] for i in measured.by_path[name][:64]])
        return asyncio.run(worker_bursts(paths, texts, config, ("model",)))["model"]
    finally:
        paths.close()


def mode_figures(configuration: BenchConfiguration, measured: Measured, texts: list[str], config: WorkerConfig,
                 cache_dir: Path, cache_size_mb: int, int8: bool = False,
                 fp32_twins: Callable[[], dict[str, Encoder | None]] = dict) -> dict[str, Any]:
    """The worker in fp32 (``fp32_twins`` loads each path's encoder in fp32 where it runs a faster mode) and with
    ``int8`` in int8, against the burst ``measured``, as the bench's JSON figures."""
    model_burst, flops = measured.model, measured.flops
    twins = {name: twin for name, twin in fp32_twins().items() if twin is not None}
    fp32_burst = model_burst
    if twins:
        fp32_burst = other_mode_burst(configuration, twins, measured, texts, config,
                                      Path(cache_dir).with_name("cache-fp32"), cache_size_mb)
    result = {
        "fp32_msgs_per_s": round(fp32_burst.msgs_per_s, 1),
        "fast_vs_fp32": round(model_burst.msgs_per_s / fp32_burst.msgs_per_s, 2),
        "fp32_gflops": round(flops / fp32_burst.seconds / 1e9, 2),
        "fp32_p50_ms": round(percentile_ms(fp32_burst.finished, 50), 1),
        "fp32_p99_ms": round(percentile_ms(fp32_burst.finished, 99), 1),
        **prefixed("fast_vs_fp32_", agreement(model_burst.predictions, fp32_burst.predictions)),
    }
    fp32_encoders = {name: twins.get(name) or subject.encoder for name, subject in configuration.subjects.items()}
    if int8 and all(e.mode == "fp32" and e.device.type == "cpu" for e in fp32_encoders.values()):
        result |= _int8_figures(configuration, fp32_encoders, measured, texts, config,
                                Path(cache_dir).with_name("cache-int8"), cache_size_mb)
    return result


def _int8_figures(configuration: BenchConfiguration, fp32: Mapping[str, Encoder], measured: Measured,
                  texts: list[str], config: WorkerConfig, cache_dir: Path, cache_size_mb: int) -> dict[str, Any]:
    """The worker burst once more with int8 dynamic quantization of the fp32 models (CPU only), against the naive
    path's predictions.

    Opt-in (``moodbot bench --int8``): README "Performance" says what int8 costs in accuracy.
    """
    int8 = {name: encoder.int8_copy() for name, encoder in fp32.items()}
    try:
        burst = other_mode_burst(configuration, int8, measured, texts, config, cache_dir, cache_size_mb)
    finally:
        del int8
    return {
        "int8_worker_msgs_per_s": round(burst.msgs_per_s, 1),
        "int8_speedup": round(burst.msgs_per_s / measured.naive_msgs_per_s, 2),
        "int8_p50_ms": round(percentile_ms(burst.finished, 50), 1),
        "int8_p99_ms": round(percentile_ms(burst.finished, 99), 1),
        "int8_gflops": round(measured.flops / burst.seconds / 1e9, 2),
        **prefixed("int8_", agreement(measured.naive, burst.predictions)),
    }


def rss_figures() -> dict[str, float]:
    """``rss_mb``: the peak so far, taken before the fp32 and int8 copies load (what the bot's process holds)."""
    return {"rss_mb": round(peak_rss_mb(), 1)}
