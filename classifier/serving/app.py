"""The Ray Serve deployment behind ``moodbot serve``: encoder and head in each replica, texts batched across requests.

An HTTP request carries a whole batch of texts (single-text calls through Serve's proxy cost far more than
the model). Its texts go to one ``@serve.batch`` method whose batch size counts texts, not requests, so
concurrent requests from several bot processes share model calls of up to ``max_batch`` texts.
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
from classifier.serving.protocol import EMBED_PATH, INFO_PATH, STATS_PATH, embed_request_texts


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


def _text_count(chunks: list[list[str]]) -> int:
    return sum(len(chunk) for chunk in chunks)


@serve.deployment(name="moodbot-inference")
class Inference:
    """``GET /v1/info``, ``POST /v1/embed``, ``GET /v1/stats`` (this replica's counters)."""

    def __init__(self, config: ClassifierConfig, batching: WorkerConfig) -> None:
        _keep_replica_grpc_on_loopback()
        self.model = ServedModel.load(config, batching)
        self.model.embed(["warm-up"])  # load and run once: the first request is not the slow one
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
            return JSONResponse(self.model.info.to_json())
        if route == ("GET", STATS_PATH):
            return JSONResponse(self.stats)
        if route == ("POST", EMBED_PATH):
            return await self._embed(request)
        return JSONResponse({"error": f"no route {request.method} {request.url.path}"}, status_code=404)

    async def _embed(self, request: Request) -> JSONResponse:
        try:
            prepared = embed_request_texts(await request.json())
        except ValueError as error:  # malformed JSON (a ValueError) or a ProtocolError
            return JSONResponse({"error": str(error)}, status_code=400)
        self.stats["requests"] += 1
        self.stats["texts"] += len(prepared)
        chunks = [prepared[i : i + self.max_batch] for i in range(0, len(prepared), self.max_batch)]
        parts = await asyncio.gather(*(self.embed_batch(chunk) for chunk in chunks))
        vectors = np.concatenate(parts) if parts else np.empty((0, self.model.info.dim), np.float32)
        body: dict[str, Any] = {"namespace": self.model.info.cache_namespace, "results": self.model.results(vectors)}
        return JSONResponse(body)

    @serve.batch(batch_size_fn=_text_count)
    async def embed_batch(self, chunks: list[list[str]]) -> list[np.ndarray]:
        """One model call for the texts of every request in the batch; each request gets its own rows back."""
        texts = [text for chunk in chunks for text in chunk]
        self.stats["batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(texts))
        vectors = await asyncio.get_running_loop().run_in_executor(self._model_thread, self.model.embed, texts)
        return np.split(vectors, np.cumsum([len(chunk) for chunk in chunks])[:-1])
