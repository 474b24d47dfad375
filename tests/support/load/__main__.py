"""``python -m tests.support.load --messages 10000 --channels 50``: the full load run; prints the figures as JSON.

``--cluster``: the same over the scale-out topology (2 shard processes on PostgreSQL, Redis and ``moodbot serve``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.support.load.cluster_load import run_cluster_load
from tests.support.load.driver import run_load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.load", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--burst", type=int, default=500, help="messages injected back to back per burst")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between bursts")
    parser.add_argument("--max-rss-mb", type=float, default=2500.0)
    parser.add_argument("--edits", type=int, default=0, help="then edit this many messages (see run_load)")
    parser.add_argument("--distinct-texts", type=int, help="repeat this many texts (default: every text distinct)")
    parser.add_argument(
        "--bot-env", action="append", default=[], metavar="NAME=VALUE", help="add to the bot's environment (repeatable)"
    )
    parser.add_argument("--cluster", action="store_true", help="over 2 shard processes on PostgreSQL (the cluster)")
    parser.add_argument("--workdir", type=Path, help="keep logs and the database here (default: a temporary folder)")
    args = parser.parse_args(argv)
    bot_env = dict(item.split("=", 1) for item in args.bot_env)
    with tempfile.TemporaryDirectory(prefix="moodbot-load-") as tmp:
        workdir = args.workdir or Path(tmp)
        log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
        if args.cluster:
            result = run_cluster_load(workdir, messages=args.messages, channels=args.channels, burst=args.burst,
                                      gap_s=args.gap, max_rss_mb=args.max_rss_mb, log=log)
        else:
            result = run_load(workdir, messages=args.messages, channels=args.channels, burst=args.burst, gap_s=args.gap,
                              max_rss_mb=args.max_rss_mb, distinct_texts=args.distinct_texts, bot_env=bot_env,
                              edits=args.edits, log=log)
        print(json.dumps(result.figures, indent=1))
        for failure in result.failures:
            print(f"FAIL: {failure}", file=sys.stderr)
        if result.failures and not args.workdir and not args.cluster:
            print((workdir / "bot.log").read_text(errors="replace")[-3000:], file=sys.stderr)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
