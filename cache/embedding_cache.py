"""A disk cache of embedding vectors keyed by a hash of the text the model sees.

Values are raw little-endian float bytes behind a small header (no pickle, ever); keys are
SHA-256 hex digests of ``namespace + text``, so the cache never stores message text and two
encoders never read each other's vectors. A corrupt cache directory is moved aside and a
fresh one started: the cache is an optimisation and must never take the service down.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import diskcache
import numpy as np

log = logging.getLogger(__name__)

_MAGIC = b"MBV1"
_HEADER = struct.Struct("<4sBI")  # magic, dtype code, dimension
_DTYPES: dict[int, np.dtype] = {1: np.dtype("<f4"), 2: np.dtype("<f2")}
_DTYPE_CODES = {dtype: code for code, dtype in _DTYPES.items()}
_CACHE_ERRORS = (sqlite3.Error, OSError, diskcache.Timeout)


class _NoPickleDisk(diskcache.Disk):
    """A diskcache ``Disk`` that refuses to unpickle anything found in the database."""

    def fetch(self, mode, filename, value, read):  # type: ignore[override]
        if mode == diskcache.core.MODE_PICKLE:
            raise ValueError("refusing to unpickle a cache value")
        return super().fetch(mode, filename, value, read)

    def get(self, key, raw):  # type: ignore[override]
        if not raw:
            raise ValueError("refusing to unpickle a cache key")
        return super().get(key, raw)


def encode_vector(vector: np.ndarray) -> bytes:
    """Serialise a 1-D float vector as header + raw little-endian bytes."""
    array = np.ascontiguousarray(vector)
    dtype = array.dtype.newbyteorder("<")
    if dtype not in _DTYPE_CODES or array.ndim != 1:
        raise ValueError(f"cannot cache a {array.dtype} array of shape {array.shape}")
    return _HEADER.pack(_MAGIC, _DTYPE_CODES[dtype], array.shape[0]) + array.astype(dtype, copy=False).tobytes()


def decode_vector(blob: bytes) -> np.ndarray | None:
    """Inverse of :func:`encode_vector`; ``None`` for anything malformed."""
    if not isinstance(blob, bytes) or len(blob) < _HEADER.size:
        return None
    magic, code, dim = _HEADER.unpack_from(blob)
    dtype = _DTYPES.get(code)
    if magic != _MAGIC or dtype is None or len(blob) != _HEADER.size + dim * dtype.itemsize:
        return None
    return np.frombuffer(blob, dtype=dtype, offset=_HEADER.size).astype(np.float32)


@dataclass(frozen=True)
class CacheStats:
    """Counters of one cache object plus the size of the directory's contents."""

    disk_hits: int
    memory_hits: int
    misses: int
    entries: int
    volume_bytes: int
    directory: str

    @property
    def hit_rate(self) -> float:
        """Share of lookups answered from either tier."""
        total = self.disk_hits + self.memory_hits + self.misses
        return (self.disk_hits + self.memory_hits) / total if total else 0.0


class EmbeddingCache:
    """Vectors on disk, namespaced by encoder fingerprint, behind a small in-memory LRU. Thread-safe.

    ``memory_items`` bounds the in-process tier (0 disables it); the disk tier is bounded by
    ``size_limit_mb`` and evicts the least recently stored vectors first.
    """

    def __init__(
        self,
        directory: str | Path,
        namespace: str,
        size_limit_mb: int = 512,
        dim: int | None = None,
        memory_items: int = 4096,
    ) -> None:
        self.directory = Path(directory)
        self.namespace = namespace
        self.dim = dim
        self.size_limit_bytes = size_limit_mb * 1024 * 1024
        self.memory_items = memory_items
        self.disk_hits = 0
        self.memory_hits = 0
        self.misses = 0
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the disk tier
        self._memory_lock = threading.Lock()  # the memory tier: never held during disk I/O
        self._cache = self._open()

    def _open(self) -> diskcache.Cache:
        try:
            cache = self._connect()
            cache.volume()  # touch the database once so corruption shows here
            return cache
        except _CACHE_ERRORS as error:
            return self._recover(error)

    def _connect(self) -> diskcache.Cache:
        return diskcache.Cache(
            str(self.directory),
            size_limit=self.size_limit_bytes,
            disk=_NoPickleDisk,
            eviction_policy="least-recently-stored",
            cull_limit=0,  # evict in set_many after the commit: inside a transaction the volume never shrinks
            timeout=5,
        )

    def _recover(self, error: BaseException) -> diskcache.Cache:
        """Move an unusable cache directory aside and start an empty one."""
        aside = self.directory.with_name(f"{self.directory.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning(
            "embedding cache at %s is unusable (%s); moved aside to %s and starting fresh", self.directory, error, aside
        )
        old = getattr(self, "_cache", None)
        if old is not None:
            try:
                old.close()
            except _CACHE_ERRORS:
                pass
        if self.directory.exists():
            shutil.move(str(self.directory), str(aside))
        return self._connect()

    def key(self, text: str) -> str:
        """The storage key for ``text``: SHA-256 of namespace and text, never the text itself."""
        digest = hashlib.sha256(self.namespace.encode("utf-8"))
        digest.update(b"\x00")
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def get_memory(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Look up each text in the in-memory tier only (no I/O, never waits for disk: safe on an event loop)."""
        with self._memory_lock:
            vectors = [self._remember(self.key(text)) for text in texts]
            self.memory_hits += sum(vector is not None for vector in vectors)
        return vectors

    def remember_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Put vectors in the in-memory tier only (copies: a row never keeps its whole batch alive)."""
        with self._memory_lock:
            for text, vector in items:
                self._memorise(self.key(text), np.array(vector, dtype=np.float32))

    def get_many(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Look up each text in memory, then on disk; a missing, malformed or wrong-sized vector reads as ``None``."""
        keys = [self.key(text) for text in texts]
        with self._memory_lock:
            vectors = [self._remember(key) for key in keys]
            self.memory_hits += sum(vector is not None for vector in vectors)
        missing = [index for index, vector in enumerate(vectors) if vector is None]
        if missing:
            with self._lock:
                for index in missing:
                    vectors[index] = self._read_disk(keys[index])
            found = [index for index in missing if vectors[index] is not None]
            with self._memory_lock:
                for index in found:
                    self._memorise(keys[index], vectors[index])
                self.disk_hits += len(found)
                self.misses += len(missing) - len(found)
        return vectors

    def _read_disk(self, key: str) -> np.ndarray | None:
        try:
            blob = self._cache.get(key, default=None, retry=True)
        except _CACHE_ERRORS as error:
            self._cache = self._recover(error)
            return None
        except ValueError:  # a pickled value (refused by _NoPickleDisk): never unpickled, reads as a miss
            return None
        return self._valid(decode_vector(blob)) if blob is not None else None

    def _remember(self, key: str) -> np.ndarray | None:
        vector = self._memory.get(key)
        if vector is not None:
            self._memory.move_to_end(key)
        return vector

    def _memorise(self, key: str, vector: np.ndarray) -> None:
        if self.memory_items <= 0:
            return
        self._memory[key] = vector
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def _valid(self, vector: np.ndarray | None) -> np.ndarray | None:
        if vector is None or (self.dim is not None and vector.shape[0] != self.dim):
            return None
        return vector

    def set_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store vectors for texts in memory and on disk."""
        items = list(items)
        self.remember_many(items)
        self.write_disk(items)

    def write_disk(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store vectors on disk only, in one transaction, then evict down to the size limit."""
        pairs = [(self.key(text), encode_vector(vector)) for text, vector in items]
        if not pairs:
            return
        with self._lock:
            try:
                with self._cache.transact(retry=True):
                    for key, blob in pairs:
                        self._cache.set(key, blob, retry=True)
                self._cache.cull(retry=True)  # least recently stored first, until under the size limit
            except _CACHE_ERRORS as error:
                self._cache = self._recover(error)

    def stats(self) -> CacheStats:
        """Hit/miss counters of this object and the entry count and volume on disk."""
        with self._lock:
            try:
                entries, volume = len(self._cache), self._cache.volume()
            except _CACHE_ERRORS as error:
                self._cache = self._recover(error)
                entries, volume = 0, 0
            return CacheStats(self.disk_hits, self.memory_hits, self.misses, entries, volume, str(self.directory))

    def clear(self) -> int:
        """Delete every entry (all namespaces); returns how many were removed."""
        with self._memory_lock:
            self._memory.clear()
        with self._lock:
            try:
                return self._cache.clear(retry=True)
            except _CACHE_ERRORS as error:
                self._cache = self._recover(error)
                return 0

    def close(self) -> None:
        """Close the underlying database connections."""
        with self._lock:
            self._cache.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
