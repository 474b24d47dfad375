"""``moodbot run``: the Discord bot when ``DISCORD_TOKEN`` is set, else the offline console."""

from __future__ import annotations

import argparse
import logging

from bot.settings import Settings

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("run", help="run the Discord bot when DISCORD_TOKEN is set, else the offline console")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.discord_token:
        from bot.runner import run_bot

        return run_bot(settings)
    from bot.cli import console

    log.info("DISCORD_TOKEN is not set: starting the offline console")
    return console.run(argparse.Namespace(json=False), settings)
