"""Settings read from the environment and an optional `.env` file (python-dotenv).

The environment wins over `.env`. Every value is validated at start-up: a bad one raises
:class:`SettingsError` whose message names the variable, so the CLI can stop with one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_API_BASE = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Validated runtime configuration. ``repr`` never shows the token."""

    discord_token: str | None = field(default=None, repr=False)
    model: str = DEFAULT_MODEL
    head: Path | None = None
    device: str = "auto"
    quantize: str = "none"
    data_dir: Path = Path("var")
    cache_dir: Path = Path("var/cache")
    cache_size_mb: int = 512
    max_batch: int = 512
    max_wait_ms: float = 5.0
    max_batch_tokens: int = 8192
    queue_size: int = 1024
    flag_threshold: float = 0.9
    discord_api_base: str = DEFAULT_API_BASE
    discord_gateway_url: str = DEFAULT_GATEWAY_URL
    log_level: str = "INFO"

    @property
    def database_path(self) -> Path:
        """The SQLite file holding guild settings, opt-outs and flags."""
        return self.data_dir / "moodbot.sqlite3"


def _int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < low or (high is not None and value > high):
            raise ValueError
        return value

    parse.__doc__ = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError
        return value

    parse.__doc__ = f"a number between {low} and {high}"
    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError
        return value

    parse.__doc__ = "one of " + "|".join(options)
    return parse


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not value.startswith(tuple(f"{s}://" for s in schemes)):
            raise ValueError
        return value

    parse.__doc__ = "a URL starting with " + " or ".join(f"{s}://" for s in schemes)
    return parse


def load_settings(environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env") -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``) layered over ``.env``."""
    values: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if environ is None else environ)

    def get(name: str, parse: Callable[[str], T], default: T) -> T:
        raw = values.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is invalid: expected {parse.__doc__ or 'a valid value'}") from None

    data_dir = get("MOODBOT_DATA_DIR", Path, Settings.data_dir)
    head = get("MOODBOT_HEAD", Path, None)
    if head is not None and not head.is_file():
        raise SettingsError(f"MOODBOT_HEAD={str(head)!r} is invalid: no such file")
    return Settings(
        discord_token=values.get("DISCORD_TOKEN", "").strip() or None,
        model=values.get("MOODBOT_MODEL", "").strip() or DEFAULT_MODEL,
        head=head,
        device=get("MOODBOT_DEVICE", _choice("auto", "cpu", "cuda"), "auto"),
        quantize=get("MOODBOT_QUANTIZE", _choice("none", "int8"), "none"),
        data_dir=data_dir,
        cache_dir=get("MOODBOT_CACHE_DIR", Path, data_dir / "cache"),
        cache_size_mb=get("MOODBOT_CACHE_SIZE_MB", _int(1), Settings.cache_size_mb),
        max_batch=get("MOODBOT_MAX_BATCH", _int(1, 4096), Settings.max_batch),
        max_wait_ms=get("MOODBOT_MAX_WAIT_MS", _float(0.0, 10_000.0), Settings.max_wait_ms),
        max_batch_tokens=get("MOODBOT_MAX_BATCH_TOKENS", _int(64), Settings.max_batch_tokens),
        queue_size=get("MOODBOT_QUEUE_SIZE", _int(1), Settings.queue_size),
        flag_threshold=get("MOODBOT_FLAG_THRESHOLD", _float(0.5, 1.0), Settings.flag_threshold),
        discord_api_base=get("DISCORD_API_BASE", _url("http", "https"), DEFAULT_API_BASE).rstrip("/"),
        discord_gateway_url=get("DISCORD_GATEWAY_URL", _url("ws", "wss"), DEFAULT_GATEWAY_URL),
        log_level=get("MOODBOT_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info").upper(),
    )
