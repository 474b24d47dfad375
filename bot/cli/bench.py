"""``moodbot bench``: the naive one-at-a-time bot vs the batching worker vs cache hits (see :mod:`classifier.bench`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from bot.cli.datasets import DEFAULT_DEV
from bot.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="naive one-at-a-time vs batching worker vs cache hits, side by side")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model", help="encoder to bench (default: MOODBOT_MODEL); "
                        "distilbert-base-uncased works offline, random-init")
    parser.add_argument("--messages", type=int, default=512, help="burst size (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DEV, help="texts to use (default: %(default)s)")
    parser.add_argument("--inference-url", metavar="URL",
                        help="also run the burst through `moodbot serve` at URL, beside the in-process path")
    parser.add_argument("--int8", action="store_true",
                        help="also run the worker burst with int8 dynamic quantization (CPU, fp32 models only)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.bench import BenchOptions, format_table, run_bench

    options = BenchOptions(data=args.data, messages=args.messages, model=args.model, int8=args.int8,
                           inference_url=args.inference_url, inference_timeout_s=settings.inference_timeout_s)
    worker = dataclasses.replace(settings.worker_config(), cache_url=None)  # it measures this process's cache tiers
    config = dataclasses.replace(settings.classifier_config(), inference_url=None)  # in-process: the model runs here
    result = run_bench(options, config, worker)
    print(json.dumps(result) if args.json else format_table(result))
    return 0
