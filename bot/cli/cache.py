"""``moodbot cache stats|clear``: the embedding cache's size and entries, or empty it."""

from __future__ import annotations

import argparse
import json

from bot.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cache", help="embedding cache maintenance")
    parser.add_argument("action", choices=["stats", "clear"])


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cache import EmbeddingCache

    cache = EmbeddingCache(settings.classifier.cache_dir, namespace="", size_limit_mb=settings.classifier.cache_size_mb)
    try:
        if args.action == "clear":
            print(f"removed {cache.clear()} cached vectors from {settings.classifier.cache_dir}")
        else:
            stats = cache.stats()
            print(
                json.dumps(
                    {
                        "directory": stats.directory,
                        "entries": stats.entries,
                        "volume_bytes": stats.volume_bytes,
                        "size_limit_bytes": cache.size_limit_bytes,
                    }
                )
            )
    finally:
        cache.close()
    return 0
