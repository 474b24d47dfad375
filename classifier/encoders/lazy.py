"""An encoder whose model is loaded on first use, so that a run served from the cache never loads it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from classifier.encoders.identity import EncoderError, EncoderIdentity

if TYPE_CHECKING:
    import numpy as np

    from classifier.encoders.hf import Encoder


class LazyEncoder:
    """Knows its identity, width and numeric mode from the model's files; :meth:`embed` (or :attr:`loaded`)
    loads the real :class:`~classifier.encoders.hf.Encoder` once, thread-safely."""

    def __init__(self, identity: EncoderIdentity, dim: int, mode: str, load: Callable[[], Encoder]) -> None:
        self.identity = identity
        self.dim = dim
        self.mode = mode
        self._load = load
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()

    @property
    def cache_namespace(self) -> str:
        return self.identity.cache_namespace(self.mode)

    def describe(self) -> str:
        return self.identity.describe(self.dim, self.mode)

    @property
    def loaded(self) -> Encoder:
        """The real encoder, loaded on first access; it must have the identity promised."""
        with self._lock:
            if self._encoder is None:
                encoder = self._load()
                if encoder.cache_namespace != self.cache_namespace:
                    raise EncoderError(
                        f"{self.identity.name}: the loaded model ({encoder.describe()}) "
                        f"does not match its files ({self.describe()})"
                    )
                self._encoder = encoder
            return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Feature vectors for ``texts``, from the real encoder (loaded now if need be)."""
        return self.loaded.embed(texts)
