"""The work behind each ``moodbot`` sub-command (imported lazily: ``--help`` stays fast)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bot.console import classify_lines, format_result, run_console, stdin_lines
from bot.settings import Settings
from cache import EmbeddingCache
from classifier.bundled import BundledModelError
from classifier.data import DataFormatError, LabelledData, load_tsv
from classifier.head import DEFAULT_HEAD_PATH, EncoderSpec, HeadError, LogisticHead
from classifier.identity import EncoderError
from classifier.metrics import classification_report
from classifier.pipeline import SentimentClassifier
from classifier.pooling import Pooling
from classifier.text import prepare_text

if TYPE_CHECKING:
    from classifier.encoder import Encoder
    from classifier.training import FeatureSet

log = logging.getLogger("moodbot")

USER_ERRORS = (HeadError, EncoderError, BundledModelError, DataFormatError, FileNotFoundError, ValueError)


def load_classifier(settings: Settings) -> SentimentClassifier:
    """The classifier described by the settings."""
    return SentimentClassifier.load(
        settings.model, settings.head, settings.cache_dir, cache_size_mb=settings.cache_size_mb,
        device=settings.device, quantize=settings.quantize, max_batch_tokens=settings.max_batch_tokens,
    )


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """The bot with a token, else the offline console."""
    if settings.discord_token:
        from bot.runner import run_bot

        return run_bot(settings)
    log.info("DISCORD_TOKEN is not set: starting the offline console")
    return cmd_console(argparse.Namespace(json=False), settings)


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    classifier = load_classifier(settings)
    try:
        run_console(classifier, as_json=args.json)
    finally:
        classifier.close()
    return 0


def cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    classifier = load_classifier(settings)
    try:
        lines = args.texts if args.texts else stdin_lines()
        for result in classify_lines(classifier, lines):
            sys.stdout.write(format_result(result, args.json) + "\n")
    finally:
        classifier.close()
    return 0


def _prepared(data: LabelledData) -> list[str]:
    return [prepare_text(text) for text in data.texts]


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    data = load_tsv(args.data)
    started = time.perf_counter()
    classifier = load_classifier(settings)
    try:
        loaded = time.perf_counter()
        vectors, hits = classifier.dataset_vectors(_prepared(data), description=f"evaluating {Path(args.data).name}")
        p_positive = classifier.head.predict_proba(vectors)
        elapsed = time.perf_counter() - loaded
    finally:
        classifier.close()
    report = classification_report(data.labels, p_positive)
    result = report.to_json() | {
        "data": str(args.data), "sentences_per_s": round(len(data) / max(elapsed, 1e-9), 1), "seconds": round(elapsed, 3),
        "load_seconds": round(loaded - started, 3), "cache_hits": hits, "encoder": classifier.encoder.describe(),
    }
    if args.plot:
        from classifier.plots import save_evaluation_plot

        save_evaluation_plot(args.plot, data.labels, p_positive, report, f"{Path(args.data).name} — {classifier.encoder.name}")
        result["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(result))
    else:
        print(_evaluation_table(result))
    return 0


def _evaluation_table(result: dict) -> str:
    lines = [
        f"data        {result['data']}  (n={result['n']})",
        f"encoder     {result['encoder']}",
        f"accuracy    {result['accuracy']:.4f}",
        f"ECE         {result['ece']:.4f}",
        "class       precision  recall  f1      support",
    ]
    for name, row in result["per_class"].items():
        lines.append(f"{name:<11} {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']}")
    (tn, fp), (fn, tp) = result["confusion"]
    lines += [
        "confusion   true\\pred  negative  positive",
        f"            negative   {tn:<8}  {fp}",
        f"            positive   {fn:<8}  {tp}",
        f"speed       {result['sentences_per_s']} sentences/s ({result['seconds']} s), cache hits {result['cache_hits']}/{result['n']}",
    ]
    if "plot" in result:
        lines.append(f"plot        {result['plot']}")
    return "\n".join(lines)


def _extra_sets(specs: list[str]) -> list[tuple[LabelledData, float]]:
    sets = []
    for spec in specs:
        path, _, weight = spec.rpartition(":") if ":" in Path(spec).name else (spec, "", "1")
        try:
            sets.append((load_tsv(path), float(weight)))
        except ValueError as error:
            raise ValueError(f"--extra {spec!r}: {error}") from None
    return sets


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.encoder import Encoder
    from classifier.features import CachedEncoder
    from classifier.training import FeatureSet, TrainingOptions, train_head

    if args.guild is not None and not args.feedback:
        raise ValueError("--guild selects whose moderator feedback to use: it needs --feedback")
    shipped = LogisticHead.load(settings.head or DEFAULT_HEAD_PATH) if (settings.head or DEFAULT_HEAD_PATH).is_file() else None
    pooling = Pooling.parse(args.pooling or (shipped.encoder.pooling if shipped else "cls@-1"))
    encoder = Encoder.load(args.model or settings.model, pooling=pooling, device=settings.device, max_batch_tokens=settings.max_batch_tokens)
    features = CachedEncoder.open(encoder, str(settings.cache_dir), settings.cache_size_mb)
    try:
        train, dev = load_tsv(args.data), load_tsv(args.dev)
        sets = [FeatureSet("sst2-train", features.dataset_vectors(_prepared(train), "embedding train")[0], train.labels)]
        sources = [{"file": Path(train.source).name, "sha256": train.sha256, "n": len(train)}]
        for data, weight in _extra_sets(args.extra):
            sets.append(FeatureSet(Path(data.source).stem, features.dataset_vectors(_prepared(data), f"embedding {Path(data.source).name}")[0], data.labels, weight))
            sources.append({"file": Path(data.source).name, "sha256": data.sha256, "n": len(data), "weight": weight})
        if args.feedback:
            sets.append(_feedback_set(settings, encoder, args.guild))
        dev_set = FeatureSet(Path(dev.source).name, features.dataset_vectors(_prepared(dev), "embedding dev")[0], dev.labels)
    finally:
        features.close()
    date = dt.datetime.fromtimestamp(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())), dt.timezone.utc).strftime("%Y-%m-%d")
    info = {"data": sources, "dev_data": {"file": Path(dev.source).name, "sha256": dev.sha256}, "date": date}
    options = TrainingOptions(class_weight=None if args.class_weight == "none" else args.class_weight)
    result = train_head(EncoderSpec.of(encoder), sets, dev_set, options, info)
    out = args.out or settings.data_dir / "heads" / "head.json"
    if args.feedback:
        _refuse_regression(shipped, encoder, dev_set, result.report["dev_accuracy"])
    result.head.save(out)
    report = result.report
    print(f"C={report['C']}  CV accuracy {report['cv_accuracy']:.4f}  " + "  ".join(f"{k} CV {v:.4f}" for k, v in report["cv_accuracy_by_set"].items()))
    print(f"dev accuracy {report['dev_accuracy']:.4f}  dev ECE {report['dev_ece_uncalibrated']:.4f} -> {report['dev_ece']:.4f} (calibrated)")
    print(f"wrote {out}")
    return 0


def _feedback_set(settings: Settings, encoder: Encoder, guild: int | None) -> FeatureSet:
    from bot.store import Store
    from classifier.training import FeatureSet

    # Same model, weights and pooling in any numeric mode: the bot may run int8 (MOODBOT_QUANTIZE) or fp16 (GPU)
    # while this command embeds in fp32; those vectors differ only by rounding and are the same features.
    with Store.open_sync(settings.database_path) as store:
        found = [store.feedback_examples(f"{encoder.fingerprint}:{mode}", guild) for mode in ("fp32", "fp16", "int8")]
    found = [(v, y) for v, y in found if len(y)]
    vectors = np.concatenate([v for v, _ in found]) if found else np.empty((0, encoder.dim), np.float32)
    labels = np.concatenate([y for _, y in found]) if found else np.empty(0, np.int64)
    if not len(labels):
        raise ValueError("no moderator feedback stored for this encoder" + (f" in guild {guild}" if guild else ""))
    log.info("adding %d moderator feedback examples", len(labels))
    return FeatureSet("feedback", vectors, labels)


def _refuse_regression(current: LogisticHead | None, encoder: Encoder, dev: FeatureSet, new_accuracy: float) -> None:
    if current is None or current.encoder.fingerprint != encoder.fingerprint:
        return
    before = float(((current.predict_proba(dev.features) >= 0.5) == dev.labels).mean())
    print(f"dev accuracy before feedback {before:.4f}, after {new_accuracy:.4f}")
    if new_accuracy < before - 0.01:
        raise ValueError(f"refusing to write the head: dev accuracy would drop from {before:.4f} to {new_accuracy:.4f} (more than 1 point)")


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from classifier.bench import run_bench

    return run_bench(args, settings)


def cmd_cache(args: argparse.Namespace, settings: Settings) -> int:
    cache = EmbeddingCache(settings.cache_dir, namespace="", size_limit_mb=settings.cache_size_mb)
    try:
        if args.action == "clear":
            print(f"removed {cache.clear()} cached vectors from {settings.cache_dir}")
        else:
            stats = cache.stats()
            print(json.dumps({"directory": stats.directory, "entries": stats.entries, "volume_bytes": stats.volume_bytes,
                              "size_limit_bytes": cache.size_limit_bytes}))
    finally:
        cache.close()
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "run": cmd_run, "console": cmd_console, "classify": cmd_classify, "evaluate": cmd_evaluate,
    "train": cmd_train, "bench": cmd_bench, "cache": cmd_cache,
}
