"""``moodbot train``: embed labelled data through the cache, fit a logistic head, write it as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.datasets import (
    DEFAULT_DEV,
    DEFAULT_EXTRA,
    DEFAULT_TRAIN,
    LABELS_HELP,
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
    parser = subparsers.add_parser(
        "train",
        help="train a logistic head on cached encoder features and write it as JSON",
        description="Train a calibrated logistic head (negative / neutral / positive when any training file is "
        f"three-way). Data files are TSV, sentence<TAB>label, no header; {LABELS_HELP}.",
    )
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
    parser.add_argument("--model", help="encoder name or folder (default: MOODBOT_MODEL)")
    parser.add_argument("--pooling", help="feature spec, e.g. cls@-1 or mean@-1,-2 (default: the shipped head's)")
    parser.add_argument("--out", type=Path, help="where to write the head (default: MOODBOT_DATA_DIR/heads/head.json)")
    parser.add_argument("--feedback", action="store_true",
                        help="add moderators' reviews from the bot's database (confirm and delete: negative; "
                        "dismiss: neutral)")
    parser.add_argument("--guild", type=int, help="with --feedback: only this guild's feedback")
    parser.add_argument("--class-weight", choices=["none", "balanced", "balanced-three-way"],
                        default="balanced-three-way",
                        help="class weighting: balanced-three-way balances the classes inside each three-way file "
                        "(whose macro recall is scored), balanced over all rows (default: %(default)s)")
    parser.add_argument("--binary-rows", choices=["partial", "full"], default="partial",
                        help="with a three-way file in training, what a binary file's rows teach: partial, only "
                        "negative rather than positive; full, also not neutral (default: %(default)s)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.encoders.hf import Encoder
    from classifier.encoders.pooling import Pooling
    from classifier.heads.logistic import LogisticHead
    from classifier.heads.sentiment import NEUTRAL
    from classifier.heads.training import FeatureSet, TrainingOptions, train_head
    from classifier.inference.embeddings import CachedEncoder

    if args.guild is not None and not args.feedback:
        raise ValueError("--guild selects whose moderator feedback to use: it needs --feedback")
    train_arg, dev_arg = DataArgument.parse(args.data), DataArgument.parse(args.dev)
    named = [("sst2-train", train_arg)] + [(None, DataArgument.parse(spec, weighted=True)) for spec in args.extra]
    files = [(name, argument, argument.load()) for name, argument in named]  # a bad file fails before the model loads
    dev = dev_arg.load()
    if not (set(dev.labels.tolist()) - {NEUTRAL}):
        raise ValueError(f"--dev {dev_arg.path}: dev accuracy is negative vs positive; the file has neither")
    config = settings.classifier_config()
    if args.model:  # the head shipped for (or configured with) the encoder being trained: its feature, its dev figure
        config = dataclasses.replace(config, model=args.model)
    shipped = LogisticHead.load(config.head_path) if config.head_path.is_file() else None
    if args.pooling:
        pooling = Pooling.parse(args.pooling)
    else:
        pooling = shipped.encoder.pooling if shipped else Pooling()
    encoder = Encoder.configured(dataclasses.replace(config, quantize="none"), pooling)  # heads learn float features
    features = CachedEncoder.open(encoder, str(config.cache_dir), config.cache_size_mb)
    try:
        sets, sources = [], []
        for name, argument, data in files:
            vectors = features.dataset_vectors(prepared(data), f"embedding {argument.path.name}")[0]
            sets.append(FeatureSet(name or argument.path.stem, vectors, data.labels, argument.weight, data.three_way))
            sources.append({"file": argument.path.name, "sha256": data.sha256, "n": len(data)}
                           | ({"weight": argument.weight} if name is None else {})
                           | ({"labels": THREE_WAY} if data.three_way else {}))
        if args.feedback:
            sets.append(_feedback_set(settings, encoder, args.guild))
        dev_vectors = features.dataset_vectors(prepared(dev), "embedding dev")[0]
        dev_set = FeatureSet(dev_arg.path.name, dev_vectors, dev.labels, three_way=dev.three_way)
    finally:
        features.close()
    date = dt.datetime.fromtimestamp(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())), dt.UTC).strftime("%Y-%m-%d")
    info = {"data": sources, "dev_data": {"file": dev_arg.path.name, "sha256": dev.sha256}, "date": date}
    options = TrainingOptions(
        class_weight=None if args.class_weight == "none" else args.class_weight, binary_rows=args.binary_rows
    )
    result = train_head(encoder.identity, sets, dev_set, options, info)
    out = args.out or settings.data_dir / "heads" / "head.json"
    if args.feedback:
        _refuse_regression(shipped, encoder, dev_set, result.report["dev_accuracy"])
    result.head.save(out)
    print(training_summary(result.report))
    print(f"wrote {out}")
    return 0


def training_summary(report: dict[str, Any]) -> str:
    """The chosen C, each set's held-out figures, and dev accuracy and calibration."""
    lines = [f"C={report['C']}  CV score {report['cv_score']:.4f}  classes {'/'.join(report['classes'])}  "
             f"temperature {report['temperature']:.3f}"]
    for name, figures in report["cv_by_set"].items():
        accuracy = "n/a" if figures["accuracy"] is None else f"{figures['accuracy']:.4f}"
        line = f"  {name}: CV accuracy (negative vs positive) {accuracy}"
        if "macro_recall" in figures:
            recalls = " ".join(f"{label} {value:.4f}" for label, value in figures["recall"].items())
            line += (f", three-way accuracy {figures['accuracy_three_way']:.4f}, macro recall "
                     f"{figures['macro_recall']:.4f} (recall: {recalls})")
        lines.append(line + f", ECE {figures['ece']:.4f}")
    lines.append(f"dev accuracy {report['dev_accuracy']:.4f}  dev ECE {report['dev_ece_uncalibrated']:.4f} -> "
                 f"{report['dev_ece']:.4f} (calibrated)  dev neutral share {report['dev_neutral_share']:.4f}")
    return "\n".join(lines)


def _feedback_set(settings: Settings, encoder: Encoder, guild: int | None) -> FeatureSet:
    import numpy as np

    from bot.store import Store
    from classifier.encoders.identity import MODES
    from classifier.heads.training import FeatureSet

    # Same model, weights and pooling in any numeric mode: the bot may run int8 (MOODBOT_QUANTIZE) or fp16 (GPU)
    # while this command embeds unquantized on CPU; those vectors differ only by rounding and are the same features.
    with Store.open_sync(settings.database) as store:
        found = [store.feedback_examples(encoder.identity.cache_namespace(mode), guild) for mode in MODES]
    found = [(v, y) for v, y in found if len(y)]
    vectors = np.concatenate([v for v, _ in found]) if found else np.empty((0, encoder.dim), np.float32)
    labels = np.concatenate([y for _, y in found]) if found else np.empty(0, np.int64)
    if not len(labels):
        raise ValueError("no moderator feedback stored for this encoder" + (f" in guild {guild}" if guild else ""))
    log.info("adding %d moderator feedback examples", len(labels))
    return FeatureSet("feedback", vectors, labels, three_way=True)  # labels are class indices: dismiss is neutral


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
