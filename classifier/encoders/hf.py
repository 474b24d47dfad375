"""A frozen transformer encoder that turns texts into pooled feature vectors.

Like sentence-transformers' ``Transformer`` + ``Pooling`` modules, it wraps a Hugging Face
``AutoModel``/``AutoTokenizer`` pair loaded with ``from_pretrained(name_or_path)``. Texts are
tokenized once, sorted by length and cut into micro-batches under a token budget so that little
compute is spent on padding. Only the layers the pooling reads are kept: a feature of hidden state
k never runs the layers above k.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from classifier.config import ClassifierConfig
from classifier.encoders.bundled import DEFAULT_MODELS_DIR
from classifier.encoders.cpu_bf16 import bf16_model
from classifier.encoders.identity import (
    EncoderError,
    EncoderIdentity,
    ModelSource,
    cpu_has_native_bf16,
    cuda_available,
    max_length_limits,
    numeric_mode,
    resolve_model,
)
from classifier.encoders.pooling import Pooling
from classifier.encoders.sources.e5_q4 import folder_prefix

log = logging.getLogger(__name__)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()


# Rows per micro-batch (besides the token budget); README "Performance" says why CPU batches are small.
CPU_MAX_BATCH_ROWS = 16
GPU_MAX_BATCH_ROWS = 256


def pick_device(preference: str = "auto") -> torch.device:
    """``cuda`` when asked for or available (with ``auto``), else ``cpu``: the same answer as
    :func:`~classifier.encoders.identity.numeric_mode` gives for the mode (both ask :func:`cuda_available`)."""
    available = cuda_available()
    if preference == "cuda" and not available:
        raise EncoderError("MOODBOT_DEVICE=cuda but no CUDA device is available")
    if preference == "cuda" or (preference == "auto" and available):
        return torch.device("cuda")
    return torch.device("cpu")


def available_cpus() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Encoder:
    """Texts in, float32 feature vectors out (``[n, dim]``)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        identity: EncoderIdentity,
        *,
        device: torch.device | None = None,
        mode: str = "fp32",
        max_batch_tokens: int = 8192,
        max_batch_size: int = 256,
        layers: tuple[int, ...] | None = None,
        prefix: str = "",
    ) -> None:
        """``layers``: the pooling's hidden states as absolute indices when ``model`` is already truncated.
        ``prefix``: put before every text (the model's default prompt, e.g. e5's ``query: ``)."""
        self.model = model.eval()
        self.prefix = prefix
        self.tokenizer = tokenizer
        self.identity = identity
        self.device = device or torch.device("cpu")
        self.mode = mode
        self.max_batch_tokens = max(max_batch_tokens, identity.max_length)
        self.max_batch_size = max_batch_size
        self.dim = identity.pooling.output_dim(model.config.hidden_size)
        self.depth = _model_depth(model)
        self.layers = layers if layers is not None else resolve_layers(identity.pooling, self.depth)
        if max(self.layers) > self.depth:
            raise EncoderError(f"pooling {identity.pooling} reads beyond the {self.depth} layers this model runs")
        # the same hidden states counted from the end of the computed stack (-1: its last layer)
        self.layer_pooling = Pooling(identity.pooling.methods, tuple(i - self.depth - 1 for i in self.layers))
        self.embed_calls = 0
        self.forward_calls = 0
        self._lanes: ThreadPoolExecutor | None = None
        self._lanes_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        name_or_path: str,
        *,
        pooling: Pooling = Pooling(),
        device: str = "auto",
        quantize: str = "none",
        precision: str = "auto",
        max_batch_tokens: int = 8192,
        models_dir: Path = DEFAULT_MODELS_DIR,
        source: ModelSource | None = None,
    ) -> Encoder:
        """Load tokenizer and model with ``from_pretrained``: a bundled model, a hub name or a local folder (with
        its default prompt, if it has one).

        ``device``, ``quantize`` and ``precision`` pick the numeric mode
        (:func:`~classifier.encoders.identity.numeric_mode`).
        ``source``: :func:`~classifier.encoders.identity.resolve_model`'s answer when the caller has it already.
        """
        mode = numeric_mode(device, quantize, precision)
        source = source or resolve_model(name_or_path, models_dir)
        target = pick_device(device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source.load_from)
            model = AutoModel.from_pretrained(source.load_from, use_safetensors=True)
        except (OSError, ValueError) as error:
            raise EncoderError(
                f"could not load model {name_or_path!r} ({error.__class__.__name__}: {str(error).splitlines()[0]}). "
                "Use a Hugging Face hub name on a machine that can reach the hub, "
                "or a local folder saved with save_pretrained."
            ) from error
        weights_id = source.weights_id or f"revision:{getattr(model.config, '_commit_hash', None) or 'unknown'}"
        identity = EncoderIdentity(source.name, weights_id, pooling, _max_length(source.load_from, tokenizer, model))
        prefix = folder_prefix(Path(source.load_from)) if source.is_local else ""
        return cls.from_model(
            model, tokenizer, identity, device=target, mode=mode, max_batch_tokens=max_batch_tokens, prefix=prefix
        )

    @classmethod
    def configured(cls, config: ClassifierConfig, pooling: Pooling, source: ModelSource | None = None) -> Encoder:
        """The encoder ``config`` asks for, with a head's ``pooling``: the one way the CLI, the worker, the
        service and the bench load an encoder."""
        return cls.load(
            config.model, pooling=pooling, device=config.device, quantize=config.quantize,
            precision=config.precision, max_batch_tokens=config.max_batch_tokens, models_dir=config.models_dir,
            source=source,
        )

    @classmethod
    def from_model(
        cls,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        identity: EncoderIdentity,
        *,
        device: torch.device | None = None,
        mode: str = "fp32",
        max_batch_tokens: int = 8192,
        prefix: str = "",
    ) -> Encoder:
        """Wrap an already built model in numeric ``mode``: its layers above the deepest one the pooling reads
        dropped, then half precision on CUDA, or on CPU bf16 weights or int8 Linear layers.

        On CPU a micro-batch holds at most :data:`CPU_MAX_BATCH_ROWS` texts: a CPU's matrix products are
        efficient from a few hundred tokens on, so smaller length-sorted batches buy less padding for free.
        """
        device = device or torch.device("cpu")
        model = model.eval()
        layers = resolve_layers(identity.pooling, _model_depth(model))
        truncate_layers(model, max(layers))
        if device.type == "cuda":
            if mode != "fp16":
                raise EncoderError(f"an encoder on CUDA runs fp16, not {mode}")
            model = model.half().to(device)
        else:
            torch.set_num_threads(available_cpus())
            model = cpu_model(model, mode)
        return cls(
            model, tokenizer, identity, device=device, mode=mode, max_batch_tokens=max_batch_tokens,
            max_batch_size=GPU_MAX_BATCH_ROWS if device.type == "cuda" else CPU_MAX_BATCH_ROWS, layers=layers,
            prefix=prefix,
        )

    def int8_copy(self) -> Encoder:
        """This fp32 CPU encoder with a dynamically int8-quantized copy of its model (same identity, mode ``int8``)."""
        if self.mode != "fp32":
            raise EncoderError(f"int8 quantization starts from an fp32 CPU model, not {self.mode}")
        model = quantize_int8(copy.deepcopy(self.model))
        return Encoder(model, self.tokenizer, self.identity, device=self.device, mode="int8",
                       max_batch_tokens=self.max_batch_tokens, max_batch_size=self.max_batch_size, layers=self.layers,
                       prefix=self.prefix)

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def weights_id(self) -> str:
        return self.identity.weights_id

    @property
    def pooling(self) -> Pooling:
        return self.identity.pooling

    @property
    def max_length(self) -> int:
        return self.identity.max_length

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def cache_namespace(self) -> str:
        return self.identity.cache_namespace(self.mode)

    def describe(self) -> str:
        """One line for logs and reports."""
        return self.identity.describe(self.dim, self.mode)

    def token_lengths(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to the model's maximum length."""
        encoded = self.tokenizer(
            [self.prefix + text for text in texts] if self.prefix else list(texts),
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return encoded["input_ids"]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Feature vectors for ``texts`` (already cleaned), in input order."""
        self.embed_calls += 1
        output = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return output
        ids = self.token_lengths(texts)
        batches = self.micro_batches([len(sequence) for sequence in ids])
        self.forward_calls += len(batches)
        lanes = self.cpu_lanes()
        if lanes is None:
            with torch.inference_mode():
                for batch in batches:
                    output[batch] = self._forward([ids[i] for i in batch])
        else:  # shortest first, one micro-batch per core at a time
            futures = [lanes.submit(self._forward_inference, [ids[i] for i in batch]) for batch in batches]
            for batch, future in zip(batches, futures, strict=True):
                output[batch] = future.result()
        return output

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The model and the pooling on one padded batch: ``[rows, dim]`` float32 (call under inference mode)."""
        outputs = self.model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=self.layer_pooling.needs_all_layers
        )
        hidden = outputs.hidden_states if self.layer_pooling.needs_all_layers else (outputs.last_hidden_state,)
        return self.layer_pooling(hidden, attention_mask)

    def cpu_lanes(self) -> ThreadPoolExecutor | None:
        """On a multi-core CPU, one single-threaded forward lane per core (``None`` elsewhere).

        Micro-batches run side by side, each on one core, instead of one at a time with every core
        synchronising inside each matrix product: as fast on an idle machine, and far faster when
        other processes share the cores (an OpenMP team then waits at each barrier for a core, and
        bf16's shorter matrix products make those waits weigh more).
        """
        if self.device.type != "cpu" or available_cpus() < 2:
            return None
        with self._lanes_lock:
            if self._lanes is None:
                self._lanes = _single_threaded_pool(available_cpus())
            return self._lanes

    def _forward_inference(self, sequences: list[list[int]]) -> np.ndarray:
        with torch.inference_mode():  # thread-local: set in the lane that runs the forward
            return self._forward(sequences)

    def micro_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """The indices of texts of these token lengths as the model runs them: consecutive runs of the length-sorted
        order (shortest first) whose padded size fits the token budget and the row limit."""
        batches: list[list[int]] = []
        batch: list[int] = []
        for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
            longest = lengths[index]  # ascending order: the newest item is the longest
            if batch and ((len(batch) + 1) * longest > self.max_batch_tokens or len(batch) >= self.max_batch_size):
                batches.append(batch)
                batch = []
            batch.append(index)
        if batch:
            batches.append(batch)
        return batches

    def _forward(self, sequences: list[list[int]]) -> np.ndarray:
        width = max(len(s) for s in sequences)
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[row, : len(sequence)] = 1
        if self.device.type == "cuda":
            input_ids = input_ids.pin_memory().to(self.device, non_blocking=True)
            attention_mask = attention_mask.pin_memory().to(self.device, non_blocking=True)
        return self.features(input_ids, attention_mask).cpu().numpy()


def layer_stack(model: torch.nn.Module) -> torch.nn.Module | None:
    """The module holding the transformer blocks as ``.layer``: ``model.encoder`` (BERT, MPNet, RoBERTa) or
    ``model.transformer`` (DistilBERT); ``None`` for other architectures (they always run whole)."""
    for attribute in ("encoder", "transformer"):
        stack = getattr(model, attribute, None)
        if isinstance(getattr(stack, "layer", None), torch.nn.ModuleList):
            return stack
    return None


def _model_depth(model: torch.nn.Module) -> int:
    stack = layer_stack(model)
    return len(stack.layer) if stack is not None else int(model.config.num_hidden_layers)


def resolve_layers(pooling: Pooling, depth: int) -> tuple[int, ...]:
    """The pooling's hidden-state indices as absolute ones (0 = embeddings, ``depth`` = last layer)."""
    resolved = tuple(layer if layer >= 0 else depth + 1 + layer for layer in pooling.layers)
    if any(not 0 <= layer <= depth for layer in resolved):
        raise EncoderError(f"pooling {pooling} reads a hidden state the model does not have (0 to {depth})")
    return resolved


def truncate_layers(model: torch.nn.Module, deepest: int) -> None:
    """Drop the transformer blocks above hidden state ``deepest`` (at least one block stays): hidden state k of
    the truncated model is hidden state k of the whole one, and the blocks above it are never computed."""
    stack = layer_stack(model)
    keep = max(1, deepest)
    if stack is not None and keep < len(stack.layer):
        stack.layer = stack.layer[:keep]
        model.config.num_hidden_layers = keep


def cpu_model(model: PreTrainedModel, mode: str) -> PreTrainedModel:
    """``model`` for a CPU in numeric ``mode``: as is (fp32), in bf16
    (:func:`~classifier.encoders.cpu_bf16.bf16_model`), or with int8 Linear layers.

    bf16 weights rather than autocast: autocast converts every weight at every call, a bf16 copy does it once.
    """
    if mode == "int8":
        return quantize_int8(model)
    if mode == "bf16":
        if not torch.backends.mkldnn.is_available():
            raise EncoderError("this torch build has no oneDNN (mkldnn) for bf16 on CPU: set MOODBOT_PRECISION=fp32")
        if not cpu_has_native_bf16():
            log.warning("bf16 asked for on a CPU without native bf16 (avx512_bf16/amx_bf16): expect it to be slow")
        return bf16_model(model)
    if mode != "fp32":
        raise EncoderError(f"numeric mode {mode} does not run on CPU")
    return model


def _single_threaded_pool(workers: int) -> ThreadPoolExecutor:
    """``workers`` threads whose torch ops each use one intra-op thread; other threads keep their setting."""
    previous = torch.get_num_threads()
    started = threading.Barrier(workers + 1)

    def single_threaded() -> None:
        torch.get_num_threads()  # initialise this thread's OpenMP/MKL state first ...
        torch.set_num_threads(1)  # ... then pin it to one thread (this also sets the process-wide default)
        started.wait()

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moodbot-encoder", initializer=single_threaded)
    for _ in range(workers):
        pool.submit(int)  # start every thread now (each runs the initializer once)
    started.wait()
    torch.set_num_threads(previous)  # restore the process-wide default for every other thread
    return pool


def _max_length(folder: str, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> int:
    """The sentence-transformers ``max_seq_length`` when present, else tokenizer and position limits."""
    return max_length_limits(folder, getattr(model.config, "max_position_embeddings", 512), tokenizer.model_max_length)


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """Dynamic int8 quantization of every Linear layer (CPU only)."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
