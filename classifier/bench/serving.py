"""The Serve path beside the in-process one (``moodbot bench --inference-url URL``).

The same burst on an empty cache, through a BatchingWorker like the in-process one, whose encoder is the
``moodbot serve`` at the URL (:class:`~classifier.serving.client.RemoteEncoder`): throughput and latency as a bot
process with ``MOODBOT_INFERENCE_URL`` sees them, HTTP and Serve's batching included. Its predictions are
compared with the in-process burst's, read back from that burst's cache (no second local model pass).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from cache import EmbeddingCache
from classifier.bench.measurements import agreement, percentile_ms, prefixed, worker_bursts
from classifier.bench.subject import BenchSubject
from classifier.config import WorkerConfig
from classifier.inference.classifier import Classifier
from classifier.inference.router import Paths
from classifier.serving.client import RemoteEncoder

WARMUP_TEXTS = 64


def serve_figures(subject: BenchSubject, texts: list[str], config: WorkerConfig, url: str, timeout_s: float,
                  cache_dir: Path, cache_size_mb: int) -> dict[str, Any]:
    """The Serve burst's figures for a one-path configuration; ``cache_dir`` holds the in-process burst's vectors (the
    reference)."""
    heads, path = subject.classifier.heads, subject.path
    local = EmbeddingCache(cache_dir, subject.encoder.cache_namespace, cache_size_mb, dim=subject.encoder.dim)
    try:
        reference = subject.classifier.score(np.stack(local.get_many(texts)), [True] * len(texts))
    finally:
        local.close()
    encoder = RemoteEncoder(url, timeout_s)
    cache = EmbeddingCache(cache_dir.with_name("cache-serve"), encoder.cache_namespace, cache_size_mb, dim=encoder.dim)
    try:
        encoder.embed(texts[:WARMUP_TEXTS])  # connections and the service warm, as the local model was
        classifier, requests = Classifier(encoder, heads, cache, path), encoder.requests
        burst = asyncio.run(worker_bursts(Paths.single(classifier), texts, config, ("model",)))["model"]
        requests = encoder.requests - requests
    finally:
        cache.close()
        encoder.close()
    return {
        "serve_url": url,
        "serve_encoder": encoder.describe(),
        "serve_msgs_per_s": round(burst.msgs_per_s, 1),
        "serve_p50_ms": round(percentile_ms(burst.finished, 50), 1),
        "serve_p99_ms": round(percentile_ms(burst.finished, 99), 1),
        "serve_batches": burst.batches,
        "serve_requests": requests,
        "serve_loop_lag_max_ms": round(burst.loop_lag_max_ms, 2),
        **prefixed("serve_", agreement(reference, burst.predictions)),
    }
