"""What is benched: the classifier (as the bot loads it, or built for a model given by name) and the texts."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cache import EmbeddingCache
from classifier.bench.probes import hub_reachable
from classifier.config import ClassifierConfig
from classifier.encoders.bundled import bundled_encoder, minilm_model_path
from classifier.encoders.hf import Encoder, pick_device
from classifier.encoders.identity import EncoderError, EncoderIdentity
from classifier.encoders.lazy import LazyEncoder
from classifier.encoders.pooling import Pooling
from classifier.evaluation.data import load_tsv
from classifier.heads.logistic import HeadError, LogisticHead
from classifier.inference.classifier import Classifier, by_task
from classifier.text import prepare_text

log = logging.getLogger(__name__)

RANDOM_SEED = 0


def _distilbert() -> torch.nn.Module:
    from transformers import DistilBertConfig, DistilBertModel

    return DistilBertModel(DistilBertConfig())


def _bert_base() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig())


# Hub architectures that share the bundled model's uncased WordPiece vocabulary (30,522 tokens):
# benchable offline from their default config.
RANDOM_INIT_ARCHITECTURES: dict[str, Callable[[], torch.nn.Module]] = {
    "distilbert-base-uncased": _distilbert,
    "distilbert/distilbert-base-uncased": _distilbert,
    "bert-base-uncased": _bert_base,
    "google-bert/bert-base-uncased": _bert_base,
}


@dataclass
class BenchSubject:
    """The classifier under test and how it was obtained."""

    classifier: Classifier
    random_init: bool
    head_note: str
    notes: list[str] = field(default_factory=list)

    @property
    def encoder(self) -> Encoder:
        """The loaded encoder (the bench measures its model and tokenizer directly)."""
        encoder = self.classifier.encoder
        if isinstance(encoder, LazyEncoder):
            return encoder.loaded
        assert isinstance(encoder, Encoder)
        return encoder


def bench_texts(path: Path, count: int) -> list[str]:
    """The first ``count`` distinct texts of a labelled TSV, cleaned as the bot cleans messages."""
    unique: dict[str, None] = {}
    for raw in load_tsv(path).texts:
        try:
            unique[prepare_text(raw)] = None
        except ValueError:
            continue
        if len(unique) >= count:
            break
    return list(unique)


@contextlib.contextmanager
def _offline_hub() -> Iterator[None]:
    """Hub offline mode for one load: local cache only, no minute of retries against an unreachable hub."""
    import huggingface_hub.constants as hub_constants

    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def _shipped_head(config: ClassifierConfig) -> tuple[LogisticHead | None, str]:
    try:
        return LogisticHead.load(config.head_path), str(config.head_path)
    except HeadError as error:
        return None, str(error)


def _random_head(encoder: Encoder) -> LogisticHead:
    rng = np.random.default_rng(RANDOM_SEED)
    weights = rng.normal(0.0, 1.0 / np.sqrt(encoder.dim), (3, encoder.dim))
    return LogisticHead(
        encoder.identity, weights, np.zeros(3), np.zeros(encoder.dim), np.ones(encoder.dim), training={"random": True}
    )


def _random_init_encoder(name: str, pooling: Pooling, config: ClassifierConfig) -> Encoder:
    from transformers import AutoTokenizer

    torch.manual_seed(RANDOM_SEED)
    model = RANDOM_INIT_ARCHITECTURES[name]()
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_model_path()))  # the same uncased vocab.txt
    max_length = int(min(getattr(model.config, "max_position_embeddings", 512), 512))
    identity = EncoderIdentity(name, f"random-init:seed={RANDOM_SEED}", pooling, max_length)
    return Encoder.from_model(
        model, tokenizer, identity, device=pick_device(config.device), mode=config.numeric_mode,
        max_batch_tokens=config.max_batch_tokens,
    )


def _load_encoder(model_name: str, pooling: Pooling, config: ClassifierConfig) -> Encoder:
    """``model_name`` as ``config`` loads it; a hub name from the local hub cache only when the hub is unreachable."""
    on_disk = bundled_encoder(model_name) is not None or Path(model_name).expanduser().is_dir()
    with contextlib.nullcontext() if on_disk or hub_reachable() else _offline_hub():
        return Encoder.configured(dataclasses.replace(config, model=model_name), pooling)


def fp32_twin(subject: BenchSubject, model_name: str, config: ClassifierConfig) -> Encoder | None:
    """The subject's encoder once more in fp32 on CPU (the baseline of its fast mode); ``None`` when it is fp32
    already or runs on CUDA (where the encoder always runs fp16)."""
    encoder = subject.encoder
    if encoder.mode == "fp32" or encoder.device.type != "cpu":
        return None
    fp32_config = dataclasses.replace(config, device="cpu", quantize="none", precision="fp32")
    if subject.random_init:
        return _random_init_encoder(model_name, encoder.pooling, fp32_config)
    return _load_encoder(model_name, encoder.pooling, fp32_config)


def load_subject(model_name: str, config: ClassifierConfig, cache_dir: Path) -> BenchSubject:
    """The classifier to bench, with its cache in ``cache_dir`` (empty)."""
    head, head_source = _shipped_head(config)
    notes: list[str] = []
    if head is not None and model_name == config.model:
        try:  # exactly what the bot runs, with a temporary cache
            classifier = Classifier.load(dataclasses.replace(config, cache_dir=cache_dir))
            return BenchSubject(classifier, False, f"shipped head {head_source}")
        except HeadError as error:
            notes.append(f"shipped head unusable: {error}")
    elif head is None:
        notes.append(f"no usable head ({head_source})")
    # Another model may be shallower than the head's encoder: its own last hidden state runs every layer it has.
    pooling = head.encoder.pooling if head is not None and model_name == config.model else Pooling.parse("mean@-1")
    random_init = False
    try:
        encoder = _load_encoder(model_name, pooling, config)
    except EncoderError as error:
        if model_name not in RANDOM_INIT_ARCHITECTURES:
            raise
        log.warning("no weights for %s (%s): benching its architecture random-initialised", model_name,
                    str(error).split(")")[0])
        encoder = _random_init_encoder(model_name, pooling, config)
        random_init = True
        notes.append(
            f"{model_name}: weights not available here; RANDOM-INIT from its default config (seed {RANDOM_SEED}), "
            "real uncased vocab from the bundled model: speed figures only"
        )
    if head is not None and head.encoder.fingerprint == encoder.fingerprint:
        head_note = f"shipped head {head_source}"
    else:
        head = _random_head(encoder)
        head_note = f"random {encoder.dim}-dim head (speed only)"
    cache = EmbeddingCache(cache_dir, encoder.cache_namespace, config.cache_size_mb, dim=encoder.dim)
    return BenchSubject(Classifier(encoder, by_task(head), cache), random_init, head_note, notes)
