"""An encoder whose model is loaded on first use, so that a run served from the cache never loads it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from classifier.identity import EncoderError, EncoderIdentity

if TYPE_CHECKING:
    from classifier.encoder import Encoder


class LazyEncoder:
    """Answers identity questions (fingerprint, cache namespace, width) from the model's files; anything else
    (``embed``, ``model``, ``tokenizer``, ...) loads the real :class:`~classifier.encoder.Encoder` once, thread-safely."""

    def __init__(self, identity: EncoderIdentity, load: Callable[[], Encoder]) -> None:
        self._identity = identity
        self._load = load
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()
        self.name, self.weights_id, self.pooling = identity.name, identity.weights_id, identity.pooling
        self.max_length, self.dim = identity.max_length, identity.dim
        self.fingerprint, self.cache_namespace = identity.fingerprint, identity.cache_namespace

    @property
    def loaded(self) -> Encoder:
        """The real encoder, loaded on first access; it must have the identity promised."""
        with self._lock:
            if self._encoder is None:
                encoder = self._load()
                if encoder.cache_namespace != self.cache_namespace:
                    raise EncoderError(f"{self.name}: the loaded model ({encoder.describe()}) does not match its files ({self.describe()})")
                self._encoder = encoder
            return self._encoder

    def describe(self) -> str:
        return self._identity.describe()

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.loaded, attribute)
