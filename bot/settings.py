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
from urllib.parse import urlsplit

from dotenv import dotenv_values

from bot.admission import DEFAULT_BACKLOG, DEFAULT_CONCURRENCY
from bot.sharding import ShardConfig, parse_count, parse_ids
from classifier.config import DEFAULT_MODEL, ClassifierConfig, WorkerConfig
from classifier.encoders.identity import PRECISIONS, EncoderError, numeric_mode
from classifier.flag_policy import DEFAULT_FLAG_ON, DEFAULT_FLAG_THRESHOLD, FLAG_THRESHOLD_RANGE, parse_flag_on

DEFAULT_API_BASE = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the variable."""


@dataclass(frozen=True)
class DashboardSettings:
    """The web dashboard: where it listens, its public URL (OAuth redirect) and its OAuth2 client credentials."""

    port: int | None = None  # None: `moodbot run` starts no dashboard
    host: str = "127.0.0.1"
    public_url: str | None = None  # None: http://HOST:PORT
    client_id: int | None = None  # None: the bot's application id
    client_secret: str | None = field(default=None, repr=False)
    session_key: str | None = field(default=None, repr=False)  # a Fernet key; None: the one kept in the database

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class Settings:
    """Validated runtime configuration. ``repr`` never shows the token."""

    discord_token: str | None = field(default=None, repr=False)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)  # encoder, heads, cache, device
    worker: WorkerConfig = field(default_factory=WorkerConfig)  # batching and the shared cache tier
    data_dir: Path = Path("var")
    message_concurrency: int = DEFAULT_CONCURRENCY  # messages handled at once (the rest wait in the backlog)
    message_backlog: int = DEFAULT_BACKLOG  # messages waiting for a handler at most (beyond: their events wait)
    flag_threshold: float = DEFAULT_FLAG_THRESHOLD
    flag_on: frozenset[str] = DEFAULT_FLAG_ON  # the signals that flag, for the CLI and guilds that chose none
    discord_api_base: str = DEFAULT_API_BASE
    discord_gateway_url: str = DEFAULT_GATEWAY_URL
    log_level: str = "INFO"
    database_url: str | None = field(default=None, repr=False)  # may hold a password; None: database_path
    database_pool_size: int | None = None  # connections per process; None: the store's default
    shards: ShardConfig | None = None  # None: one process on every shard (MOODBOT_SHARD_COUNT unset)
    history_days: int = 365  # mood-history retention
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)

    @property
    def database_path(self) -> Path:
        """The default database: an SQLite file holding guild settings, opt-outs and flags."""
        return self.data_dir / "moodbot.sqlite3"

    @property
    def database(self) -> str:
        """Where the store lives: ``MOODBOT_DATABASE_URL``, else the SQLite file :attr:`database_path`."""
        return self.database_url or f"sqlite:///{self.database_path}"


def _fernet_key(raw: str) -> str:
    """a Fernet key (32 url-safe base64-encoded bytes; cryptography.fernet.Fernet.generate_key())"""
    import base64
    import binascii

    value = raw.strip()
    try:
        if len(base64.urlsafe_b64decode(value.encode())) == 32:
            return value
    except (binascii.Error, ValueError):
        pass
    raise ValueError


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


def _flag_on(raw: str) -> frozenset[str]:
    """harmful, negative or harmful,negative"""
    return parse_flag_on(raw)


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


def _redis_url(raw: str) -> str:
    """a redis://HOST[:PORT][/DB], rediss://... or unix://PATH URL"""
    value = raw.strip()
    parts = urlsplit(value)
    parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    if (parts.scheme in ("redis", "rediss") and parts.hostname) or (parts.scheme == "unix" and parts.path):
        return value
    raise ValueError


def _database_url(raw: str) -> str:
    """sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"""
    from bot.store.engine import resolve_url  # the store's own check, imported only when the variable is set

    value = raw.strip()
    if "://" not in value:
        raise ValueError
    resolve_url(value)  # StoreError is a ValueError
    return value


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
            from bot.store.engine import redact  # only on this error path: the store's imports are not cheap

            shown = redact(raw)  # never echo a password from a URL
            raise SettingsError(f"{name}={shown!r} is invalid: expected {parse.__doc__ or 'a valid value'}") from None

    data_dir = get("MOODBOT_DATA_DIR", Path, Settings.data_dir)
    head = get("MOODBOT_HEAD", Path, None)
    if head is not None and not head.is_file():
        raise SettingsError(f"MOODBOT_HEAD={str(head)!r} is invalid: no such file")
    shards = None
    shard_ids = get("MOODBOT_SHARD_IDS", parse_ids, None)
    if values.get("MOODBOT_SHARD_COUNT", "").strip():
        shards = ShardConfig(get("MOODBOT_SHARD_COUNT", parse_count, None), shard_ids)
    if shard_ids is not None:
        shown = values["MOODBOT_SHARD_IDS"].strip()
        if shards is None or shards.count is None:
            raise SettingsError(
                f"MOODBOT_SHARD_IDS={shown!r} is invalid: it needs MOODBOT_SHARD_COUNT set to the number of shards"
            )
        if shard_ids[-1] >= shards.count:
            raise SettingsError(
                f"MOODBOT_SHARD_IDS={shown!r} is invalid: shard {shard_ids[-1]} is not below "
                f"MOODBOT_SHARD_COUNT={shards.count}"
            )
    quantize = get("MOODBOT_QUANTIZE", _choice("none", "int8"), ClassifierConfig.quantize)
    precision = get("MOODBOT_PRECISION", _choice(*PRECISIONS), ClassifierConfig.precision)
    try:
        numeric_mode("cpu", quantize, precision)  # the one rule of which modes combine
    except EncoderError as error:
        raise SettingsError(f"MOODBOT_PRECISION={precision!r} with MOODBOT_QUANTIZE={quantize!r}: {error}") from None
    classifier = ClassifierConfig(
        model=values.get("MOODBOT_MODEL", "").strip() or DEFAULT_MODEL,
        head=head,
        cache_dir=get("MOODBOT_CACHE_DIR", Path, data_dir / "cache"),
        cache_size_mb=get("MOODBOT_CACHE_SIZE_MB", _int(1), ClassifierConfig.cache_size_mb),
        device=get("MOODBOT_DEVICE", _choice("auto", "cpu", "cuda"), ClassifierConfig.device),
        quantize=quantize,
        precision=precision,
        models_dir=get("MOODBOT_MODELS_DIR", Path, ClassifierConfig.models_dir),
        max_batch_tokens=get("MOODBOT_MAX_BATCH_TOKENS", _int(64), ClassifierConfig.max_batch_tokens),
        inference_url=get("MOODBOT_INFERENCE_URL", _url("http", "https"), None),
        inference_timeout_s=get(
            "MOODBOT_INFERENCE_TIMEOUT_S", _float(0.1, 3600.0), ClassifierConfig.inference_timeout_s
        ),
    )
    worker = WorkerConfig(
        max_batch=get("MOODBOT_MAX_BATCH", _int(1, 4096), WorkerConfig.max_batch),
        max_wait_ms=get("MOODBOT_MAX_WAIT_MS", _float(0.0, 10_000.0), WorkerConfig.max_wait_ms),
        queue_size=get("MOODBOT_QUEUE_SIZE", _int(1), WorkerConfig.queue_size),
        cache_url=get("MOODBOT_CACHE_URL", _redis_url, None),
        cache_ttl_s=get("MOODBOT_CACHE_TTL_S", _int(0), WorkerConfig.cache_ttl_s),
        cache_pool_size=get("MOODBOT_CACHE_POOL_SIZE", _int(1, 10_000), WorkerConfig.cache_pool_size),
        cache_timeout_s=get("MOODBOT_CACHE_TIMEOUT_S", _float(0.01, 60.0), WorkerConfig.cache_timeout_s),
    )
    return Settings(
        discord_token=values.get("DISCORD_TOKEN", "").strip() or None,
        classifier=classifier,
        worker=worker,
        data_dir=data_dir,
        message_concurrency=get("MOODBOT_MESSAGE_CONCURRENCY", _int(1, 10_000), Settings.message_concurrency),
        message_backlog=get("MOODBOT_MESSAGE_BACKLOG", _int(1, 1_000_000), Settings.message_backlog),
        flag_threshold=get("MOODBOT_FLAG_THRESHOLD", _float(*FLAG_THRESHOLD_RANGE), Settings.flag_threshold),
        flag_on=get("MOODBOT_FLAG_ON", _flag_on, Settings.flag_on),
        discord_api_base=get("DISCORD_API_BASE", _url("http", "https"), DEFAULT_API_BASE).rstrip("/"),
        discord_gateway_url=get("DISCORD_GATEWAY_URL", _url("ws", "wss"), DEFAULT_GATEWAY_URL),
        log_level=get("MOODBOT_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info").upper(),
        database_url=get("MOODBOT_DATABASE_URL", _database_url, None),
        database_pool_size=get("MOODBOT_DATABASE_POOL_SIZE", _int(1, 1000), None),
        shards=shards,
        history_days=get("MOODBOT_HISTORY_DAYS", _int(1, 36_500), Settings.history_days),
        dashboard=DashboardSettings(
            port=get("MOODBOT_DASHBOARD_PORT", _int(1, 65_535), None),
            host=values.get("MOODBOT_DASHBOARD_HOST", "").strip() or DashboardSettings.host,
            public_url=get("MOODBOT_DASHBOARD_URL", _url("http", "https"), None),
            client_id=get("DISCORD_CLIENT_ID", _int(1), None),
            client_secret=values.get("DISCORD_CLIENT_SECRET", "").strip() or None,
            session_key=get("MOODBOT_DASHBOARD_SESSION_KEY", _fernet_key, None),
        ),
    )
