"""The encoder of a bot process whose inference runs in ``moodbot serve`` (``MOODBOT_INFERENCE_URL``).

The :class:`~classifier.inference.worker.BatchingWorker` keeps its job: it answers cache hits, de-duplicates and cuts
batches. Each batch it would have run on a local model comes here and is split into requests of
:data:`REQUEST_TEXTS` texts, sent at once over one aiohttp session that runs on a loop thread of its own
(the worker's model thread calls :meth:`RemoteEncoder.embed` synchronously, as it calls a local encoder, so
the worker's queue stays bounded while a batch is out: back-pressure). A failed request is retried with
exponential backoff (at most :data:`MAX_BACKOFF_S` apart) until ``timeout_s`` is spent; then the batch fails
with :class:`InferenceUnavailable`, which the worker hands to every caller of the batch. Nothing here
imports torch: the encoder's identity, and so the cache namespace and the head check, come from the
service's ``/v1/info``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import aiohttp
import numpy as np

from classifier.encoders.identity import EncoderError, EncoderIdentity
from classifier.serving.protocol import (
    EMBED_PATH,
    INFO_PATH,
    ProtocolError,
    ServiceInfo,
    decode_vectors,
    service_infos,
)

log = logging.getLogger(__name__)

#: Texts per HTTP request: large enough that the proxy's cost per request is small next to the model's.
REQUEST_TEXTS = 64
#: Requests in flight at once from one process (the connection pool's size).
MAX_IN_FLIGHT = 16
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 2.0
# 404: Serve's proxy answers it while the application is (re)deploying; 408/429/5xx: overloaded or restarting.
RETRIED_STATUSES = frozenset({404, 408, 429})

T = TypeVar("T")


class InferenceError(EncoderError):
    """The inference service refused a request or answered something unusable."""


class InferenceUnavailable(InferenceError):
    """The inference service did not answer in time, retries included."""


class RemoteEncoder:
    """Something that embeds (:class:`~classifier.encoders.identity.EncoderLike`) by asking the service at ``url``."""

    def __init__(self, url: str, timeout_s: float, fingerprint: str | None = None) -> None:
        """Connect and read the identity of the served encoder ``fingerprint`` (``None``: the only one served),
        retrying like any request; raises :class:`InferenceError`."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.fingerprint = fingerprint
        self.requests = 0
        self._outage = False
        self._session: aiohttp.ClientSession | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="moodbot-inference-client", daemon=True)
        self._thread.start()
        try:
            self.info = self._run(self._fetch_info())
        except BaseException:
            self.close()
            raise

    @property
    def identity(self) -> EncoderIdentity:
        return self.info.identity

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def mode(self) -> str:
        return self.info.mode

    @property
    def cache_namespace(self) -> str:
        return self.info.cache_namespace

    def describe(self) -> str:
        return f"{self.info.describe()} via {self.url}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, dim]`` float32 vectors of cleaned ``texts`` from the service; blocks, so call it off the event loop."""
        if not texts:
            return np.empty((0, self.dim), np.float32)
        return self._run(self._embed(list(texts)))

    def close(self) -> None:
        """Close the connections and stop the loop thread (idempotent)."""
        if self._loop.is_closed():
            return
        if self._loop.is_running():
            self._run(self._close_session())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coroutine.close()
            raise InferenceError("the inference client is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch_info(self) -> ServiceInfo:
        body = await self._request("GET", INFO_PATH, None, asyncio.get_running_loop().time() + self.timeout_s)
        try:
            served = service_infos(body)
        except ProtocolError as error:
            raise InferenceError(f"{self.url}{INFO_PATH}: {error}") from None
        info = _pick(served, self.fingerprint, self.url)
        log.info("inference service at %s: %s, head %s", self.url, info.describe(), info.head)
        return info

    async def _embed(self, texts: list[str]) -> np.ndarray:
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        chunks = [texts[i : i + REQUEST_TEXTS] for i in range(0, len(texts), REQUEST_TEXTS)]
        requests = [
            asyncio.ensure_future(self._request("POST", EMBED_PATH, {"texts": c, "encoder": self.identity.fingerprint},
                                                deadline))
            for c in chunks
        ]
        try:
            bodies = await asyncio.gather(*requests)
        except BaseException:
            for request in requests:  # one failed request fails the batch: stop the others
                request.cancel()
            raise
        return np.concatenate([self._vectors(body, len(chunk)) for body, chunk in zip(bodies, chunks, strict=True)])

    def _vectors(self, body: Any, count: int) -> np.ndarray:
        """The vectors of an embed response, which must come from the encoder this process was started with."""
        try:
            namespace, results = body["namespace"], body["results"]
            if namespace != self.cache_namespace:
                raise InferenceError(
                    f"the inference service at {self.url} now runs another encoder (cache namespace {namespace}, "
                    f"this process was started for {self.cache_namespace}): restart this process to use it"
                )
            if not isinstance(results, list) or len(results) != count:
                raise ProtocolError(f"expected {count} results")
            return decode_vectors([result["vector"] for result in results], self.dim)
        except (KeyError, TypeError, ProtocolError) as error:
            raise InferenceError(f"{self.url}{EMBED_PATH} sent an unusable response: {error}") from None

    async def _request(self, method: str, path: str, payload: Any, deadline: float) -> Any:
        """One request's JSON body, retried with backoff while the error may pass and the deadline allows."""
        loop = asyncio.get_running_loop()
        started, backoff, attempt = loop.time(), FIRST_BACKOFF_S, 0
        while True:
            attempt += 1
            try:
                timeout = aiohttp.ClientTimeout(total=max(deadline - loop.time(), 0.001))
                async with self._client().request(method, self.url + path, json=payload, timeout=timeout) as response:
                    if response.status < 400:
                        body = await response.json(content_type=None)
                        self.requests += 1
                        self._recovered()
                        return body
                    failure = f"HTTP {response.status}: {(await response.text())[:200]}"
                    if response.status < 500 and response.status not in RETRIED_STATUSES:
                        raise InferenceError(f"the inference service at {self.url} refused {method} {path}: {failure}")
            except (aiohttp.ClientError, TimeoutError) as error:
                failure = f"{error.__class__.__name__}: {error}".rstrip(": ")
            except ValueError as error:  # a success status without JSON: not a moodbot inference service
                raise InferenceError(f"{self.url}{path} did not answer JSON: {error}") from None
            if deadline - loop.time() <= backoff:
                break
            self._warn_outage(failure)
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, MAX_BACKOFF_S)
        raise InferenceUnavailable(
            f"the inference service at {self.url} did not answer {method} {path}: {attempt} attempt(s) in "
            f"{loop.time() - started:.1f} s (MOODBOT_INFERENCE_TIMEOUT_S={self.timeout_s:g}), last: {failure}"
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT))
        return self._session

    def _warn_outage(self, failure: str) -> None:
        """One warning per outage (not per request); :meth:`_recovered` closes it."""
        if not self._outage:
            self._outage = True
            log.warning("inference service at %s is failing (%s): retrying", self.url, failure)

    def _recovered(self) -> None:
        if self._outage:
            self._outage = False
            log.warning("inference service at %s answers again", self.url)


def _pick(served: list[ServiceInfo], fingerprint: str | None, url: str) -> ServiceInfo:
    """The served encoder with ``fingerprint`` (``None``: the only one); anything else is a clear error."""
    if fingerprint is None and len(served) == 1:
        return served[0]
    for info in served:
        if info.identity.fingerprint == fingerprint:
            return info
    offered = "; ".join(info.describe() for info in served)
    raise InferenceError(
        f"the inference service at {url} does not serve the encoder this head was trained for "
        f"(fingerprint {fingerprint}); it serves: {offered}"
    )
