"""The HTTP interface of ``moodbot serve``: routes, limits, and what a response holds.

An embedding service: it returns vectors, and the bot processes apply every head to them. One service may serve
several encoders (the English and the multilingual path); ``GET /v1/info`` lists them, and an embed request names
the one it wants by its fingerprint (``{"texts": [...], "encoder": "<fingerprint>"}``; optional when only one is
served). JSON throughout; each vector travels as base64 of its raw little-endian float32 bytes (never pickle).
Every embed response names the cache namespace of the encoder that computed it, so a client notices
a service restarted with another model before its vectors reach a cache.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.encoders.identity import MODES, EncoderIdentity
from classifier.text import EmptyTextError, prepare_text

INFO_PATH = "/v1/info"
EMBED_PATH = "/v1/embed"
STATS_PATH = "/v1/stats"
#: Texts one embed request may hold; clients send far smaller requests (see :mod:`classifier.serving.client`).
MAX_REQUEST_TEXTS = 1024
_FLOAT32 = np.dtype("<f4")


class ProtocolError(ValueError):
    """A request or response does not follow this module's format."""


def encode_vector(vector: np.ndarray) -> str:
    """Base64 of the raw little-endian float32 bytes of a 1-D vector."""
    return base64.b64encode(np.asarray(vector, dtype=_FLOAT32).tobytes()).decode("ascii")


def decode_vectors(encoded: Sequence[Any], dim: int) -> np.ndarray:
    """``[n, dim]`` float32 from :func:`encode_vector` strings; :class:`ProtocolError` for anything else."""
    out = np.empty((len(encoded), dim), dtype=np.float32)
    for row, item in enumerate(encoded):
        try:
            raw = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
        except binascii.Error:
            raw = b""
        if len(raw) != dim * _FLOAT32.itemsize:
            raise ProtocolError(f"vector {row} is not base64 of {dim} float32 values")
        out[row] = np.frombuffer(raw, dtype=_FLOAT32)
    if not np.all(np.isfinite(out)):
        raise ProtocolError("the service sent non-finite vector values")
    return out


def embed_request_encoder(body: Any) -> str | None:
    """The encoder fingerprint an embed request names, ``None`` when it names none."""
    encoder = body.get("encoder") if isinstance(body, Mapping) else None
    if encoder is not None and not isinstance(encoder, str):
        raise ProtocolError('"encoder" must be an encoder fingerprint (a string)')
    return encoder


def embed_request_texts(body: Any) -> list[str]:
    """The texts of an embed request body ``{"texts": [str, ...]}``, checked and cleaned as the bot cleans them
    (a no-op for a bot's texts, which come cleaned: their vectors are cached under exactly these strings)."""
    texts = body.get("texts") if isinstance(body, Mapping) else None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ProtocolError('the body must be a JSON object {"texts": [string, ...]}')
    if len(texts) > MAX_REQUEST_TEXTS:
        raise ProtocolError(f"at most {MAX_REQUEST_TEXTS} texts per request, got {len(texts)}")
    prepared = []
    for index, text in enumerate(texts):
        try:
            prepared.append(prepare_text(text))
        except EmptyTextError:
            raise ProtocolError(f"text {index} is empty once cleaned") from None
    return prepared


@dataclass(frozen=True)
class ServiceInfo:
    """What ``GET /v1/info`` says of one served encoder: its identity, width and numeric mode, the head that names
    its features, the batching limits."""

    identity: EncoderIdentity
    dim: int
    mode: str
    head: str
    max_batch: int
    max_wait_ms: float

    @property
    def cache_namespace(self) -> str:
        return self.identity.cache_namespace(self.mode)

    def describe(self) -> str:
        return self.identity.describe(self.dim, self.mode)

    def to_json(self) -> dict[str, Any]:
        return {
            "encoder": self.identity.to_json(), "dim": self.dim, "mode": self.mode, "namespace": self.cache_namespace,
            "description": self.describe(), "head": self.head,
            "batching": {"max_batch": self.max_batch, "max_wait_ms": self.max_wait_ms},
        }

    @classmethod
    def from_json(cls, data: Any) -> ServiceInfo:
        """Parse and check an info response (the fingerprint must match the identity it claims)."""
        try:
            identity = EncoderIdentity.from_json(data["encoder"])
            info = cls(identity, int(data["dim"]), str(data["mode"]), str(data["head"]),
                       int(data["batching"]["max_batch"]), float(data["batching"]["max_wait_ms"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ProtocolError(f"not a moodbot inference service info response: {error}") from None
        if info.dim < 1 or info.mode not in MODES or data.get("namespace") != info.cache_namespace:
            raise ProtocolError("the info response's width, numeric mode or cache namespace is inconsistent")
        return info


def service_info_json(encoders: Sequence[ServiceInfo]) -> dict[str, Any]:
    """The body of ``GET /v1/info``: every served encoder."""
    return {"encoders": [info.to_json() for info in encoders]}


def service_infos(body: Any) -> list[ServiceInfo]:
    """Parse ``GET /v1/info``: the served encoders."""
    encoders = body.get("encoders") if isinstance(body, Mapping) else None
    if not isinstance(encoders, list) or not encoders:
        raise ProtocolError("not a moodbot inference service info response: no encoders listed")
    return [ServiceInfo.from_json(item) for item in encoders]
