"""Processes and probes shared by the load driver and ``tests/reliability``.

:class:`FakeServer` runs :mod:`tests.support.load.server` in a subprocess and talks to its ``/_control`` and
``/_load`` HTTP APIs (loopback only). :class:`BotProcess` runs the real ``moodbot run`` against it
with its own data and cache directories, samples its RSS with psutil, and can stop it with SIGTERM
or SIGKILL. Every wait has a timeout; :meth:`close` always kills what was started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.support.helpers import (
    CLEAR_NEGATIVE,
    CLEAR_POSITIVE,
    MOODBOT,
    REPO_ROOT,
    TOKEN,
    clean_environ,
    poll_until_blocking,
)

FLAG_THRESHOLD = 0.6  # per-guild threshold written to the store: every CLEAR_NEGATIVE template scores well above it

#: A log line that shows an unhandled exception or an ERROR record.
PROBLEM = re.compile(
    r"^Traceback \(most recent call last\)|^\S*(Error|Exception)\b|Task exception was never retrieved"
    r"|Unhandled exception| (ERROR|CRITICAL) |Ignoring exception"
)
#: What the bot logs when it closes (bot/loop_lag.py, bot/client.py): its event loop's lag and its message backlog.
LOOP_LAG = re.compile(r"event loop lag: max (?P<max>[\d.]+) ms, p99 (?P<p99>[\d.]+) ms, p50 (?P<p50>[\d.]+) ms")
BACKLOG = re.compile(r"peak_backlog=(?P<peak>\d+), peak_backlog_text_bytes=(?P<bytes>\d+)")
#: The admission counters the bot logs on close, once drained (bot/client.py): ``messages: AdmissionStats(...)``.
ADMISSION = re.compile(r"messages: AdmissionStats\((?P<fields>[^)]*)\)")
#: discord.py's warnings that the event loop starves the gateway: heartbeat acks late, or heartbeats blocked.
GATEWAY_BEHIND = re.compile(r"Can't keep up|heartbeat blocked for more than")


def make_text(index: int, negative: bool, tag: str = "") -> str:
    """A distinct message text: a clear template plus a unique suffix."""
    templates = CLEAR_NEGATIVE if negative else CLEAR_POSITIVE
    return f"{templates[index % len(templates)]} [{tag}{index:06d}]"


class HttpError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """One JSON request to the loopback fake server."""
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        raise HttpError(error.code, error.read().decode(errors="replace")) from None
    return json.loads(raw) if raw else None


@dataclass(frozen=True)
class LoadGuild:
    """The ids of one guild of the load world (one per shard of the server)."""

    guild_id: int
    channels: dict[str, int]
    members: dict[str, int]
    load_channels: list[int]

    @property
    def mod_log(self) -> int:
        return self.channels["mod-log"]

    @property
    def probe(self) -> int:
        return self.channels["probe"]

    @property
    def moderator_id(self) -> int:
        return self.members["moderator"]

    @property
    def member_id(self) -> int:
        return self.members["alice"]

    @classmethod
    def from_info(cls, guild: dict[str, Any], channels: int) -> LoadGuild:
        named = {k: int(v) for k, v in guild["channels"].items()}
        return cls(
            int(guild["id"]), named, {k: int(v) for k, v in guild["members"].items()},
            [named[f"load-{i}"] for i in range(1, channels + 1)],
        )


class FakeServer:
    """``python -m tests.support.load.server`` in a subprocess; ``shards`` > 1 builds a guild on each shard."""

    def __init__(
        self,
        workdir: Path,
        *,
        channels: int = 50,
        members: int = 8,
        start_timeout: float = 30.0,
        shards: int = 1,
        max_concurrency: int = 1,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "fake-server.log"
        self._log = self.log_path.open("wb")
        command = [
            sys.executable, "-m", "tests.support.load.server", "--channels", str(channels), "--members", str(members),
            "--shards", str(shards), "--max-concurrency", str(max_concurrency),
        ]
        self.proc = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True
        )
        line = _readline(self.proc, start_timeout)
        if not line:
            self.close()
            raise RuntimeError(f"fake server did not start: {self.log_path.read_text(errors='replace')[-2000:]}")
        self.info: dict[str, Any] = json.loads(line)
        guild = self.info["guilds"][0]
        self.url: str = self.info["url"]
        self.api_base: str = self.info["api_base"]
        self.gateway_url: str = self.info["gateway_url"]
        self.bot_user_id = int(self.info["bot_user_id"])
        self.guild_id = int(guild["id"])
        self.channels: dict[str, int] = {k: int(v) for k, v in guild["channels"].items()}
        self.members: dict[str, int] = {k: int(v) for k, v in guild["members"].items()}
        self.load_channels = [self.channels[f"load-{i}"] for i in range(1, channels + 1)]
        self.users = [self.members[f"user-{i}"] for i in range(1, members + 1)]
        self.mod_log = self.channels["mod-log"]
        self.probe = self.channels["probe"]
        self.moderator_id = self.members["moderator"]
        self.member_id = self.members["alice"]
        #: Every guild, in shard order (``guilds[0]`` is the one the attributes above describe).
        self.guilds = [LoadGuild.from_info(g, channels) for g in self.info["guilds"]]

    # control API
    def get(self, path: str, timeout: float = 30.0) -> Any:
        return http("GET", self.url + path, timeout=timeout)

    def post(self, path: str, body: Any, timeout: float = 30.0) -> Any:
        return http("POST", self.url + path, body, timeout=timeout)

    def send(self, channel_id: int, author_id: int, content: str) -> dict[str, Any]:
        return self.post(
            "/_control/messages", {"channel_id": str(channel_id), "author_id": str(author_id), "content": content}
        )

    def send_many(
        self, messages: Iterable[tuple[int, int, str]], *, pause_every: int = 0, pause_s: float = 0.0
    ) -> list[int]:
        body = {
            "messages": [[str(c), str(a), t] for c, a, t in messages],
            "pause_every": pause_every,
            "pause_s": pause_s,
        }
        return [int(i) for i in self.post("/_load/send", body, timeout=300)["ids"]]

    def edit_many(self, edits: Iterable[tuple[int, str]]) -> int:
        """Each message's author edits it to the given content; returns how many messages were found and edited."""
        body = {"edits": [[str(m), t] for m, t in edits]}
        return int(self.post("/_load/edit", body, timeout=300)["edited"])

    def report(self) -> dict[str, Any]:
        return self.get("/_load/report", timeout=60)

    def messages(self, channel_id: int, author_id: int | None = None) -> list[dict[str, Any]]:
        query = f"?author_id={author_id}" if author_id else ""
        return self.get(f"/_control/channels/{channel_id}/messages{query}")

    def gateway(self) -> dict[str, Any]:
        return self.get("/_control/gateway")

    def gateway_shards(self) -> dict[str, Any]:
        """Connected sessions' ``[shard, count]`` and every IDENTIFY as ``[time, shard, count]``."""
        return self.get("/_control/gateway/shards")

    def fail_next(
        self, count: int, status: int, *, method: str | None = None, path: str | None = None, retry_after: float = 0.05
    ) -> None:
        self.post(
            "/_control/fail_next",
            {"count": count, "status": status, "method": method, "path": path, "retry_after": retry_after},
        )

    def drop_gateway(self, *, abrupt: bool = True, resumable: bool = True) -> int:
        return self.post("/_control/drop_gateway", {"abrupt": abrupt, "resumable": resumable})["dropped"]

    def click(
        self, user_id: int, message_id: int, custom_id: str, channel_id: int | None = None, wait: float = 20.0
    ) -> dict[str, Any]:
        """Click a button as ``user_id`` and wait for the bot's answer to the interaction."""
        sent = self.post("/_control/click_button", {
            "guild_id": str(self.guild_id), "channel_id": str(channel_id or self.mod_log), "user_id": str(user_id),
            "message_id": str(message_id), "custom_id": custom_id,
        })
        return self.get(f"/_control/interactions/{sent['id']}?wait={wait}", timeout=wait + 10)

    def slash(
        self, guild: LoadGuild, user_id: int, name: str, options: dict[str, Any] | None = None, *,
        subcommand: str | None = None, wait: float = 20.0,
    ) -> dict[str, Any]:
        """Run ``/name [subcommand] options`` as ``user_id`` in the guild's #general; wait for the bot's answer."""
        sent = self.post("/_control/slash_command", {
            "guild_id": str(guild.guild_id), "channel_id": str(guild.channels["general"]), "user_id": str(user_id),
            "name": name, "options": options or {}, "subcommand": subcommand,
        })
        return self.get(f"/_control/interactions/{sent['id']}?wait={wait}", timeout=wait + 10)

    def close(self) -> None:
        _stop(self.proc, graceful=True)
        self._log.close()


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """First stdout line of ``proc`` within ``timeout`` s ('' if none)."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0].decode() if result else ""


def _stop(proc: subprocess.Popen[bytes], *, graceful: bool, timeout: float = 20.0) -> int | None:
    if proc.poll() is None:
        if graceful:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        proc.kill()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
    return proc.returncode


@dataclass
class GuildSetup:
    """What :func:`prepare_store` writes before the bot starts (the bot reads it afresh for every message)."""

    modlog_channel_id: int | None
    threshold: float = FLAG_THRESHOLD
    live_channels: Iterable[int] = ()
    opted_out: Iterable[int] = ()


def prepare_store(database: str | Path, guild_id: int, setup: GuildSetup) -> None:
    """Write guild settings and opt-outs with the bot's own store API (schema created on first open)."""
    from bot.store import Store

    with Store.open_sync(database) as store:
        store.update_guild(guild_id, modlog_channel_id=setup.modlog_channel_id, flag_threshold=setup.threshold)
        for channel_id in setup.live_channels:
            store.set_channel(guild_id, channel_id, "live", True)
        for user_id in setup.opted_out:
            store.set_opt_out(user_id, True)


@dataclass
class BotProcess:
    """``moodbot run`` (the real bot) in a subprocess against a :class:`FakeServer`."""

    server: FakeServer
    data_dir: Path
    cache_dir: Path
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    #: The gateway shard this process runs (``None``: all): its IDENTIFY, and its guild's #probe, show it is ready.
    shard: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    peak_rss: int = 0
    rss_samples: list[int] = field(default_factory=list)
    _sampler: threading.Thread | None = None
    _sampling: bool = False
    _probes: int = 0
    _identifies: int = 0

    def env(self) -> dict[str, str]:
        return clean_environ() | {
            "DISCORD_TOKEN": TOKEN,
            "DISCORD_API_BASE": self.server.api_base,
            "DISCORD_GATEWAY_URL": self.server.gateway_url,
            "MOODBOT_DATA_DIR": str(self.data_dir),
            "MOODBOT_CACHE_DIR": str(self.cache_dir),
            "MOODBOT_DEVICE": "cpu",
            "MOODBOT_MODEL": "minilm",  # the fast bundled encoder: the suite's bots start quickly
            "MOODBOT_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
        } | self.extra_env

    def start(self, ready_timeout: float = 180.0) -> BotProcess:
        """Start the process and wait until it has classified a probe message (live mode in #probe)."""
        return self.launch().wait_ready(ready_timeout)

    def launch(self) -> BotProcess:
        """Start the process without waiting (several bots start together; then :meth:`wait_ready` each)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._identifies = self._identify_count()
        with self.log_path.open("ab") as log:
            log.write(f"=== start at {time.strftime('%H:%M:%S')} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(MOODBOT), "--env-file", str(self.data_dir / "absent.env"), "run"],
                cwd=self.data_dir.parent, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def wait_ready(self, ready_timeout: float = 180.0) -> BotProcess:
        """Wait until the launched process has identified and classified a probe message."""
        deadline = time.monotonic() + ready_timeout
        self._wait(lambda: self._identify_count() > self._identifies, deadline, "the bot to IDENTIFY")
        self.probe(deadline - time.monotonic())
        return self

    def probe(self, timeout: float = 60.0) -> float:
        """Send a message to #probe and wait for the bot's live-mode reaction; returns the round trip in s."""
        self._probes += 1
        started = time.monotonic()
        guild = self.server.guilds[self.shard or 0]
        sent = self.server.send(
            guild.probe, guild.member_id, f"readiness probe {self._probes}: what a lovely day {time.time()}"
        )
        message_id = sent["data"]["id"]
        self._wait(
            lambda: message_id in self.server.report()["reactions"],
            started + timeout,
            "the bot to react to a probe",
            0.3,
        )
        return time.monotonic() - started

    def _identify_count(self) -> int:
        """IDENTIFYs so far: of this process's shard, or of any when it runs every shard."""
        if self.shard is None:
            return self.server.gateway()["identify_count"]
        return sum(1 for _, shard, _ in self.server.gateway_shards()["identifies"] if shard == self.shard)

    def _wait(self, predicate: Callable[[], bool], deadline: float, what: str, interval: float = 0.2) -> None:
        """Poll ``predicate`` until ``deadline``; fail at once, with the log's tail, if the bot exits meanwhile."""

        def probe() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"the bot exited with {self.proc.returncode} while waiting for {what}:\n{self.log_tail()}"
                )
            return predicate()

        try:
            poll_until_blocking(probe, deadline - time.monotonic(), what, interval=interval)
        except TimeoutError as error:
            raise TimeoutError(f"{error}:\n{self.log_tail()}") from None

    def _sample(self) -> None:
        assert self.proc is not None
        try:
            process = psutil.Process(self.proc.pid)
            while self._sampling and self.proc.poll() is None:
                rss = process.memory_info().rss
                self.rss_samples.append(rss)
                self.peak_rss = max(self.peak_rss, rss)
                time.sleep(0.1)
        except psutil.Error:
            pass

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._sampling = False

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for a clean exit (SIGKILL after ``timeout``); returns the exit code."""
        self._sampling = False
        if self.proc is None:
            return None
        return _stop(self.proc, graceful=True, timeout=timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def problems(self) -> list[str]:
        """Log lines that show an unhandled exception or an ERROR record."""
        return [line for line in self.log_text().splitlines() if PROBLEM.search(line)]

    def closing_figures(self) -> dict[str, float]:
        """The loop lag (ms) and the peak message backlog the bot logged when it closed (empty before)."""
        figures: dict[str, float] = {}
        text = self.log_text()
        if lags := list(LOOP_LAG.finditer(text)):
            lag = lags[-1]
            figures |= {"loop_lag_max_ms": float(lag["max"]), "loop_lag_p99_ms": float(lag["p99"]),
                        "loop_lag_p50_ms": float(lag["p50"])}
        if backlogs := list(BACKLOG.finditer(text)):
            figures |= {"backlog_peak": int(backlogs[-1]["peak"]),
                        "backlog_peak_text_kib": round(int(backlogs[-1]["bytes"]) / 1024)}
        return figures

    def admission_totals(self) -> dict[str, int]:
        """The bot's own message counters (``admitted``, ``handled``, ``failed``...) as it logged them on a clean
        close, once its backlog was drained; empty before it closed, or when it was killed."""
        found = list(ADMISSION.finditer(self.log_text()))
        if not found:
            return {}
        fields = (field.split("=") for field in found[-1]["fields"].split(", "))
        return {name: int(value) for name, value in fields}

    @property
    def probes(self) -> int:
        """Readiness probes sent to #probe so far (each is a message the bot admits)."""
        return self._probes

    def gateway_warnings(self) -> list[str]:
        """Log lines in which discord.py says the event loop kept the gateway waiting."""
        return [line for line in self.log_text().splitlines() if GATEWAY_BEHIND.search(line)]


def read_flags(database: Path) -> list[dict[str, Any]]:
    """Every flag row (read-only connection: works while the bot runs, and after it was killed)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute("SELECT * FROM flags ORDER BY id")]
    finally:
        connection.close()


def integrity_check(database: Path) -> str:
    connection = sqlite3.connect(database, timeout=10)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def flag_posts(report: dict[str, Any], mod_log: int) -> list[dict[str, Any]]:
    """The bot's flag cards in the mod-log channel (by the server's record)."""
    return [
        p
        for p in report["bot_posts"]
        if int(p["channel_id"]) == mod_log and p["flagged_message_id"] and not p["interaction"]
    ]
