"""Which number format the network computes in: what the user asked for, what the map was described
at, what the device can do natively, and — for ``auto`` on a CPU with native bf16 — a measurement
that is repeated and needs a clear margin, so one noisy timing cannot flip the choice between two
restarts of the same node."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ros2_netvlad.errors import DeviceError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
NAMES = {dtype: name for name, dtype in DTYPES.items()}
CPU = (torch.float32, torch.bfloat16)  # what auto chooses between on a CPU with native bf16
BF16_AGREEMENT = 0.999  # lowest cosine with fp32 over the calibration photos for auto to pick bf16
BF16_MARGIN = 1.3  # median speedup bf16 must reach over fp32 for auto to pick it
TIMING_REPEATS = 5  # interleaved timed runs of each precision (after two warm-ups each)
# "0" or "1" overrides the CPU's bf16 detection: tests force the capability both ways with it, and
# a user can keep precision auto at fp32 on a bf16 CPU (or say precision fp32).
NATIVE_BF16_ENV = "ROS2_NETVLAD_NATIVE_BF16"


def native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX512-BF16 or AMX); elsewhere bf16 is emulated and
    many times slower than fp32. ROS2_NETVLAD_NATIVE_BF16=0/1 overrides the detection."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


@dataclass(frozen=True)
class Precision:
    """A resolved precision and why it was chosen (shown in logs, diagnostics, reports)."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        return NAMES[self.dtype]

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def explicit(name: str, device: torch.device) -> Precision:
    """A precision asked for by name, refused where the device cannot run it."""
    if name == "fp16" and device.type != "cuda":
        raise DeviceError(
            f"model.precision fp16 needs a CUDA device, and the model runs on {device}; "
            f"use auto, fp32 or bf16 on the CPU"
        )
    return Precision(DTYPES[name], "as configured")


def from_map(recorded: str, device: torch.device) -> Precision:
    """``auto`` against a map: the precision its descriptors were computed at, so queries match
    them; the nearest one this device runs well where it cannot (said so)."""
    if recorded == "fp16" and device.type != "cuda":
        return Precision(torch.float32, "the map's fp16 needs CUDA: fp32 here")
    if recorded == "bf16" and device.type == "cpu" and not native_bf16():
        return Precision(torch.float32, "the map's bf16 is emulated on this CPU: fp32 here")
    return Precision(DTYPES[recorded], "the map's")


def default(device: torch.device) -> Precision:
    """``auto`` without a map, before any measurement: fp16 on CUDA, fp32 on a CPU."""
    if device.type == "cuda":
        return Precision(torch.float16, "auto on CUDA")
    return Precision(torch.float32, "auto: no native bf16 on this CPU")


def timed_speedup(run: Callable[[torch.dtype], object], repeats: int = TIMING_REPEATS) -> float:
    """Median fp32 time over median bf16 time, from interleaved runs after two warm-ups each
    (oneDNN selects and caches kernels during the first calls)."""
    for _ in range(2):
        run(torch.float32), run(torch.bfloat16)
    times: dict[torch.dtype, list[float]] = {dtype: [] for dtype in CPU}
    for _ in range(repeats):
        for dtype in times:
            start = time.perf_counter()
            run(dtype)
            times[dtype].append(time.perf_counter() - start)
    return statistics.median(times[torch.float32]) / statistics.median(times[torch.bfloat16])


def choose_cpu(cosine: float, speedup: Callable[[], float]) -> Precision:
    """``auto`` on a CPU with native bf16: bf16 only when its descriptors agree with fp32 (lowest
    cosine >= BF16_AGREEMENT) and it is clearly faster (median speedup >= BF16_MARGIN); the
    timing is skipped when the agreement already rules bf16 out."""
    if cosine < BF16_AGREEMENT:
        return Precision(torch.float32, f"fp32 by measurement (bf16 cosine {cosine:.4f})")
    measured = speedup()
    text = f"bf16 {measured:.2f}x fp32 (median of {TIMING_REPEATS}), cosine {cosine:.4f}"
    if measured >= BF16_MARGIN:
        return Precision(torch.bfloat16, f"bf16 by measurement ({text})")
    return Precision(torch.float32, f"fp32 by measurement ({text})")
