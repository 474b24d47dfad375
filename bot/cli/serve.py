"""``moodbot serve``: encoder and head as a Ray Serve application behind one HTTP route (see :mod:`classifier.serving`).

Bot processes started with ``MOODBOT_INFERENCE_URL=http://HOST:PORT`` send it their cache misses in batches.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from bot.settings import Settings


def _count(low: int, high: int) -> type[int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {raw}")
        return value

    return parse  # type: ignore[return-value]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve encoder and head over HTTP with Ray Serve (needs moodbot[scale]) for MOODBOT_INFERENCE_URL"
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the HTTP route listens on (default: %(default)s); Ray itself stays on loopback")
    parser.add_argument("--port", type=_count(1, 65535), default=8000, help="HTTP port (default: %(default)s)")
    parser.add_argument("--replicas", type=_count(1, 1024), default=1,
                        help="model replicas: each takes a GPU when the machine has them (default: %(default)s)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.serving.server import ServeError, ServeOptions, serve_until_stopped

    config = dataclasses.replace(settings.classifier, inference_url=None)  # this process is the service
    try:  # the service batches requests by the worker's limits; the callers' own cache tiers answer cached texts
        return serve_until_stopped(config, settings.worker, ServeOptions(args.host, args.port, args.replicas))
    except ServeError as error:
        print(f"moodbot: error: {error}", file=sys.stderr)
        return 2
