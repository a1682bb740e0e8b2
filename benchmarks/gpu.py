"""The GPU check, as one prepared script for a machine with an NVIDIA GPU (CUDA torch; TensorRT
when installed): EfficientNet-Lite0-NetVLAD and VGG16-NetVLAD-WPCA4096 at 640×480 — torch fp32,
torch fp16 and TensorRT fp16 (engine built from the exported ONNX, cached) — batched throughput
(images/s at batch 32) and single-frame latency (ms, batch 1, median of 50), with the descriptor
cosine of each against torch fp32. Prints a markdown table; exits 1 without CUDA.

Run: `.venv/bin/python benchmarks/gpu.py [--out DIR]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ros2_netvlad.config import ArchConfig, DescriberConfig
from ros2_netvlad.errors import NetVLADError
from ros2_netvlad.model.backends import export_onnx
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.netvlad import build_model

SIZE = (640, 480)


def measure(describer: Describer, batch: np.ndarray, repeats: int) -> float:
    describer.describe(batch)  # warm-up (kernel selection, engine load)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        describer.describe(batch)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="gpu_bench_")))
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure")
        return 1
    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}\n")
    print(
        "| model | backend | images/s (batch %d) | latency ms (batch 1) | cosine to fp32 |"
        % args.batch
    )
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.batch, SIZE[1], SIZE[0], 3), dtype=np.uint8)
    for label, arch in (
        ("EfficientNet-Lite0-NetVLAD", ArchConfig("efficientnet_lite0", 64)),
        ("VGG16-NetVLAD-WPCA4096", ArchConfig("vgg16", 64, 4096)),
    ):
        model = build_model(arch)
        onnx = export_onnx(model, args.out / f"{arch.backbone}.onnx", SIZE[1], SIZE[0])
        base = dict(device="cuda", resize="none", batch_size=args.batch)
        reference = None
        for name, overrides in (
            ("torch fp32", dict(precision="fp32")),
            ("torch fp16", dict(precision="fp16")),
            ("tensorrt fp16", dict(backend="tensorrt", backend_model=str(onnx))),
        ):
            try:
                describer = Describer(model, DescriberConfig(**base, **overrides))
            except NetVLADError as error:
                print(f"| {label} | {name} | unavailable: {error} | | |")
                continue
            out = describer.describe(frames)
            reference = out if reference is None else reference
            cosine = float(np.min(np.sum(out * reference, axis=1)))
            throughput = args.batch / measure(describer, frames, 10)
            latency = 1000 * measure(describer, frames[:1], 50)
            print(
                f"| {label} | {name} | {throughput:.0f} | {latency:.2f} | {cosine:.4f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
