"""The scale-out topology on one machine, for development and the cluster test; every part a real process on loopback.

PostgreSQL (``initdb`` + ``pg_ctl`` into a temporary folder), Redis (``redis-server --save ''``), Ray Serve
(``moodbot serve``), the fake Discord server recommending 2 shards with a guild on each, and one ``moodbot run``
per shard (``MOODBOT_SHARD_COUNT=2``, ``MOODBOT_SHARD_IDS=0`` and ``=1``) that shares the three servers. It is
built from the other test-support modules, and everything it starts is stopped by PID.

``python -m tests.support.cluster`` (``make cluster``) starts it, prints the URLs and PIDs as JSON, and stops it
all on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.encoders.bundled import MINILM
from tests.support.helpers import clean_environ
from tests.support.inference_server import InferenceServer
from tests.support.load.harness import BotProcess, FakeServer, GuildSetup, prepare_store
from tests.support.postgres import PostgresServer
from tests.support.redis_server import RedisServer


@dataclass(frozen=True)
class ClusterOptions:
    """The shape of the topology; the defaults are what the cluster test runs."""

    shards: int = 2
    channels: int = 8
    members: int = 8
    #: The smallest bundled encoder and its shipped head, so that a 2-core machine runs the whole cluster.
    model: str = MINILM.name
    head: Path = MINILM.head_path
    #: Long enough that a bot's callers wait through a restart of ``moodbot serve`` instead of failing.
    inference_timeout_s: float = 90.0
    #: The session start limit the fake Discord reports: 1, so that the shards must take turns to log in.
    max_concurrency: int = 1


class Cluster:
    """Start with :meth:`start`, stop with :meth:`stop` (also after a failed start); ``with`` does both."""

    def __init__(self, root: Path, options: ClusterOptions | None = None) -> None:
        self.root = root
        self.options = options or ClusterOptions()
        self.postgres: PostgresServer | None = None
        self.database_url = ""
        self.redis: RedisServer | None = None
        self.serve: InferenceServer | None = None
        self.discord: FakeServer | None = None
        self.bots: list[BotProcess] = []

    def start(self) -> Cluster:
        """Start every part (Ray Serve, the slowest, in the background meanwhile) and return once each shard's bot
        has classified a probe message in its own guild."""
        if not self.options.head.is_file():
            raise RuntimeError(f"the head is missing: {self.options.head}")
        try:
            with ThreadPoolExecutor(1) as background:
                self.serve = InferenceServer(self.root / "serve", self._serve_env())
                serving = background.submit(self.serve.start)
                self.postgres = PostgresServer.start()
                self.database_url = self.postgres.create_database()
                self.redis = RedisServer(self.root / "redis").start()
                self.discord = FakeServer(
                    self.root / "discord", channels=self.options.channels, members=self.options.members,
                    shards=self.options.shards, max_concurrency=self.options.max_concurrency,
                )
                for guild in self.discord.guilds:  # live mode everywhere: each classification shows as a reaction
                    live = [*guild.load_channels, guild.probe]
                    setup = GuildSetup(guild.mod_log, live_channels=live, opted_out=[self.opted_out])
                    prepare_store(self.database_url, guild.guild_id, setup)
                serving.result()
            self.bots = [self.bot(shard) for shard in range(self.options.shards)]
            for bot in self.bots:
                bot.launch()
            for bot in self.bots:
                bot.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def users(self) -> list[int]:
        """The members ``user-1`` .. ``user-N``, members of every guild."""
        assert self.discord is not None
        return self.discord.users

    @property
    def opted_out(self) -> int:
        """The one member who opted out before the start (``user-N``), as in the load run."""
        return self.users[-1]

    def bot(self, shard: int) -> BotProcess:
        """A (not yet started) bot process for ``shard``, with its own data and cache folders, as on its own machine."""
        assert self.discord is not None and self.redis is not None and self.serve is not None
        folder = self.root / f"shard-{shard}"
        env = {
            "MOODBOT_SHARD_COUNT": str(self.options.shards),
            "MOODBOT_SHARD_IDS": str(shard),
            "MOODBOT_DATABASE_URL": self.database_url,
            "MOODBOT_CACHE_URL": self.redis.url,
            "MOODBOT_INFERENCE_URL": self.serve.url,
            "MOODBOT_INFERENCE_TIMEOUT_S": str(self.options.inference_timeout_s),
            "MOODBOT_HEAD": str(self.options.head),
        }
        log = folder / "bot.log"
        return BotProcess(self.discord, folder / "data", folder / "cache", log, extra_env=env, shard=shard)

    def _serve_env(self) -> dict[str, str]:
        folder = self.root / "serve"
        return clean_environ() | {
            "MOODBOT_MODEL": self.options.model,
            "MOODBOT_HEAD": str(self.options.head),
            "MOODBOT_DEVICE": "cpu",
            "MOODBOT_DATA_DIR": str(folder / "var"),
            "MOODBOT_CACHE_DIR": str(folder / "var" / "cache"),
            "MOODBOT_LOG_LEVEL": "info",
        }

    def describe(self) -> dict[str, Any]:
        """URLs, PIDs and logs of every part, as ``make cluster`` prints them."""
        assert self.postgres and self.redis and self.serve and self.discord
        return {
            "postgres": {"url": self.database_url, "pid": self.postgres.pid, "folder": str(self.postgres.root)},
            "redis": {"url": self.redis.url, "pid": self.redis.process.pid if self.redis.process else None},
            "serve": {"url": self.serve.url, "pid": self.serve.process.pid if self.serve.process else None,
                      "log": str(self.serve.log)},
            "discord": {"url": self.discord.url, "api_base": self.discord.api_base,
                        "gateway_url": self.discord.gateway_url, "control_url": f"{self.discord.url}/_control",
                        "guilds": [{"id": g.guild_id, "channels": g.channels} for g in self.discord.guilds]},
            "shards": [{"shard": shard, "pid": bot.proc.pid if bot.proc else None, "log": str(bot.log_path)}
                       for shard, bot in enumerate(self.bots)],
        }

    def flags(self) -> list[dict[str, int | None]]:
        """Every flag row (id, guild, message, mod-log card) as PostgreSQL has it."""
        assert self.postgres is not None
        database = self.database_url.rsplit("/", 1)[1]
        query = "SELECT id, guild_id, message_id, modlog_message_id FROM flags ORDER BY id"
        output = self.postgres.psql(query, database)
        rows = []
        for line in filter(None, output.splitlines()):
            flag_id, guild_id, message_id, card = line.split("|")
            rows.append({"id": int(flag_id), "guild_id": int(guild_id), "message_id": int(message_id),
                         "modlog_message_id": int(card) if card else None})
        return rows

    def stop(self) -> None:
        """Stop every part that was started, bots first; never raises for a part that is already gone."""
        for bot in self.bots:
            if bot.alive():
                bot.stop()
            bot.kill()
        if self.discord is not None:
            self.discord.close()
        for part in (self.serve, self.redis, self.postgres):
            if part is not None:
                part.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=2, help="gateway shards, one bot process each")
    parser.add_argument("--workdir", type=Path, help="logs and data go here (default: a temporary folder)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: unwinds, so that everything started is stopped
    with tempfile.TemporaryDirectory(prefix="moodbot-cluster-") as tmp:
        root = args.workdir or Path(tmp)
        print(f"starting the cluster in {root} (Ray Serve takes a while)...", file=sys.stderr, flush=True)
        try:
            with Cluster(root, ClusterOptions(shards=args.shards)) as cluster:
                print(json.dumps(cluster.describe(), indent=1), flush=True)
                print("running; Ctrl-C stops everything", file=sys.stderr, flush=True)
                while True:
                    signal.pause()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr, flush=True)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
