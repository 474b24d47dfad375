"""Probes of the process and its surroundings: event-loop lag, peak memory, start-up time, the device, the hub,
and the two ceilings the model path is measured against: the hardware's (large square matrix products) and the
model's own (its Linear layers alone, at the shapes the burst gives them)."""

from __future__ import annotations

import asyncio
import platform
import resource
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import psutil
import torch

if TYPE_CHECKING:
    from classifier.encoders.hf import Encoder

TICK_S = 0.001
PEAK_SIZE = 2048  # square matrices: large enough that a product runs at the kernel's full speed
#: The dtype of the matrix products in each numeric mode (int8 runs fp32 activations between its int8 products).
MODE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}


class LoopLagProbe:
    """A ticker task: how late the event loop runs a 1 ms sleep (anything heavy on the loop shows)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_S)
            self.lags.append(max(0.0, loop.time() - before - TICK_S))

    def __enter__(self) -> LoopLagProbe:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()

    @property
    def max_ms(self) -> float:
        return max(self.lags, default=0.0) * 1000.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def seconds_since_process_start() -> float:
    return time.time() - psutil.Process().create_time()


def device_name(device: torch.device) -> str:
    """``cuda (<GPU name>)`` or ``cpu (<CPU model>, <n> cores)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu ({cpu}, {psutil.cpu_count(logical=True)} cores)"


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's endpoint (as ``huggingface_hub`` resolves it) opens within ``timeout``."""
    from huggingface_hub.constants import ENDPOINT

    endpoint = urlparse(ENDPOINT)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def matmul_peak_gflops(encoder: Encoder, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """GFLOP/s of square ``dtype`` matrix products laid out as the encoder runs its model: one single-threaded
    product per CPU lane at once (or one product on its device with its threads), for about ``seconds``."""
    a = torch.randn(PEAK_SIZE, PEAK_SIZE).to(dtype=dtype, device=encoder.device)
    b = torch.randn(PEAK_SIZE, PEAK_SIZE).to(dtype=dtype, device=encoder.device)
    return _gflops_on_lanes(encoder, lambda: torch.mm(a, b), 2 * PEAK_SIZE**3, seconds)


def products_gflops(encoder: Encoder, token_counts: Sequence[int], seconds: float = 1.0) -> float | None:
    """GFLOP/s of the model's own Linear layers alone, each on the rows (tokens, padding included) of every
    micro-batch the encoder cuts for texts of these lengths, laid out as :func:`matmul_peak_gflops`; ``None``
    where the layers are not plain or bf16-packed Linear layers (int8).

    A transformer's products are short (a micro-batch holds a few hundred tokens), so they run below the
    square-product peak on their own; this is the ceiling of the model path at its own shapes, and what it
    loses against it is the work between the products (attention, layer norms, conversions, Python).
    """
    from classifier.encoders.cpu_bf16 import PackedLinear
    from classifier.encoders.hf import layer_stack

    stack = layer_stack(encoder.model)
    layers = [m for m in (stack or encoder.model).modules() if isinstance(m, torch.nn.Linear | PackedLinear)]
    if not layers:
        return None
    rows = [len(batch) * max(token_counts[i] for i in batch) for batch in encoder.micro_batches(token_counts)]

    def dtype(layer: torch.nn.Module) -> torch.dtype:
        return torch.bfloat16 if isinstance(layer, PackedLinear) else layer.weight.dtype

    inputs = {
        (n, width, kind): torch.randn(n, width, device=encoder.device, dtype=kind)
        for n in set(rows) for width, kind in {(layer.in_features, dtype(layer)) for layer in layers}
    }

    def one_pass() -> None:
        for n in rows:
            for layer in layers:
                layer(inputs[n, layer.in_features, dtype(layer)])

    flops = sum(2 * n * layer.in_features * layer.out_features for n in rows for layer in layers)
    return _gflops_on_lanes(encoder, one_pass, flops, seconds)


def _gflops_on_lanes(encoder: Encoder, work: Callable[[], object], flops: float, seconds: float) -> float:
    """GFLOP/s of ``work`` (``flops`` each time) repeated for about ``seconds`` after one untimed run (kernel
    selection, packing buffers): at once on every CPU lane of the encoder, or on its device."""
    from classifier.encoders.hf import available_cpus

    def repeat() -> tuple[int, float]:
        with torch.inference_mode():
            def once() -> None:
                work()
                if encoder.device.type == "cuda":
                    torch.cuda.synchronize(encoder.device)

            once()
            count, started = 0, time.perf_counter()
            while count == 0 or time.perf_counter() - started < seconds:
                once()
                count += 1
            return count, time.perf_counter() - started

    lanes = encoder.cpu_lanes()
    if lanes is None:
        count, elapsed = repeat()
        return count * flops / elapsed / 1e9
    runs = [future.result() for future in [lanes.submit(repeat) for _ in range(available_cpus())]]
    return sum(count for count, _ in runs) * flops / max(elapsed for _, elapsed in runs) / 1e9
