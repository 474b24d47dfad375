"""Run the fake Discord server standalone: ``python -m tests.support.fake_discord --port 0 --print-urls``.

``--shards N`` recommends N shards and seeds one default guild on each."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from .control import seed_view
from .seed import seed_default
from .server import FakeDiscordServer


async def serve(host: str, port: int, token: str | None, print_urls: bool, shards: int = 1) -> None:
    """Start a seeded server, optionally print its URLs as one JSON line, serve until SIGTERM/SIGINT."""
    server = FakeDiscordServer(host=host, port=port, token=token, shard_count=shards)
    if shards == 1:
        seed_default(server)
    for shard in range(shards if shards > 1 else 0):
        seed_default(server, name=f"Mood Test Guild {shard}", shard=shard)
    await server.start()
    if print_urls:
        print(json.dumps(seed_view(server)), flush=True)
    await server.serve_until_signalled()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_discord", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="require this bot token (default: accept any)")
    parser.add_argument("--print-urls", action="store_true", help="print api_base/gateway_url/seed ids as JSON")
    parser.add_argument("--shards", type=int, default=1, help="shards recommended; a seeded guild on each")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr)
    asyncio.run(serve(args.host, args.port, args.token, args.print_urls, args.shards))


if __name__ == "__main__":
    main()
