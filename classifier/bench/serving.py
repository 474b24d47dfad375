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
from classifier.bench.measurements import percentile_ms, worker_bursts
from classifier.bench.subject import BenchSubject
from classifier.config import WorkerConfig
from classifier.heads.sentiment import CLASSES, POSITIVE
from classifier.inference.classifier import Classifier, by_task
from classifier.serving.client import RemoteEncoder

WARMUP_TEXTS = 64


def serve_figures(subject: BenchSubject, texts: list[str], config: WorkerConfig, url: str, timeout_s: float,
                  cache_dir: Path, cache_size_mb: int) -> dict[str, Any]:
    """The Serve burst's figures; ``cache_dir`` holds the in-process burst's vectors (the reference)."""
    head = subject.classifier.head
    local = EmbeddingCache(cache_dir, subject.encoder.cache_namespace, cache_size_mb, dim=subject.encoder.dim)
    try:
        reference = head.probabilities_for(np.stack(local.get_many(texts)), CLASSES)[:, POSITIVE]
    finally:
        local.close()
    encoder = RemoteEncoder(url, timeout_s)
    cache = EmbeddingCache(cache_dir.with_name("cache-serve"), encoder.cache_namespace, cache_size_mb, dim=encoder.dim)
    try:
        encoder.embed(texts[:WARMUP_TEXTS])  # connections and the service warm, as the local model was
        classifier, requests = Classifier(encoder, by_task(head), cache), encoder.requests
        burst = asyncio.run(worker_bursts(classifier, texts, config, ("model",)))["model"]
        requests = encoder.requests - requests
    finally:
        cache.close()
        encoder.close()
    served = np.asarray(burst.probabilities)
    return {
        "serve_url": url,
        "serve_encoder": encoder.describe(),
        "serve_msgs_per_s": round(burst.msgs_per_s, 1),
        "serve_p50_ms": round(percentile_ms(burst.latencies, 50), 1),
        "serve_p99_ms": round(percentile_ms(burst.latencies, 99), 1),
        "serve_batches": burst.batches,
        "serve_requests": requests,
        "serve_loop_lag_max_ms": round(burst.loop_lag_max_ms, 2),
        "serve_max_prob_diff": round(float(np.max(np.abs(served - reference))), 6),
        "serve_label_agreement": round(float(np.mean((served >= 0.5) == (reference >= 0.5))), 4),
    }
