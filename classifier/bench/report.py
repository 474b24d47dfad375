"""The bench's output: a header describing the run, and the human-readable table of ours next to naive."""

from __future__ import annotations

from typing import Any

import torch

from classifier.bench.probes import device_name
from classifier.bench.subject import BenchConfiguration

#: The targets the report shows beside its figures: worker over naive, and a compare burst's worker over the first's.
SPEEDUP_AIM = 3.0
COMPARE_AIM = 0.8


def header(configuration: BenchConfiguration, messages: int, data: str) -> dict[str, Any]:
    """What was benched, where: the first keys of the JSON result (each path's own description is in ``paths``)."""
    subjects = configuration.subjects
    encoder = subjects[configuration.english].encoder

    def each(describe: Any) -> str:
        if len(subjects) == 1:
            return describe(next(iter(subjects.values())))
        return "; ".join(f"{name}: {describe(subject)}" for name, subject in subjects.items())

    result: dict[str, Any] = {
        "model": configuration.model,
        "routed": configuration.routed,
        "english_path": configuration.english,
        "multilingual_path": configuration.multilingual,
        "encoder": each(lambda subject: subject.encoder.describe()),
        "mode": encoder.mode,
        "random_init": configuration.random_init,
        "head": each(lambda subject: subject.head_note),
        "device": device_name(encoder.device),
        "torch_threads": torch.get_num_threads(),
        "messages": messages,
        "data": data,
    }
    if configuration.notes:
        result["notes"] = configuration.notes
    return result


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(r: dict[str, Any]) -> str:
    """The human-readable report: ours and naive side by side."""
    width = 34
    lines = [f"moodbot bench: {r['encoder']} on {r['device']}, {r['torch_threads']} torch threads"]
    if r["random_init"]:
        lines.append(
            f"!! RANDOM-INIT {r['model']}: no weights available here; speed figures only, predictions meaningless"
        )
    lines += [
        f"head: {r['head']}",
        f"texts: {r['messages']} distinct from {r['data']} ({r['mean_tokens']} tokens on average)",
    ]
    if r["routed"]:
        lines.append(f"language gate: English to {r['english_path']}, every other language to "
                     f"{r['multilingual_path']} (naive and worker alike)")
    lines += [f"note: {n}" for n in r.get("notes", []) if not (r["random_init"] and "RANDOM-INIT" in n)]
    lines.append("")

    def row(name: str, ours: str, naive: str = "") -> str:
        return f"{name:<{width}} {ours:>16} {naive:>16}"

    lines += [
        row("", "ours (worker)", "naive"),
        row("throughput, msgs/s", f"{r['worker_msgs_per_s']:.1f}", f"{r['naive_msgs_per_s']:.1f}"),
        row("speedup", f"{r['speedup']:.2f}x", "1.00x"),
        row(f"latency p50 in a {r['messages']}-burst, ms", f"{r['p50_ms']:.1f}", f"{r['naive_p50_ms']:.1f}"),
        row(f"latency p99 in a {r['messages']}-burst, ms", f"{r['p99_ms']:.1f}", f"{r['naive_p99_ms']:.1f}"),
        row("one message alone p50, ms", "", f"{r['naive_call_p50_ms']:.2f}"),
        row("torch threads (naive: its faster)", str(r["torch_threads"]), str(r["naive_threads"])),
        row("achieved model GFLOP/s", f"{r['gflops']:.2f}", f"{r['naive_gflops']:.2f}"),
        row("model batches", str(r["worker_batches"]), str(r["messages"])),
        row("sentiment label agreement vs naive", f"{r['label_agreement']:.4f}", ""),
        *_score_rows(r, "", "vs naive", row),
        row("event-loop lag max / p99, ms", f"{r['loop_lag_max_ms']:.1f} / {r['loop_lag_p99_ms']:.1f}", "(blocks)"),
    ]
    if r["routed"]:
        lines.append(row("language gate per message, mean / p99 ms",
                         f"{r['gate_ms_per_msg']:.2f} / {r['gate_p99_ms']:.2f}", "(the same)"))
    if len(r["paths"]) > 1:
        lines += ["", row("per path: share of texts", "ours (worker)", "naive"), *_path_rows(r, row)]
    if "compare" in r:
        lines += ["", *_compare_rows(r, row)]
    lines += [
        "",
        row("", f"ours, {r['mode']}", "ours, fp32"),
        row("throughput, msgs/s", f"{r['worker_msgs_per_s']:.1f}", f"{r['fp32_msgs_per_s']:.1f}"),
        row(f"{r['mode']} vs fp32", f"{r['fast_vs_fp32']:.2f}x", "1.00x"),
        row(f"latency p50 / p99 in a {r['messages']}-burst, ms", f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}",
            f"{r['fp32_p50_ms']:.1f} / {r['fp32_p99_ms']:.1f}"),
        row("achieved model GFLOP/s", f"{r['gflops']:.1f}", f"{r['fp32_gflops']:.1f}"),
        row("matrix-product peak GFLOP/s", f"{r['peak_gflops']:.1f}", f"{r['fp32_peak_gflops']:.1f}"),
        row("model path / peak", f"{r['model_vs_peak']:.0%}", f"{r['fp32_gflops'] / r['fp32_peak_gflops']:.0%}"),
    ]
    if "products_gflops" in r:
        lines += [
            row("its Linear products alone, GFLOP/s", f"{r['products_gflops']:.1f}", ""),
            row("model path / its products alone", f"{r['model_vs_products']:.0%}", ""),
        ]
    lines += [
        row("max |score diff|, label agreement", f"{r['fast_vs_fp32_max_prob_diff']:.2e}",
            f"{r['fast_vs_fp32_label_agreement']:.4f}"),
    ]
    if "int8_worker_msgs_per_s" in r:
        lines += [
            "",
            row("int8 worker throughput, msgs/s", f"{r['int8_worker_msgs_per_s']:.1f}", f"{r['int8_speedup']:.2f}x"),
            row("int8 latency p50 / p99, ms", f"{r['int8_p50_ms']:.1f} / {r['int8_p99_ms']:.1f}", ""),
            row(
                "int8 vs naive: max |score diff|, label agreement",
                f"{r['int8_max_prob_diff']:.3f}",
                f"{r['int8_label_agreement']:.4f}",
            ),
        ]
    if "serve_msgs_per_s" in r:
        lines += [
            "",
            f"serve: {r['serve_encoder']}",
            row("", "serve (worker)", "in-process"),
            row("throughput, msgs/s", f"{r['serve_msgs_per_s']:.1f}", f"{r['worker_msgs_per_s']:.1f}"),
            row(f"latency p50 in a {r['messages']}-burst, ms", f"{r['serve_p50_ms']:.1f}", f"{r['p50_ms']:.1f}"),
            row(f"latency p99 in a {r['messages']}-burst, ms", f"{r['serve_p99_ms']:.1f}", f"{r['p99_ms']:.1f}"),
            row("worker batches / HTTP requests", f"{r['serve_batches']} / {r['serve_requests']}", ""),
            row("max |score diff|, label agreement", f"{r['serve_max_prob_diff']:.2e}",
                f"{r['serve_label_agreement']:.4f}"),
        ]
    lines += [
        "",
        row(
            "cache hits, memory tier: msgs/s",
            f"{r['cached_msgs_per_s']:.0f}",
            f"{r['cached_speedup_vs_model']:.0f}x model",
        ),
        row("cache hits, memory tier: p50/p99 ms", f"{r['cached_p50_ms']:.3f} / {r['cached_p99_ms']:.3f}", ""),
        row("cache hits, disk tier: msgs/s", f"{r['disk_cached_msgs_per_s']:.0f}", ""),
        row("cache hits, disk tier: p50/p99 ms", f"{r['disk_cached_p50_ms']:.3f} / {r['disk_cached_p99_ms']:.3f}", ""),
        row("event-loop lag max (cache bursts), ms", f"{r['cached_loop_lag_max_ms']:.2f}", ""),
        "",
        f"startup {r['startup_s']:.2f} s (process start to model ready), peak RSS {r['rss_mb']:.0f} MB "
        f"({r['bench_rss_mb']:.0f} MB with the bench's fp32 and int8 copies)",
    ]
    return "\n".join(lines)


def _score_rows(r: dict[str, Any], prefix: str, against: str, row: Any) -> list[str]:
    """Each head's largest score difference (one row when there is only the sentiment head)."""
    by_head = r[f"{prefix}max_score_diff_by_head"]
    if len(by_head) <= 1:
        return [row(f"max |score diff| {against}", f"{r[f'{prefix}max_prob_diff']:.2e}", "")]
    return [row(f"max |{head} score diff| {against}", f"{value:.2e}", "") for head, value in by_head.items()]


def _path_rows(r: dict[str, Any], row: Any) -> list[str]:
    """Each path's share of the burst and its own rates (both paths run at once in the worker burst)."""
    lines = []
    for name, path in r["paths"].items():
        lines.append(row(f"{name}: {path['texts']} texts ({_percent(path['share'])})", "", ""))
        if path["texts"]:
            lines += [
                row(f"  {name} throughput, msgs/s", _rate(path["worker_msgs_per_s"]), _rate(path["naive_msgs_per_s"])),
                row(f"  {name} latency p50 / p99, ms", f"{path['p50_ms']:.1f} / {path['p99_ms']:.1f}", ""),
                row(f"  {name} model batches", str(path["worker_batches"]), str(path["texts"])),
            ]
    return lines


def _compare_rows(r: dict[str, Any], row: Any) -> list[str]:
    """The first burst and the compare burst side by side, and the two targets."""
    c = r["compare"]
    lines = [
        f"compare burst: {c['messages']} distinct from {c['data']} ({c['mean_tokens']} tokens on average)",
        row("", "data burst", "compare burst"),
    ]
    for name in r["paths"]:
        lines.append(row(f"share of texts, {name}", _percent(r["paths"][name]["share"]),
                         _percent(c["paths"][name]["share"])))
    lines += [
        row("worker throughput, msgs/s", f"{r['worker_msgs_per_s']:.1f}", f"{c['worker_msgs_per_s']:.1f}"),
    ]
    for name in r["paths"]:
        lines.append(row(f"  {name} path, msgs/s", _rate(r["paths"][name].get("worker_msgs_per_s")),
                         _rate(c["paths"][name].get("worker_msgs_per_s"))))
    lines += [
        row("naive throughput, msgs/s", f"{r['naive_msgs_per_s']:.1f}", f"{c['naive_msgs_per_s']:.1f}"),
        row(f"worker / naive (aim >= {SPEEDUP_AIM:g})", f"{r['speedup']:.2f}x", f"{c['speedup']:.2f}x"),
        row("latency p50 / p99, ms", f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f}",
            f"{c['p50_ms']:.0f} / {c['p99_ms']:.0f}"),
        row("language gate per message, mean ms", f"{r['gate_ms_per_msg']:.2f}", f"{c['gate_ms_per_msg']:.2f}"),
        row("sentiment label agreement vs naive", f"{r['label_agreement']:.4f}", f"{c['label_agreement']:.4f}"),
        row("max |score diff| vs naive", f"{r['max_prob_diff']:.2e}", f"{c['max_prob_diff']:.2e}"),
        row("cache hits, memory tier: msgs/s", f"{r['cached_msgs_per_s']:.0f}", f"{c['cached_msgs_per_s']:.0f}"),
        row("cache hits, disk tier: msgs/s", f"{r['disk_cached_msgs_per_s']:.0f}",
            f"{c['disk_cached_msgs_per_s']:.0f}"),
        row(f"compare / data worker throughput (aim >= {COMPARE_AIM:g})", f"{r['compare_worker_ratio']:.3f}", ""),
    ]
    return lines
