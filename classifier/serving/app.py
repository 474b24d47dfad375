"""The Ray Serve deployment behind ``moodbot serve``: every path's encoder in each replica, texts batched across
requests.

An HTTP request carries a whole batch of texts for one encoder (single-text calls through Serve's proxy cost far
more than the model). Its texts go to one ``@serve.batch`` method whose batch size counts texts, not requests, so
concurrent requests from several bot processes share model calls of up to ``max_batch`` texts per encoder.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from classifier.config import ClassifierConfig, WorkerConfig
from classifier.serving.model import ServedModel
from classifier.serving.protocol import (
    EMBED_PATH,
    INFO_PATH,
    STATS_PATH,
    ProtocolError,
    embed_request_encoder,
    embed_request_texts,
    service_info_json,
)


def _keep_replica_grpc_on_loopback() -> None:
    """Bind this replica's internal gRPC server to 127.0.0.1 instead of every interface.

    Ray Serve 2.60 binds it to ``[::]:0`` with no setting to change that (ray-project/ray#64544). The node's
    address is 127.0.0.1, which is where the proxy and other replicas connect, so loopback serves them all.
    Called from the replica's ``__init__``: the server binds after it. The loopback test fails if Ray changes this.
    """
    from ray.serve._private import replica

    bind = replica.add_port_to_grpc_server

    def loopback(server: Any, address: str) -> int:
        return bind(server, "127.0.0.1:0" if address == "[::]:0" else address)

    replica.add_port_to_grpc_server = loopback


def _text_count(chunks: list[tuple[str, list[str]]]) -> int:
    return sum(len(texts) for _, texts in chunks)


@serve.deployment(name="moodbot-inference")
class Inference:
    """``GET /v1/info``, ``POST /v1/embed``, ``GET /v1/stats`` (this replica's counters)."""

    def __init__(self, config: ClassifierConfig, batching: WorkerConfig) -> None:
        _keep_replica_grpc_on_loopback()
        self.models = ServedModel.load_all(config, batching)
        for model in self.models.values():
            model.embed(["warm-up"])  # load and run once: the first request is not the slow one
        self.max_batch = batching.max_batch
        self.embed_batch.set_max_batch_size(batching.max_batch)
        self.embed_batch.set_batch_wait_timeout_s(batching.max_wait_ms / 1000.0)
        # the model runs off the replica's event loop, which meanwhile gathers the next batch
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodbot-serve-model")
        self.stats = {"replica": serve.get_replica_context().replica_id.unique_id,
                      "requests": 0, "texts": 0, "batches": 0, "largest_batch": 0}

    async def __call__(self, request: Request) -> JSONResponse:
        route = (request.method, request.url.path.rstrip("/"))
        if route == ("GET", INFO_PATH):
            return JSONResponse(service_info_json([model.info for model in self.models.values()]))
        if route == ("GET", STATS_PATH):
            return JSONResponse(self.stats)
        if route == ("POST", EMBED_PATH):
            return await self._embed(request)
        return JSONResponse({"error": f"no route {request.method} {request.url.path}"}, status_code=404)

    async def _embed(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
            prepared, fingerprint = embed_request_texts(body), self._encoder_of(embed_request_encoder(body))
        except ValueError as error:  # malformed JSON (a ValueError) or a ProtocolError
            return JSONResponse({"error": str(error)}, status_code=400)
        model = self.models[fingerprint]
        self.stats["requests"] += 1
        self.stats["texts"] += len(prepared)
        chunks = [prepared[i : i + self.max_batch] for i in range(0, len(prepared), self.max_batch)]
        parts = await asyncio.gather(*(self.embed_batch((fingerprint, chunk)) for chunk in chunks))
        vectors = np.concatenate(parts) if parts else np.empty((0, model.info.dim), np.float32)
        return JSONResponse({"namespace": model.info.cache_namespace, "results": model.results(vectors)})

    def _encoder_of(self, fingerprint: str | None) -> str:
        """The served encoder a request names; one that names none gets the only one, if there is only one."""
        if fingerprint is None and len(self.models) == 1:
            return next(iter(self.models))
        if fingerprint not in self.models:
            raise ProtocolError(f"this service serves the encoders {sorted(self.models)}: name one as \"encoder\"")
        return fingerprint

    @serve.batch(batch_size_fn=_text_count)
    async def embed_batch(self, chunks: list[tuple[str, list[str]]]) -> list[np.ndarray]:
        """One model call per encoder for the texts of every request in the batch; each request gets its rows."""
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], _text_count(chunks))
        loop = asyncio.get_running_loop()
        rows: list[np.ndarray] = [np.empty(0)] * len(chunks)
        for fingerprint, model in self.models.items():
            mine = [i for i, (wanted, _) in enumerate(chunks) if wanted == fingerprint]
            if not mine:
                continue
            texts = [text for i in mine for text in chunks[i][1]]
            vectors = await loop.run_in_executor(self._model_thread, model.embed, texts)
            for i, part in zip(mine, np.split(vectors, np.cumsum([len(chunks[i][1]) for i in mine])[:-1]), strict=True):
                rows[i] = part
        return rows
