"""The measurements: the naive one-at-a-time path, worker bursts (model, memory tier, disk tier), FLOPs, and the
worker burst again in fp32 (the fast mode's baseline) and int8."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cache import EmbeddingCache
from classifier.bench.probes import LoopLagProbe, peak_rss_mb
from classifier.bench.subject import BenchSubject
from classifier.config import WorkerConfig
from classifier.encoders.hf import Encoder
from classifier.heads.logistic import LogisticHead
from classifier.heads.sentiment import CLASSES, POSITIVE
from classifier.inference.classifier import Classifier, by_task
from classifier.inference.worker import BatchingWorker

WARMUP_TEXTS = 16
NAIVE_SAMPLE = 48


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


@dataclass
class BurstResult:
    seconds: float
    latencies: list[float]
    probabilities: list[float]
    loop_lag_max_ms: float
    loop_lag_p99_ms: float
    memory_hits: int
    disk_hits: int
    computed: int
    batches: int

    @property
    def msgs_per_s(self) -> float:
        return len(self.latencies) / self.seconds


async def _burst(worker: BatchingWorker, texts: Sequence[str], progress: tqdm | None) -> BurstResult:
    async def one(text: str) -> tuple[float, float]:
        started = time.perf_counter()
        prediction = await worker.classify(text)
        elapsed = time.perf_counter() - started
        if progress is not None:
            progress.update(1)
        return elapsed, prediction.p_positive

    before = dataclasses.replace(worker.stats)
    with LoopLagProbe() as probe:
        await asyncio.sleep(0)  # let the ticker start
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one(text) for text in texts))
        seconds = time.perf_counter() - started
    after = worker.stats
    return BurstResult(
        seconds, [o[0] for o in outcomes], [o[1] for o in outcomes], probe.max_ms, percentile_ms(probe.lags, 99),
        after.memory_hits - before.memory_hits, after.disk_hits - before.disk_hits,
        after.computed - before.computed, after.batches - before.batches,
    )


async def worker_bursts(
    classifier: Classifier, texts: Sequence[str], config: WorkerConfig, phases: Sequence[str]
) -> dict[str, BurstResult]:
    """Run the named bursts on one worker: ``model`` (cache empty), then ``memory`` (all hits)."""
    results = {}
    async with BatchingWorker.configured(classifier, config) as worker:
        await worker.classify("warm-up: the worker's threads and queue")
        for phase in phases:
            if phase == "model":  # the cache bursts take milliseconds: no progress bar in their way
                with tqdm(total=len(texts), desc="worker burst", unit="msg", leave=False, disable=None) as progress:
                    results[phase] = await _burst(worker, texts, progress)
            else:  # a later burst: the first one's cache writes have landed and its garbage is collected
                await worker.flush_cache_writes()
                gc.collect()
                results[phase] = await _burst(worker, texts, None)
    return results


def naive_pass(
    encoder: Encoder, head: LogisticHead, texts: Sequence[str], desc: str = "naive one-at-a-time"
) -> tuple[list[float], list[float]]:
    """A simple bot's handler for each message in turn: tokenize, forward, pool, head.

    Returns (seconds, p_positive) per message.
    """
    seconds, probabilities = [], []
    with torch.inference_mode():
        for text in tqdm(texts, desc=desc, unit="msg", leave=False, disable=None):
            started = time.perf_counter()
            encoded = encoder.tokenizer(text, return_tensors="pt", truncation=True, max_length=encoder.max_length)
            vector = encoder.features(encoded["input_ids"], encoded["attention_mask"]).numpy()
            probability = float(head.probabilities_for(vector, CLASSES)[0, POSITIVE])
            seconds.append(time.perf_counter() - started)
            probabilities.append(probability)
    return seconds, probabilities


def measure(subject: BenchSubject, texts: list[str], token_counts: Sequence[int], config: WorkerConfig,
            cache_dir: Path, cache_size_mb: int, int8: bool = False,
            fp32_twin: Callable[[], Encoder | None] = lambda: None) -> dict[str, Any]:
    """Naive vs worker vs cache hits, the worker in fp32 (``fp32_twin`` loads the subject's encoder in fp32 when it
    runs a faster mode) and with ``int8`` in int8, as the bench's JSON figures.

    ``token_counts``: each text's token count, for the FLOPs. ``rss_mb`` is the peak before the fp32 twin loads:
    what the bot's process holds with the same burst.
    """
    classifier = subject.classifier
    encoder, head = subject.encoder, classifier.head
    flops = model_flops(encoder, token_counts)

    # warm-up: both code paths, outside the cache
    naive_pass(encoder, head, texts[:WARMUP_TEXTS], desc="warm-up")
    encoder.embed(texts[: min(len(texts), 64)])

    # the naive baseline at its best: one message's small matrix products often run faster on one
    # thread (always, when other processes share the cores); pick on a sample, then time every text
    threads = torch.get_num_threads()
    sample = texts[:NAIVE_SAMPLE]
    naive_sample_rates: dict[int, float] = {}
    for count in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(count)
        seconds = naive_pass(encoder, head, sample, desc=f"naive sample, {count} thread(s)")[0]
        naive_sample_rates[count] = len(sample) / sum(seconds)
    naive_threads = max(naive_sample_rates, key=naive_sample_rates.__getitem__)
    torch.set_num_threads(naive_threads)
    try:
        naive_seconds, naive_p = naive_pass(encoder, head, texts)
    finally:
        torch.set_num_threads(threads)
    naive_total = sum(naive_seconds)
    # a burst of N messages handled one after the other: message i waits for all before it
    naive_burst_latency = list(np.cumsum(naive_seconds))

    bursts = asyncio.run(worker_bursts(classifier, texts, config, ("model", "memory")))
    model_burst, memory_burst = bursts["model"], bursts["memory"]

    # a restarted bot: a new cache object on the same directory, memory tier cold
    disk_cache = EmbeddingCache(cache_dir, encoder.cache_namespace, cache_size_mb, dim=encoder.dim)
    disk_classifier = Classifier(encoder, by_task(head), disk_cache)
    try:
        disk_burst = asyncio.run(worker_bursts(disk_classifier, texts, config, ("disk",)))["disk"]
    finally:
        disk_cache.close()

    naive_msgs = len(texts) / naive_total
    result: dict[str, Any] = {
        "naive_msgs_per_s": round(naive_msgs, 1),
        "naive_threads": naive_threads,
        "naive_sample_msgs_per_s_by_threads": {str(k): round(v, 1) for k, v in naive_sample_rates.items()},
        "worker_msgs_per_s": round(model_burst.msgs_per_s, 1),
        "speedup": round(model_burst.msgs_per_s / naive_msgs, 2),
        "p50_ms": round(percentile_ms(model_burst.latencies, 50), 1),
        "p99_ms": round(percentile_ms(model_burst.latencies, 99), 1),
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
        "max_prob_diff": round(float(np.max(np.abs(np.asarray(naive_p) - np.asarray(model_burst.probabilities)))), 6),
        "tokens": int(sum(token_counts)),
        "mean_tokens": round(float(statistics.fmean(token_counts)), 1),
    }
    result["rss_mb"] = round(peak_rss_mb(), 1)
    fp32_burst, fp32 = model_burst, fp32_twin()
    if fp32 is not None:
        fp32_cache_dir = Path(cache_dir).with_name("cache-fp32")
        fp32_burst = _other_mode_burst(fp32, head, texts, config, fp32_cache_dir, cache_size_mb)
    fast_p, fp32_p = np.asarray(model_burst.probabilities), np.asarray(fp32_burst.probabilities)
    result |= {
        "fp32_msgs_per_s": round(fp32_burst.msgs_per_s, 1),
        "fast_vs_fp32": round(model_burst.msgs_per_s / fp32_burst.msgs_per_s, 2),
        "fp32_gflops": round(flops / fp32_burst.seconds / 1e9, 2),
        "fp32_p50_ms": round(percentile_ms(fp32_burst.latencies, 50), 1),
        "fp32_p99_ms": round(percentile_ms(fp32_burst.latencies, 99), 1),
        "fast_vs_fp32_max_prob_diff": round(float(np.max(np.abs(fast_p - fp32_p))), 6),
        "fast_vs_fp32_label_agreement": round(float(np.mean((fast_p >= 0.5) == (fp32_p >= 0.5))), 4),
    }
    fp32_encoder = fp32 or encoder
    if int8 and fp32_encoder.mode == "fp32" and fp32_encoder.device.type == "cpu":
        int8_cache_dir = Path(cache_dir).with_name("cache-int8")
        result |= _int8_figures(fp32_encoder, head, texts, config, flops, int8_cache_dir, cache_size_mb, naive_msgs,
                                naive_p)
    return result


def _other_mode_burst(encoder: Encoder, head: LogisticHead, texts: list[str], config: WorkerConfig, cache_dir: Path,
                      cache_size_mb: int) -> BurstResult:
    """The worker's model burst with ``encoder`` (the subject's in another numeric mode) on an empty cache.

    The head's fingerprint check does not see the numeric mode: the other mode's vectors feed the same head.
    """
    cache = EmbeddingCache(cache_dir, encoder.cache_namespace, cache_size_mb, dim=encoder.dim)
    try:
        encoder.embed(texts[: min(len(texts), 64)])  # warm-up
        return asyncio.run(worker_bursts(Classifier(encoder, by_task(head), cache), texts, config, ("model",)))["model"]
    finally:
        cache.close()


def _int8_figures(fp32: Encoder, head: LogisticHead, texts: list[str], config: WorkerConfig, flops: float,
                  cache_dir: Path, cache_size_mb: int, naive_msgs: float, naive_p: list[float]) -> dict[str, Any]:
    """The worker burst once more with int8 dynamic quantization of the fp32 model (CPU only).

    Opt-in (``moodbot bench --int8``): README "Performance" says what int8 costs in accuracy.
    """
    int8 = fp32.int8_copy()
    try:
        burst = _other_mode_burst(int8, head, texts, config, cache_dir, cache_size_mb)
    finally:
        del int8
    naive, int8_p = np.asarray(naive_p), np.asarray(burst.probabilities)
    return {
        "int8_worker_msgs_per_s": round(burst.msgs_per_s, 1),
        "int8_speedup": round(burst.msgs_per_s / naive_msgs, 2),
        "int8_p50_ms": round(percentile_ms(burst.latencies, 50), 1),
        "int8_p99_ms": round(percentile_ms(burst.latencies, 99), 1),
        "int8_gflops": round(flops / burst.seconds / 1e9, 2),
        "int8_max_prob_diff": round(float(np.max(np.abs(naive - int8_p))), 6),
        "int8_label_agreement": round(float(np.mean((naive >= 0.5) == (int8_p >= 0.5))), 4),
    }
