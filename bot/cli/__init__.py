"""The ``moodbot`` command line: one module per sub-command in this package.

Each command module has ``add_parser(subparsers)`` (its arguments) and ``run(args, settings) -> int`` (the work);
adding a command is one module plus its name in :data:`COMMANDS`. The modules import what the work needs inside
``run``, so ``moodbot --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from bot.settings import Settings, SettingsError, load_settings

COMMANDS = ("run", "console", "classify", "evaluate", "train", "bench", "cache", "db", "serve", "dashboard")


class Command(Protocol):
    """What a command module provides."""

    def add_parser(self, subparsers: argparse._SubParsersAction) -> None: ...

    def run(self, args: argparse.Namespace, settings: Settings) -> int: ...


def command(name: str) -> Command:
    """The module of sub-command ``name``."""
    return cast(Command, importlib.import_module(f"{__name__}.{name}"))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="moodbot",
        description="Sentiment for Discord: a transformer encoder, an on-disk embedding cache, a logistic head, "
        "a batching worker. Settings come from the environment and .env (see .env.example).",
    )
    parser.add_argument("--env-file", default=".env", help="dotenv file to read settings from (default: %(default)s)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override MOODBOT_LOG_LEVEL")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        command(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moodbot`` console script."""
    args = build_parser().parse_args(argv)
    from bot.logging_setup import configure_logging

    try:
        settings = load_settings(dotenv_path=args.env_file)
    except SettingsError as error:
        print(f"moodbot: error: {error}", file=sys.stderr)
        return 2
    configure_logging(
        args.log_level or settings.log_level, secrets=[settings.discord_token, settings.dashboard.client_secret]
    )
    from classifier.encoders.bundled import BundledModelError
    from classifier.encoders.identity import EncoderError
    from classifier.evaluation.data import DataFormatError
    from classifier.heads.logistic import HeadError

    try:
        return command(args.command).run(args, settings) or 0
    except (HeadError, EncoderError, BundledModelError, DataFormatError, FileNotFoundError, ValueError) as error:
        print(f"moodbot: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
