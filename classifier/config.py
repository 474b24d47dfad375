"""What it takes to load a classifier and run its worker, as plain values.

The bot builds these from its settings (``Settings.classifier``); the classifier package
never reads the environment itself, so the bench, the CLI and the tests configure it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from classifier.encoders.bundled import DEFAULT_MODELS_DIR, bundled_encoder

#: ``MOODBOT_MODEL``'s value for two paths: English messages to all-mpnet-base-v2, every other language to
#: multilingual-e5-small (:mod:`classifier.language` decides per message). Any other value names one encoder.
MULTILINGUAL = "multilingual"
ROUTED_MODELS = ("mpnet", "e5")  # English path, multilingual path
DEFAULT_MODEL = MULTILINGUAL


@dataclass(frozen=True)
class ClassifierConfig:
    """Encoder, heads and cache of one :class:`~classifier.inference.classifier.Classifier`."""

    model: str = DEFAULT_MODEL
    head: Path | None = None  # None: the shipped head
    cache_dir: Path = Path("var/cache")
    cache_size_mb: int = 512
    device: str = "auto"  # auto | cpu | cuda
    quantize: str = "none"  # none | int8
    precision: str = "auto"  # auto | fp32 | bf16 on CPU (CUDA runs fp16); see classifier.encoders.identity.numeric_mode
    models_dir: Path = DEFAULT_MODELS_DIR  # where split bundled models are rebuilt once
    max_batch_tokens: int = 8192
    inference_url: str | None = None  # http(s)://... of `moodbot serve`: embed there; this process loads no model
    inference_timeout_s: float = 30.0  # the longest a batch waits for that service, retries included

    @property
    def head_path(self) -> Path:
        """The configured sentiment head, else the one shipped for the model (for a model not bundled: the default
        model's, which names the encoder it needs when loaded with another)."""
        bundled = bundled_encoder(self.model) or bundled_encoder(ROUTED_MODELS[0])
        assert bundled is not None
        return self.head or bundled.head_path

    @property
    def extra_head_paths(self) -> dict[str, Path]:
        """The other heads shipped for a bundled model (moderation signals), by task; none for other models."""
        bundled = bundled_encoder(self.model)
        return {} if bundled is None else {t: p for t, p in bundled.shipped_heads().items() if t != "sentiment"}

    @property
    def path_name(self) -> str:
        """How predictions name this encoder path: the bundled short name, else the model as configured."""
        bundled = bundled_encoder(self.model)
        return bundled.short_name if bundled is not None else self.model

    def path_configs(self) -> tuple[ClassifierConfig, ClassifierConfig | None]:
        """The English path's config and, for :data:`MULTILINGUAL`, the multilingual path's (else ``None``)."""
        if self.model != MULTILINGUAL:
            return self, None
        if self.head is not None:
            raise ValueError(
                f"MOODBOT_HEAD needs MOODBOT_MODEL to name the one encoder it was trained for, not {MULTILINGUAL!r}"
            )
        english, multilingual = (replace(self, model=name) for name in ROUTED_MODELS)
        return english, multilingual

    @property
    def numeric_mode(self) -> str:
        """The encoder's numeric mode under these settings (see :func:`classifier.encoders.identity.numeric_mode`)."""
        from classifier.encoders.identity import numeric_mode

        return numeric_mode(self.device, self.quantize, self.precision)


@dataclass(frozen=True)
class WorkerConfig:
    """Batching limits and the optional shared cache tier of a :class:`~classifier.inference.worker.BatchingWorker`."""

    max_batch: int = 512
    max_wait_ms: float = 5.0
    queue_size: int = 1024
    cache_url: str | None = field(default=None, repr=False)  # redis://... (may hold a password): Redis as the shared
    # embedding-cache tier behind the local ones
    cache_ttl_s: int = 30 * 24 * 3600  # set on every Redis write; 0: no expiry
    cache_pool_size: int = 16  # Redis connections per process; callers beyond it wait for a free one
    cache_timeout_s: float = 0.5  # connect, reply and pool wait; past it Redis counts as down
