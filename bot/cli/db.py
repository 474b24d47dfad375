"""``moodbot db upgrade|copy``: migrate the bot's database, or move an install to another database (e.g. PostgreSQL)."""

from __future__ import annotations

import argparse
import asyncio

from bot.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="database maintenance: migrate, or copy to another database")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser(
        "upgrade", help="migrate the database to this moodbot's schema (the bot also does at start)"
    )
    upgrade.add_argument(
        "--url", help="the database (default: MOODBOT_DATABASE_URL, else the SQLite file in MOODBOT_DATA_DIR)"
    )
    copy = actions.add_parser("copy", help="copy every table into another database and verify it (stop the bot first)")
    copy.add_argument("--from", dest="source", help="source URL (default: the configured database)")
    copy.add_argument(
        "--to", dest="target", required=True, help="target URL, e.g. postgresql://moodbot:PASSWORD@HOST/moodbot"
    )
    copy.add_argument("--replace", action="store_true", help="delete the rows a non-empty target already holds")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store import admin
    from bot.store.engine import redact

    if args.action == "upgrade":
        url = args.url or settings.database
        print(f"{redact(url)} is at schema revision {asyncio.run(admin.upgrade(url))}")
        return 0
    source = args.source or settings.database
    counts = asyncio.run(admin.copy(source, args.target, replace=args.replace))
    print(f"copied {redact(source)} -> {redact(args.target)}")
    width = max(map(len, counts))
    for table, rows in counts.items():
        print(f"  {table:<{width}}  {rows:>9} rows")
    print(f"verified: all {sum(counts.values())} rows arrived unchanged, in {len(counts)} tables")
    return 0
