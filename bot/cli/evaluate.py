"""``moodbot evaluate``: accuracy, per-class precision/recall/F1, confusion matrix and calibration on a labelled TSV."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.datasets import LABELS_HELP, DataArgument, prepared
from bot.settings import Settings
from classifier.flag_policy import DEFAULT_FLAG_THRESHOLD
from classifier.heads.sentiment import CLASSES

if TYPE_CHECKING:
    from classifier.evaluation.metrics import Report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy, per-class precision/recall/F1, confusion matrix, calibration and flags on a labelled TSV",
        description="Score the configured head on a labelled TSV (sentence<TAB>label, no header; "
        f"{LABELS_HELP}). Binary data is scored negative against positive only, three-way data on all three "
        "classes (with macro-averaged recall, TweetEval's metric); both report how many texts the bot would flag "
        f"(p_negative >= {DEFAULT_FLAG_THRESHOLD:g}).",
    )
    parser.add_argument("--data", required=True, metavar="TSV[:three-way]", help="the labelled file")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--plot", type=Path, metavar="PNG", help="also write a reliability diagram and confusion matrix"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.evaluation.metrics import classification_report
    from classifier.inference.classifier import Classifier

    argument = DataArgument.parse(args.data)
    data = argument.load()
    started = time.perf_counter()
    classifier = Classifier.load(settings.classifier_config())
    try:
        loaded = time.perf_counter()
        vectors, hits = classifier.embeddings.dataset_vectors(
            prepared(data), description=f"evaluating {argument.path.name}"
        )
        probabilities = classifier.head.probabilities_for(vectors, CLASSES)
        elapsed = time.perf_counter() - loaded
    finally:
        classifier.close()
    report = classification_report(data.labels, probabilities, data.three_way)
    result = report.to_json() | {
        "data": str(argument.path),
        "sentences_per_s": round(len(data) / max(elapsed, 1e-9), 1),
        "seconds": round(elapsed, 3),
        "load_seconds": round(loaded - started, 3),
        "cache_hits": hits,
        "encoder": classifier.encoder.describe(),
        "head_classes": list(classifier.head.classes),
    }
    if args.plot:
        from classifier.evaluation.plots import save_evaluation_plot

        title = f"{argument.path.name} — {classifier.encoder.identity.name}"
        save_evaluation_plot(args.plot, data.labels, probabilities, report, title)
        result["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(result))
    else:
        print(evaluation_table(result, report))
    return 0


def evaluation_table(result: dict, report: Report) -> str:
    """The evaluation for people: accuracy, calibration, per-class figures, confusion matrix, flags, speed."""
    scored = "three-way" if report.three_way else "binary: negative vs positive"
    lines = [
        f"data        {result['data']}  (n={report.n}, {scored})",
        f"encoder     {result['encoder']}",
        f"accuracy    {report.accuracy:.4f}",
    ]
    if report.three_way:
        lines += [f"macro recall {report.macro_recall:.4f}",
                  f"accuracy    {_maybe(report.binary_accuracy)} negative vs positive (neutral rows left out)"]
    lines += [f"ECE         {report.ece:.4f}", "class       precision  recall  f1      support"]
    for name, row in report.per_class.items():
        lines.append(f"{name:<11} {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']}")
    lines.append("confusion   true\\pred  " + "".join(f"{name:<10}" for name in report.classes))
    for name, row in zip(report.classes, report.confusion, strict=True):
        lines.append(f"            {name:<10} " + "".join(f"{count:<10}" for count in row))
    shares = ", ".join(f"{name} {share:.1%}" for name, share in report.label_shares.items())
    precision, recall = report.negative_precision_at_flag, report.negative_recall_at_flag
    lines += [
        f"labels      {shares}",
        f"flags       {report.flags} of {report.n} at p_negative >= {report.flag_threshold:g} "
        f"(negative precision {_maybe(precision)}, negative recall {_maybe(recall)})",
        f"speed       {result['sentences_per_s']} sentences/s ({result['seconds']} s), "
        f"cache hits {result['cache_hits']}/{report.n}",
    ]
    if "plot" in result:
        lines.append(f"plot        {result['plot']}")
    return "\n".join(lines)


def _maybe(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
