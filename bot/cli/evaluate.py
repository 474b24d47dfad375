"""``moodbot evaluate``: accuracy, per-class precision/recall/F1, confusion matrix and calibration on a labelled TSV."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.datasets import LABELS_HELP, DataArgument, prepared
from bot.settings import Settings
from classifier.flag_policy import DEFAULT_FLAG_THRESHOLD

if TYPE_CHECKING:
    import numpy as np

    from classifier.evaluation.metrics import Report
    from classifier.inference.prediction import Prediction
    from classifier.inference.router import Router

#: Texts per classification call (each call's cache lookups and model batches).
EVALUATE_CHUNK = 256


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from classifier.heads.tasks import TASKS

    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy, per-class precision/recall/F1, confusion matrix, calibration and flags on a labelled TSV",
        description="Score the configured classifier on a labelled TSV (sentence<TAB>label, no header; "
        f"{LABELS_HELP}), each text through the encoder path the language gate gives it. Sentiment: binary data is "
        "scored negative against positive only, three-way data on all three classes (with macro-averaged recall, "
        "TweetEval's metric); both report how many texts the bot would flag "
        f"(p_negative >= {DEFAULT_FLAG_THRESHOLD:g}). A moderation head (--head): macro-F1, and precision and recall "
        "at its flag threshold, on a file labelled 0 (other) / 1 (the signal).",
    )
    parser.add_argument("--data", required=True, metavar="TSV[:three-way]", help="the labelled file")
    parser.add_argument("--head", choices=list(TASKS), default="sentiment", help="the head to score")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--plot", type=Path, metavar="PNG", help="also write a reliability diagram and confusion matrix (sentiment)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np

    from classifier.evaluation.metrics import classification_report
    from classifier.heads.tasks import task_named
    from classifier.inference.router import Paths, Router

    task = task_named(args.head)
    argument = DataArgument.parse(args.data)
    data = argument.load(signal=task.moderation)
    started = time.perf_counter()
    paths = Paths.load(settings.classifier)
    try:
        loaded = time.perf_counter()
        predictions = _classify(Router(paths), prepared(data), argument.path.name)
        elapsed = time.perf_counter() - loaded
        encoders = {name: c.encoder.describe() for name, c in paths.classifiers.items()}
    finally:
        paths.close()
    counts = Counter(p.path for p in predictions)
    common = {
        "data": str(argument.path),
        "sentences_per_s": round(len(data) / max(elapsed, 1e-9), 1),
        "seconds": round(elapsed, 3),
        "load_seconds": round(loaded - started, 3),
        "cache_hits": sum(p.cached for p in predictions),
        "encoder": "; ".join(encoders.values()),
        "paths": {name: round(counts[name] / max(len(data), 1), 4) for name in encoders},
    }
    if task.moderation:
        return _report_signal(args, task.name, data.labels, predictions, common)
    probabilities = np.array([[p.p_negative, p.p_neutral, p.p_positive] for p in predictions]).reshape(-1, 3)
    report = classification_report(data.labels, probabilities, data.three_way)
    result = report.to_json() | common | {"head_classes": list(paths.english_classifier.head.classes)}
    if args.plot:
        from classifier.evaluation.plots import save_evaluation_plot

        title = f"{argument.path.name} — {', '.join(encoders)}"
        save_evaluation_plot(args.plot, data.labels, probabilities, report, title)
        result["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(result))
    else:
        print(evaluation_table(result, report))
    return 0


def _classify(router: Router, texts: list[str], name: str) -> list[Prediction]:
    """Every text through its path, with a progress bar (the chunks also bound the memory one call takes)."""
    from tqdm import tqdm

    found: list[Prediction] = []
    with tqdm(total=len(texts), desc=f"evaluating {name}", unit="text", leave=False) as progress:
        for start in range(0, len(texts), EVALUATE_CHUNK):
            found += router.classify(texts[start : start + EVALUATE_CHUNK])
            progress.update(min(EVALUATE_CHUNK, len(texts) - start))
    return found


def _report_signal(
    args: argparse.Namespace, head: str, labels: np.ndarray, predictions: list[Prediction], common: dict[str, object]
) -> int:
    """A moderation head's figures; texts whose path has no such head count as not flagged, and are counted."""
    import numpy as np

    from classifier.evaluation.metrics import signal_ece, signal_macro_f1

    scores = np.array([p.signal(head) if p.signal(head) is not None else 0.0 for p in predictions])
    thresholds = {p.thresholds[head] for p in predictions if head in p.thresholds}
    threshold = min(thresholds) if len(thresholds) == 1 else None  # several paths: each has its own
    flagged = np.array([head in p.thresholds and p.signal(head) >= p.thresholds[head] for p in predictions])
    result = common | {
        "head": head,
        "n": int(len(labels)),
        "without_head": int(sum(p.signal(head) is None for p in predictions)),
        "macro_f1": signal_macro_f1(labels, scores >= 0.5),
        "ece": signal_ece(labels, scores),
        "flag_threshold": threshold,
        "flags": int(flagged.sum()),
        "precision_at_threshold": float(labels[flagged].mean()) if flagged.any() else None,
        "recall_at_threshold": float(flagged[labels == 1].mean()) if (labels == 1).any() else None,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(f"{key:<22} {value}" for key, value in result.items()))
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
    floor = f"(noise floor {report.ece_noise_floor:.4f}: what a perfectly calibrated model reads on as many rows)"
    lines += [f"ECE         {report.ece:.4f} {floor}", "class       precision  recall  f1      support"]
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
