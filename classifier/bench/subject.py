"""What is benched: the configuration's encoder paths (as the bot loads them, or built for a model given by name)
and the texts."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cache import EmbeddingCache
from classifier.bench.probes import hub_reachable
from classifier.config import ClassifierConfig
from classifier.encoders.bundled import bundled_encoder, minilm_model_path
from classifier.encoders.hf import Encoder, pick_device
from classifier.encoders.identity import EncoderError, EncoderIdentity, EncoderLike
from classifier.encoders.lazy import LazyEncoder
from classifier.encoders.pooling import Pooling
from classifier.evaluation.data import load_tsv
from classifier.heads.logistic import HeadError, LogisticHead
from classifier.heads.tasks import SENTIMENT
from classifier.inference.classifier import Classifier, by_task
from classifier.inference.router import Paths
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
    """One encoder path under test (its classifier: encoder, heads, cache), how it was obtained, and its config."""

    classifier: Classifier
    random_init: bool
    head_note: str
    config: ClassifierConfig
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.classifier.path

    @property
    def encoder(self) -> Encoder:
        """The loaded encoder (the bench measures its model and tokenizer directly)."""
        return loaded(self.classifier.encoder)


def loaded(encoder: EncoderLike) -> Encoder:
    """The real encoder behind ``encoder`` (loading a lazy one now)."""
    if isinstance(encoder, LazyEncoder):
        return encoder.loaded
    assert isinstance(encoder, Encoder), f"the bench runs local encoders, not {type(encoder).__name__}"
    return encoder


@dataclass
class BenchConfiguration:
    """Every encoder path of the configuration under test, by path name (English first), as the bot routes them:
    one path, or the English and the multilingual one behind the language gate."""

    model: str  # as asked: MOODBOT_MODEL or --model
    subjects: dict[str, BenchSubject]
    english: str
    multilingual: str | None = None

    @property
    def paths(self) -> Paths:
        return Paths({name: s.classifier for name, s in self.subjects.items()}, self.english, self.multilingual)

    @property
    def routed(self) -> bool:
        return self.paths.routed

    @property
    def random_init(self) -> bool:
        return any(s.random_init for s in self.subjects.values())

    @property
    def notes(self) -> list[str]:
        prefix = len(self.subjects) > 1
        return [f"{name}: {note}" if prefix else note for name, s in self.subjects.items() for note in s.notes]

    def with_caches(self, cache_dir: Path, cache_size_mb: int,
                    encoders: dict[str, EncoderLike] | None = None) -> Paths:
        """The same paths (heads, path names, and encoders unless ``encoders`` replaces some) over new cache objects
        in ``cache_dir``: empty there, or, on the directory the paths already filled, memory tier cold."""
        classifiers = {}
        for name, subject in self.subjects.items():
            encoder = (encoders or {}).get(name) or subject.classifier.encoder
            cache = EmbeddingCache(cache_dir, encoder.cache_namespace, cache_size_mb, dim=encoder.dim)
            classifiers[name] = Classifier(encoder, subject.classifier.heads, cache, name)
        return Paths(classifiers, self.english, self.multilingual)

    def warm_up(self) -> None:
        """Load every model and run it once, and the language gate's models (what the bot does before it connects)."""
        self.paths.warm_up()

    def close(self) -> None:
        self.paths.close()


@dataclass(frozen=True)
class DataFile:
    """A data file to bench on: ``PATH[:WEIGHT][:three-way]`` as the CLI parses it. ``weight`` is the file's share of
    the burst relative to the other files' (equal by default)."""

    path: Path
    weight: float = 1.0
    three_way: bool = False

    def __str__(self) -> str:
        return str(self.path) + (f":{self.weight:g}" if self.weight != 1.0 else "") + (
            ":three-way" if self.three_way else "")


def shares(weights: Sequence[float], count: int) -> list[int]:
    """``count`` split in proportion to ``weights`` (largest remainders; the counts add up to ``count``)."""
    total = sum(weights)
    exact = [count * w / total for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return counts


def bench_texts(files: Sequence[DataFile], count: int) -> list[str]:
    """``count`` distinct texts from the files, each file's share its first distinct texts (cleaned as the bot cleans
    messages), in the order of the files; a file with too few gives what it has."""
    unique: dict[str, None] = {}
    for file, wanted in zip(files, shares([f.weight for f in files], count), strict=True):
        taken = 0
        for raw in load_tsv(file.path, three_way=file.three_way).texts:
            if taken >= wanted:
                break
            try:
                text = prepare_text(raw)
            except ValueError:
                continue
            if text not in unique:
                unique[text] = None
                taken += 1
        if taken < wanted:
            log.warning("%s has only %d distinct texts: %d of its %d in the burst", file.path, taken, taken, wanted)
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


def fp32_twin(subject: BenchSubject) -> Encoder | None:
    """The subject's encoder once more in fp32 on CPU (the baseline of its fast mode); ``None`` when it is fp32
    already or runs on CUDA (where the encoder always runs fp16)."""
    encoder = subject.encoder
    if encoder.mode == "fp32" or encoder.device.type != "cpu":
        return None
    fp32_config = dataclasses.replace(subject.config, device="cpu", quantize="none", precision="fp32")
    if subject.random_init:
        return _random_init_encoder(subject.config.model, encoder.pooling, fp32_config)
    return _load_encoder(subject.config.model, encoder.pooling, fp32_config)


def load_configuration(model_name: str, config: ClassifierConfig, cache_dir: Path) -> BenchConfiguration:
    """Every path ``model_name`` configures (as ``MOODBOT_MODEL``; ``MOODBOT_HEAD`` only for the configured model),
    each with its cache in ``cache_dir`` (empty)."""
    config = dataclasses.replace(config, model=model_name, head=config.head if model_name == config.model else None)
    english, multilingual = config.path_configs()
    subjects = {}
    try:
        for path_config in (english, multilingual):
            if path_config is not None:
                subjects[path_config.path_name] = load_subject(path_config, cache_dir)
    except BaseException:
        for subject in subjects.values():
            subject.classifier.close()
        raise
    return BenchConfiguration(model_name, subjects, english.path_name,
                              multilingual.path_name if multilingual is not None else None)


def load_subject(config: ClassifierConfig, cache_dir: Path) -> BenchSubject:
    """One path, with its cache in ``cache_dir``: exactly what the bot runs when the model's head loads (its own
    ``MOODBOT_HEAD``, or the heads shipped for a bundled model); else the encoder with a random head (speed only)."""
    model_name, notes = config.model, []
    head: LogisticHead | None = None
    if config.head is not None or bundled_encoder(model_name) is not None:  # else no head is meant for this model
        try:
            head = LogisticHead.load(config.head_path)
        except HeadError as error:
            notes.append(f"no usable head ({error})")
    if head is not None:
        try:
            classifier = Classifier.load(dataclasses.replace(config, cache_dir=cache_dir))
            others = sorted(set(classifier.heads) - {SENTIMENT.name})
            note = f"{'shipped ' if config.head is None else ''}head {config.head_path}" + (
                f" and the shipped {', '.join(others)} heads" if others else "")
            return BenchSubject(classifier, False, note, config)
        except HeadError as error:
            notes.append(f"head unusable: {error}")
    # A model without its own head: its own last hidden state runs every layer it has.
    pooling = head.encoder.pooling if head is not None else Pooling.parse("mean@-1")
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
        head_note = f"head {config.head_path} alone"
    else:
        head = _random_head(encoder)
        head_note = f"random {encoder.dim}-dim head (speed only)"
    cache = EmbeddingCache(cache_dir, encoder.cache_namespace, config.cache_size_mb, dim=encoder.dim)
    classifier = Classifier(encoder, by_task(head), cache, config.path_name)
    return BenchSubject(classifier, random_init, head_note, config, notes)
