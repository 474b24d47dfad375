"""The ``moodbot`` command line: run the bot or console, classify, evaluate, train, bench, manage the cache."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.settings import SettingsError, load_settings

log = logging.getLogger("moodbot")

SHARED_DATA = Path("../shared/data")
DEFAULT_TRAIN = SHARED_DATA / "sst2/train.tsv"
DEFAULT_DEV = SHARED_DATA / "sst2/dev.tsv"
DEFAULT_EXTRA = (f"{SHARED_DATA / 'tweeteval/val_binary.tsv'}:1.0",)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(
        prog="moodbot",
        description="Sentiment for Discord: a transformer encoder, an on-disk embedding cache, a logistic head, a batching worker. "
        "Settings come from the environment and .env (see .env.example).",
    )
    parser.add_argument("--env-file", default=".env", help="dotenv file to read settings from (default: %(default)s)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override MOODBOT_LOG_LEVEL")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("run", help="run the Discord bot when DISCORD_TOKEN is set, else the offline console")
    console = commands.add_parser("console", help="classify each line typed at a prompt or piped on stdin")
    console.add_argument("--json", action="store_true", help="print one JSON object per line")

    classify = commands.add_parser("classify", help="classify TEXT arguments, or stdin lines when none are given")
    classify.add_argument("texts", nargs="*", metavar="TEXT")
    classify.add_argument("--json", action="store_true", help='one JSON object per input: {"text", "label", "p_positive", "cached"}')

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class precision/recall/F1, confusion matrix and calibration on a labelled TSV")
    evaluate.add_argument("--data", required=True, type=Path, help="TSV file: sentence<TAB>label (0/1), no header")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    evaluate.add_argument("--plot", type=Path, metavar="PNG", help="also write a reliability diagram and confusion matrix")

    train = commands.add_parser("train", help="train a logistic head on cached encoder features and write it as JSON")
    train.add_argument("--data", type=Path, default=DEFAULT_TRAIN, help="training TSV (default: %(default)s)")
    train.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="dev TSV for reporting, never for fitting (default: %(default)s)")
    train.add_argument("--extra", nargs="*", default=list(DEFAULT_EXTRA), metavar="TSV[:WEIGHT]",
                       help="extra training sets with a sample weight, cross-validated alongside (default: %(default)s)")
    train.add_argument("--model", help="encoder name or folder (default: MOODBOT_MODEL)")
    train.add_argument("--pooling", help="feature spec, e.g. cls@-1 or mean@-1,-2 (default: the shipped head's)")
    train.add_argument("--out", type=Path, help="where to write the head (default: MOODBOT_DATA_DIR/heads/head.json)")
    train.add_argument("--feedback", action="store_true", help="add moderators' confirmed/dismissed flags from the bot's database")
    train.add_argument("--guild", type=int, help="with --feedback: only this guild's feedback")
    train.add_argument("--class-weight", choices=["none", "balanced"], default="none", help="class weighting (default: %(default)s)")

    bench = commands.add_parser("bench", help="naive one-at-a-time vs batching worker vs cache hits, side by side")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--model", help="encoder to bench (default: MOODBOT_MODEL); distilbert-base-uncased works offline, random-init")
    bench.add_argument("--messages", type=int, default=512, help="burst size (default: %(default)s)")
    bench.add_argument("--data", type=Path, default=DEFAULT_DEV, help="texts to use (default: %(default)s)")

    cache = commands.add_parser("cache", help="embedding cache maintenance")
    cache.add_argument("action", choices=["stats", "clear"])
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
    configure_logging(args.log_level or settings.log_level, secrets=[settings.discord_token])
    from bot.cli_commands import COMMANDS, USER_ERRORS

    try:
        return COMMANDS[args.command](args, settings) or 0
    except USER_ERRORS as error:
        print(f"moodbot: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
