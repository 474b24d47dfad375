"""``moodbot bench``: the naive one-at-a-time bot vs the batching worker vs cache hits (see :mod:`classifier.bench`)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from bot.cli.datasets import DEFAULT_DEV, LABELS_HELP, DataArgument
from bot.settings import Settings

DATA_SPEC = "TSV[:WEIGHT][:three-way]"


def _data_spec(argument: str) -> DataArgument:
    try:
        return DataArgument.parse(argument, weighted=True)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="naive one-at-a-time vs batching worker vs cache hits, side by side, "
                                   "over every encoder path of MOODBOT_MODEL")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model", help="what to bench, as MOODBOT_MODEL (default: MOODBOT_MODEL): 'multilingual' "
                        "(both paths behind the language gate) or one encoder; distilbert-base-uncased works "
                        "offline, random-init")
    parser.add_argument("--messages", type=int, default=512, help="burst size (default: %(default)s)")
    parser.add_argument("--data", type=_data_spec, action="append", metavar=DATA_SPEC,
                        help="texts to bench on, as for train; repeat it to mix files, each WEIGHT its share of the "
                        f"burst (default: {DEFAULT_DEV}); {LABELS_HELP}")
    parser.add_argument("--compare", type=_data_spec, action="append", metavar=DATA_SPEC,
                        help="also bench a second burst of these texts beside the first, on caches of its own (e.g. "
                        "tests/data/bench/mixed_burst.tsv:three-way beside English), and report its worker "
                        "throughput over the first's")
    parser.add_argument("--inference-url", metavar="URL",
                        help="also run the burst through `moodbot serve` at URL, beside the in-process path")
    parser.add_argument("--int8", action="store_true",
                        help="also run the worker burst with int8 dynamic quantization (CPU, fp32 models only)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.bench import BenchOptions, DataFile, format_table, run_bench

    def files(specs: list[DataArgument]) -> tuple[DataFile, ...]:
        return tuple(DataFile(spec.path, spec.weight, spec.three_way) for spec in specs)

    options = BenchOptions(
        data=files(args.data or [DataArgument.parse(DEFAULT_DEV)]), messages=args.messages, model=args.model,
        int8=args.int8, inference_url=args.inference_url, inference_timeout_s=settings.classifier.inference_timeout_s,
        compare=files(args.compare or []),
    )
    worker = dataclasses.replace(settings.worker, cache_url=None)  # it measures this process's cache tiers
    config = dataclasses.replace(settings.classifier, inference_url=None)  # in-process: the model runs here
    result = run_bench(options, config, worker)
    print(json.dumps(result) if args.json else format_table(result))
    return 0
