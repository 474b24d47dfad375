"""The bench's output: a header describing the run, and the human-readable table of ours next to naive."""

from __future__ import annotations

from typing import Any

import torch

from classifier.bench.probes import device_name
from classifier.bench.subject import BenchSubject


def header(subject: BenchSubject, model_name: str, messages: int, data: str) -> dict[str, Any]:
    """What was benched, where: the first keys of the JSON result."""
    encoder = subject.encoder
    result: dict[str, Any] = {
        "model": model_name,
        "encoder": encoder.describe(),
        "mode": encoder.mode,
        "random_init": subject.random_init,
        "head": subject.head_note,
        "device": device_name(encoder.device),
        "torch_threads": torch.get_num_threads(),
        "messages": messages,
        "data": data,
    }
    if subject.notes:
        result["notes"] = subject.notes
    return result


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
        row("max |p diff| vs naive", f"{r['max_prob_diff']:.2e}", ""),
        row("event-loop lag max / p99, ms", f"{r['loop_lag_max_ms']:.1f} / {r['loop_lag_p99_ms']:.1f}", "(blocks)"),
    ]
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
        row("max |p diff|, label agreement", f"{r['fast_vs_fp32_max_prob_diff']:.2e}",
            f"{r['fast_vs_fp32_label_agreement']:.4f}"),
    ]
    if "int8_worker_msgs_per_s" in r:
        lines += [
            "",
            row("int8 worker throughput, msgs/s", f"{r['int8_worker_msgs_per_s']:.1f}", f"{r['int8_speedup']:.2f}x"),
            row("int8 latency p50 / p99, ms", f"{r['int8_p50_ms']:.1f} / {r['int8_p99_ms']:.1f}", ""),
            row(
                "int8 max |p diff|, label agreement",
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
            row("max |p diff|, label agreement", f"{r['serve_max_prob_diff']:.2e}",
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
