"""``moodbot train``: embed labelled data through the cache, fit a logistic head, write it as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.datasets import (
    DEFAULT_DEV,
    DEFAULT_EXTRA,
    DEFAULT_TRAIN,
    LABELS_HELP,
    NEGATIVES,
    SHARED_DATA,
    THREE_WAY,
    DataArgument,
    prepared,
)
from bot.settings import Settings

if TYPE_CHECKING:
    from classifier.encoders.hf import Encoder
    from classifier.heads.logistic import LogisticHead
    from classifier.heads.training import FeatureSet

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from classifier.heads.recipes import RECIPES
    from classifier.heads.tasks import TASKS

    parser = subparsers.add_parser(
        "train",
        help="train a logistic head on cached encoder features and write it as JSON",
        description="Train a calibrated logistic head: sentiment (negative / neutral / positive when any training "
        "file is three-way) or a moderation signal (--task; files label 0 other, 1 the signal). Data files are TSV, "
        f"sentence<TAB>label, no header; {LABELS_HELP}. --recipe trains a shipped head exactly as `make head` does.",
    )
    parser.add_argument("--recipe", choices=[r.name for r in RECIPES],
                        help="a shipped head's recipe (classifier/heads/recipes.py): its encoder, pooling and files")
    parser.add_argument("--task", choices=list(TASKS), default="sentiment", help="what the head predicts")
    parser.add_argument("--data", default=DEFAULT_TRAIN, metavar="TSV[:three-way]",
                        help="training file (default: %(default)s)")
    parser.add_argument("--dev", default=DEFAULT_DEV, metavar="TSV[:three-way]",
                        help="dev file for reporting, never for fitting (default: %(default)s)")
    parser.add_argument(
        "--extra",
        nargs="*",
        default=list(DEFAULT_EXTRA),
        metavar="TSV[:WEIGHT][:three-way]",
        help="extra training files with a sample weight, cross-validated alongside (default: %(default)s)",
    )
    parser.add_argument("--model", help="encoder name or folder (default: MOODBOT_MODEL; for 'multilingual', its "
                        "English encoder)")
    parser.add_argument("--pooling", help="feature spec, e.g. cls@-1 or mean@-1,-2 (default: the shipped head's)")
    parser.add_argument("--out", type=Path, help="where to write the head (default: MOODBOT_DATA_DIR/heads/head.json)")
    parser.add_argument("--feedback", action="store_true",
                        help="add moderators' reviews from the bot's database (sentiment: confirm and delete are "
                        "negative, dismiss neutral; a moderation head: confirm and delete are its signal)")
    parser.add_argument("--guild", type=int, help="with --feedback: only this guild's feedback")
    parser.add_argument("--class-weight", choices=["none", "balanced", "balanced-three-way"],
                        default="balanced-three-way",
                        help="sentiment class weighting: balanced-three-way balances the classes inside each "
                        "three-way file (whose macro recall is scored), balanced over all rows (default: %(default)s)")
    parser.add_argument("--binary-rows", choices=["partial", "full"], default="partial",
                        help="with a three-way file in training, what a binary file's rows teach: partial, only "
                        "negative rather than positive; full, also not neutral (default: %(default)s)")


@dataclass(frozen=True)
class Plan:
    """What one training run reads: the task, the encoder, the files (name, argument) and the measured files."""

    task: str
    model: str | None
    pooling: str | None
    files: list[tuple[str | None, DataArgument]]
    dev: DataArgument
    measured: list[DataArgument] = field(default_factory=list)
    c_grid: tuple[float, ...] = ()
    licences: list[str] = field(default_factory=list)
    folds: int = 5


def _plan(args: argparse.Namespace) -> Plan:
    """The run ``args`` ask for: a recipe's files (under the shared data folder), or the file arguments."""
    if args.recipe is None:
        return Plan(
            args.task, args.model, args.pooling,
            [("sst2-train" if args.task == "sentiment" else None, DataArgument.parse(args.data))]
            + [(None, DataArgument.parse(spec, weighted=True)) for spec in args.extra],
            DataArgument.parse(args.dev),
        )
    from classifier.heads.recipes import recipe_named, resolve

    recipe = recipe_named(args.recipe)
    if args.model or args.pooling or args.task != "sentiment":
        raise ValueError("--recipe sets the encoder, pooling and task: leave out --model, --pooling and --task")
    return Plan(
        recipe.task, recipe.encoder, recipe.pooling,
        [(_set_name(spec), DataArgument.parse(resolve(spec, SHARED_DATA), weighted=True)) for spec in recipe.data],
        DataArgument.parse(resolve(recipe.dev, SHARED_DATA)),
        [DataArgument.parse(resolve(spec, SHARED_DATA)) for spec in recipe.measured],
        recipe.c_grid,
        recipe.licences(),
        recipe.folds,
    )


def _set_name(spec: str) -> str:
    """A recipe file's set name in reports: its folder and stem, e.g. ``umsab/arabic_train``."""
    path = Path(spec.split(":")[0])
    return f"{path.parent.name}/{path.stem}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.encoders.hf import Encoder
    from classifier.encoders.pooling import Pooling
    from classifier.heads.logistic import LogisticHead
    from classifier.heads.sentiment import NEUTRAL
    from classifier.heads.tasks import task_named
    from classifier.heads.training import FeatureSet, TrainingOptions, train_head, train_signal_head
    from classifier.inference.embeddings import CachedEncoder

    if args.guild is not None and not args.feedback:
        raise ValueError("--guild selects whose moderator feedback to use: it needs --feedback")
    plan = _plan(args)
    task = task_named(plan.task)
    signal = task.moderation
    files = [(name, argument, argument.load(signal)) for name, argument in plan.files]  # bad files fail early
    dev = plan.dev.load(signal)
    measured = [(argument, argument.load(signal)) for argument in plan.measured]
    if not signal and not (set(dev.labels.tolist()) - {NEUTRAL}):
        raise ValueError(f"--dev {plan.dev.path}: dev accuracy is negative vs positive; the file has neither")
    config = settings.classifier
    if plan.model:  # the head shipped for (or configured with) the encoder being trained: its feature, its dev figure
        config = dataclasses.replace(config, model=plan.model)
    config = config.path_configs()[0] if config.head is None else config  # 'multilingual': its English encoder
    shipped_path = config.head_path if not signal else _shipped_path(config.model, task.name)
    shipped = LogisticHead.load(shipped_path) if shipped_path is not None and shipped_path.is_file() else None
    if plan.pooling:
        pooling = Pooling.parse(plan.pooling)
    else:
        pooling = shipped.encoder.pooling if shipped else Pooling()
    encoder = Encoder.configured(dataclasses.replace(config, quantize="none"), pooling)  # heads learn float features
    features = CachedEncoder.open(encoder, str(config.cache_dir), config.cache_size_mb)
    try:
        sets, sources = [], []
        for name, argument, data in files:
            vectors = features.dataset_vectors(prepared(data), f"embedding {argument.path.name}")[0]
            sets.append(FeatureSet(name or argument.path.stem, vectors, data.labels, argument.weight, data.three_way))
            source = {"file": argument.path.name, "sha256": data.sha256, "n": len(data), "weight": argument.weight}
            sources.append(
                source | ({"labels": THREE_WAY} if data.three_way else {})
                | ({"rows": NEGATIVES} if argument.negatives_only else {})
            )
        if args.feedback:
            sets.append(_feedback_set(settings, encoder, args.guild, task.name))
        dev_vectors = features.dataset_vectors(prepared(dev), "embedding dev")[0]
        dev_set = FeatureSet(plan.dev.path.name, dev_vectors, dev.labels, three_way=dev.three_way)
        measured_sets = [
            FeatureSet(
                argument.path.name, features.dataset_vectors(prepared(data), f"measuring {argument.path.name}")[0],
                data.labels, three_way=data.three_way,
            )
            for argument, data in measured
        ]
    finally:
        features.close()
    date = dt.datetime.fromtimestamp(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())), dt.UTC).strftime("%Y-%m-%d")
    info: dict[str, Any] = {"data": sources, "dev_data": {"file": plan.dev.path.name, "sha256": dev.sha256},
                            "date": date}
    if plan.licences:
        info["licences"] = plan.licences
    options = TrainingOptions(
        class_weight=None if args.class_weight == "none" else args.class_weight, binary_rows=args.binary_rows,
        folds=plan.folds, **({"c_grid": plan.c_grid} if plan.c_grid else {}),
    )
    if signal:
        result = train_signal_head(encoder.identity, task, sets, dev_set, options, info, measured_sets)
    else:
        result = train_head(encoder.identity, sets, dev_set, options, info, measured_sets)
    out = args.out or settings.data_dir / "heads" / "head.json"
    if args.feedback and not signal:
        _refuse_regression(shipped, encoder, dev_set, result.report["dev_accuracy"])
    result.head.save(out)
    print(training_summary(result.report))
    print(f"wrote {out}")
    return 0


def _shipped_path(model: str, task: str) -> Path | None:
    """Where the head shipped for a bundled ``model`` and ``task`` is (for its pooling), ``None`` for other models."""
    from classifier.encoders.bundled import bundled_encoder

    bundled = bundled_encoder(model)
    return bundled.head_path_for(task) if bundled is not None else None


def training_summary(report: dict[str, Any]) -> str:
    """The chosen C, each set's held-out figures, and the dev (and measured) figures."""
    lines = [f"C={report['C']}  CV score {report['cv_score']:.4f}  classes {'/'.join(report['classes'])}  "
             f"temperature {report['temperature']:.3f}"]
    if "task" in report:  # a moderation head
        lines[0] += f"  flag threshold {report['flag_threshold']:.2f}"
        for name, figures in [*report["cv_by_set"].items(), *report.get("measured", {}).items()]:
            lines.append(f"  {name}: {_signal_line(figures)}")
        lines.append(f"dev {report['dev']}: {_signal_line(report['dev_figures'])}")
        return "\n".join(lines)
    for name, figures in report["cv_by_set"].items():
        lines.append(f"  {name}: CV {_sentiment_line(figures)}")
    lines.append(f"dev accuracy {report['dev_accuracy']:.4f}  dev ECE {report['dev_ece_uncalibrated']:.4f} -> "
                 f"{report['dev_ece']:.4f} (calibrated)  dev neutral share {report['dev_neutral_share']:.4f}")
    for name, figures in report.get("measured", {}).items():
        lines.append(f"  {name} (measured, not trained on): {_sentiment_line(figures)}")
    return "\n".join(lines)


def _sentiment_line(figures: dict[str, Any]) -> str:
    accuracy = "n/a" if figures["accuracy"] is None else f"{figures['accuracy']:.4f}"
    line = f"accuracy (negative vs positive) {accuracy}"
    if "macro_recall" in figures:
        recalls = " ".join(f"{label} {value:.4f}" for label, value in figures["recall"].items())
        line += (f", three-way accuracy {figures['accuracy_three_way']:.4f}, macro recall "
                 f"{figures['macro_recall']:.4f} (recall: {recalls}), macro-F1 {figures['macro_f1']:.4f}")
    return line + f", ECE {figures['ece']:.4f}"


def _signal_line(figures: dict[str, Any]) -> str:
    precision, recall = figures.get("precision_at_threshold"), figures.get("recall_at_threshold")
    at = "" if precision is None else f", at the threshold precision {precision:.3f}"
    at += "" if recall is None else f" recall {recall:.3f}"
    return f"macro-F1 {figures['macro_f1']:.4f}, ECE {figures['ece']:.4f}{at}"


def _feedback_set(settings: Settings, encoder: Encoder, guild: int | None, head: str) -> FeatureSet:
    import numpy as np

    from bot.store import Store
    from classifier.encoders.identity import MODES
    from classifier.heads.training import FeatureSet

    # Same model, weights and pooling in any numeric mode: the bot may run int8 (MOODBOT_QUANTIZE) or fp16 (GPU)
    # while this command embeds unquantized on CPU; those vectors differ only by rounding and are the same features.
    with Store.open_sync(settings.database) as store:
        found = [store.feedback_examples(encoder.identity.cache_namespace(mode), guild, head) for mode in MODES]
    found = [(v, y) for v, y in found if len(y)]
    vectors = np.concatenate([v for v, _ in found]) if found else np.empty((0, encoder.dim), np.float32)
    labels = np.concatenate([y for _, y in found]) if found else np.empty(0, np.int64)
    if not len(labels):
        raise ValueError("no moderator feedback stored for this encoder" + (f" in guild {guild}" if guild else ""))
    log.info("adding %d moderator feedback examples", len(labels))
    # sentiment labels are class indices (dismiss is neutral); a moderation head's are 0 other, 1 its signal
    return FeatureSet("feedback", vectors, labels, three_way=head == "sentiment")


def _refuse_regression(current: LogisticHead | None, encoder: Encoder, dev: FeatureSet, new_accuracy: float) -> None:
    """Refuse a head whose negative-vs-positive dev accuracy is more than a point below the current head's."""
    from classifier.evaluation.metrics import binary_accuracy
    from classifier.heads.sentiment import CLASSES

    if current is None or current.encoder.fingerprint != encoder.fingerprint:
        return
    before = binary_accuracy(dev.labels, current.probabilities_for(dev.features, CLASSES))
    print(f"dev accuracy before feedback {before:.4f}, after {new_accuracy:.4f}")
    if new_accuracy < before - 0.01:
        raise ValueError(f"refusing to write the head: dev accuracy would drop from {before:.4f} "
                         f"to {new_accuracy:.4f} (more than 1 point)")
