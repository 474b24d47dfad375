"""A throwaway PostgreSQL server for tests: ``initdb`` and ``pg_ctl`` into a temporary folder, loopback only.

It listens on 127.0.0.1 (a free port) and on a unix socket inside its folder. PostgreSQL refuses to run as root,
so under root the server runs as the ``postgres`` user (the Debian package creates it), which owns the folder.
It trades durability for speed (``fsync=off``): the data is thrown away when :meth:`PostgresServer.stop` ends the
postmaster by its PID and removes the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.helpers import free_port

USER = "postgres"
STOP_TIMEOUT = 20.0


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``psql``: Debian's newest, else the ones on ``PATH``."""
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates = sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    return next((c for c in candidates if all((c / tool).is_file() for tool in ("initdb", "pg_ctl", "psql"))), None)


def _alive(pid: int) -> bool:
    """Running and not a zombie (the postmaster is not our child, and a container's init may not reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class PostgresServer:
    """A running server; :meth:`start` makes one, :meth:`url` and :meth:`create_database` point at it."""

    bin_dir: Path
    root: Path
    port: int
    pid: int
    _databases: int = 0

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = find_binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed: install the Debian package postgresql (.ci/run does)")
        root = Path(tempfile.mkdtemp(prefix="moodbot-pg-"))
        as_user: Sequence[str] = ()
        if os.geteuid() == 0:
            account = pwd.getpwnam(USER)
            os.chown(root, account.pw_uid, account.pw_gid)
            as_user = ("runuser", "-u", USER, "--")
        data, port = root / "data", free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        try:
            subprocess.run(
                [
                    *as_user,
                    bin_dir / "initdb",
                    "-D",
                    data,
                    "-U",
                    USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            subprocess.run(
                [
                    *as_user,
                    bin_dir / "pg_ctl",
                    "-D",
                    data,
                    "-l",
                    root / "server.log",
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "30",
                    "start",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as error:
            log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start: {error.stderr}\n{log[-2000:]}") from error
        pid = int((data / "postmaster.pid").read_text().split()[0])
        return cls(bin_dir, root, port, pid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` through ``psql`` over the unix socket; returns its unaligned output."""
        done = subprocess.run(
            [
                self.bin_dir / "psql",
                "-h",
                self.root,
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-AtX",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        self._databases += 1
        name = f"moodbot_{self._databases}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), SIGKILL if it hangs; then remove the folder."""
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + STOP_TIMEOUT
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
