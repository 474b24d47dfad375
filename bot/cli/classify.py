"""``moodbot classify``: classify TEXT arguments, or stdin lines, one result per input."""

from __future__ import annotations

import argparse
import sys

from bot.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("classify", help="classify TEXT arguments, or stdin lines when none are given")
    parser.add_argument("texts", nargs="*", metavar="TEXT")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per input: {"text", "label", "p_negative", "p_neutral", "p_positive", '
                        'a "p_<signal>" per moderation head, "encoder", "language", "cached", "flag", "flag_reasons"}')


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.cli.console import classify_lines, format_result, stdin_lines
    from classifier.inference.router import Paths, Router

    paths = Paths.load(settings.classifier)
    try:
        lines = args.texts if args.texts else stdin_lines()
        for result in classify_lines(Router(paths), lines, settings):
            sys.stdout.write(format_result(result, args.json) + "\n")
    finally:
        paths.close()
    return 0
