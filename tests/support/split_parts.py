"""Fake split-model parts installed in a temporary site directory, laid out as the all-mpnet-base-v2 wheels are.

Each part is a real distribution (``*.dist-info`` with ``METADATA`` and a ``RECORD`` holding the part file's size
and hash), so :class:`~classifier.encoders.sources.split_wheels.SplitModel` finds them through ``importlib.metadata``
exactly as it
finds the installed ones; only the search path differs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from classifier.encoders.sources.split_wheels import SplitModel

FOLDER = "fake-model"
FILES = {
    "config.json": b'{"model_type": "fake"}',
    "desktop.ini": b"[.ShellClassInfo]",
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    "1_Pooling/desktop.ini": b"[.ShellClassInfo]",
}


def fake_weights(size: int = 3 * 1024 * 1024 + 11) -> bytes:
    return bytes((i * 7919 + i // 251) % 256 for i in range(size))


def build_parts(site: Path, weights: bytes, parts: int = 3, extra: dict[str, bytes] | None = None) -> SplitModel:
    """Zip ``FOLDER/`` (``weights`` as its model.safetensors), split it into ``parts`` installed distributions under
    ``site``; the returned model expects exactly ``weights``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{FOLDER}/", b"")
        archive.writestr(f"{FOLDER}/model.safetensors", weights)
        for name, content in (FILES | (extra or {})).items():
            archive.writestr(f"{FOLDER}/{name}", content)
    blob = buffer.getvalue()
    step = -(-len(blob) // parts)
    names = []
    for number in range(1, parts + 1):
        distribution, file_name = f"fake-model-part-{number:03d}", f"{FOLDER}.zip.{number:03d}"
        relative = f"fake-model-part_{number:03d}/input/{file_name}"
        chunk = blob[(number - 1) * step : number * step]
        (site / relative).parent.mkdir(parents=True)
        (site / relative).write_bytes(chunk)
        info = site / f"fake_model_part_{number:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.0.1\n")
        digest = base64.urlsafe_b64encode(hashlib.sha256(chunk).digest()).rstrip(b"=").decode()
        (info / "RECORD").write_text(f"{relative},sha256={digest},{len(chunk)}\n{info.name}/RECORD,,\n")
        names.append((distribution, file_name))
    return SplitModel(FOLDER, tuple(names), len(weights), hashlib.sha256(weights).hexdigest(), "reinstall the parts")


def part_file(site: Path, number: int) -> Path:
    return site / f"fake-model-part_{number:03d}" / "input" / f"{FOLDER}.zip.{number:03d}"
