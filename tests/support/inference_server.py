"""``moodbot serve`` as a subprocess for tests: a loopback port, ready once ``/v1/info`` answers, stopped by PID.

It can be stopped and started again on the same port mid-test (an outage, a restart). Its log goes to a file
in its folder, quoted when it fails to start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from tests.support.helpers import MOODBOT, REPO_ROOT, free_port

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0


class InferenceServer:
    """``moodbot serve --port PORT`` with ``env`` (the model and head settings)."""

    def __init__(self, folder: Path, env: dict[str, str], port: int | None = None) -> None:
        self.folder = folder
        self.env = env
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "serve.log"

    def start(self) -> InferenceServer:
        """Start and return once ``GET /v1/info`` answers (``startup_s``: how long that took)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(MOODBOT), "--env-file", os.devnull + ".absent", "serve", "--port", str(self.port)],
                env=self.env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() - started > START_TIMEOUT_S:
                self.stop()
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"moodbot serve did not start on port {self.port}:\n{tail}")
            time.sleep(0.2)
        self.startup_s = time.monotonic() - started
        return self

    def _answers(self) -> bool:
        try:
            self.get("/v1/info", timeout=1.0)
            return True
        except (OSError, ValueError):
            return False

    def get(self, path: str, timeout: float = 10.0) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.load(response)

    def post(self, path: str, body: bytes, timeout: float = 30.0) -> tuple[int, Any]:
        """Status and JSON body of a POST (error statuses too)."""
        request = urllib.request.Request(self.url + path, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.load(error)

    def process_tree(self) -> set[int]:
        """PIDs of the ``moodbot serve`` process and every process under it (Ray's GCS, raylet, workers...)."""
        assert self.process is not None
        return {member.pid for member in _tree(self.process.pid)}

    def stop(self) -> list[str]:
        """SIGTERM (a clean Ray shutdown) and wait; processes of its tree still alive after that are killed, and
        their names returned (a clean stop returns ``[]``)."""
        process, self.process = self.process, None
        if process is None:
            return []
        tree = _tree(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        _, alive = psutil.wait_procs(tree, timeout=10)
        leftovers = []
        for member in alive:
            try:
                leftovers.append(member.name())
                member.kill()
            except psutil.NoSuchProcess:
                pass
        process.wait()
        return leftovers

    def __enter__(self) -> InferenceServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


_SS_PIDS = re.compile(r"pid=(\d+)")


def listening_sockets(pids: set[int]) -> list[tuple[str, str]]:
    """``(protocol, local address:port)`` of every TCP/UDP socket ``ss -ltunpH`` shows listening in ``pids``."""
    output = subprocess.run(["ss", "-ltunpH"], capture_output=True, text=True, check=True).stdout
    sockets = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 7 and pids & {int(pid) for pid in _SS_PIDS.findall(line)}:
            sockets.append((fields[0], fields[4]))
    return sockets


def is_loopback(address: str) -> bool:
    """Whether an ``ss`` address (``127.0.0.1:80``, ``[::1]:80``, ``[::ffff:127.0.0.1]:80``, ``*:80``) is loopback."""
    host = address.rsplit(":", 1)[0].strip("[]").split("%")[0].removeprefix("::ffff:")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*" and the like: every interface
        return False
