"""Inference backends side by side (imported by extract.py, runnable alone): images/s at 640×480,
batch 1 and 8, for VGG16-NetVLAD-WPCA4096 and EfficientNet-Lite0-NetVLAD — torch fp32 (the
baseline), torch bf16, ONNX Runtime fp32, OpenVINO fp32 and OpenVINO int8 (NNCF, calibrated on
real-photo views) — as ratios to torch fp32 in the same run; then Recall@1 of int8 against fp32 on
the demo world and the real development set.

Run: `.venv/bin/python benchmarks/backends.py` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import gc
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ros2_netvlad.config import ArchConfig, DescriberConfig, KeyframeConfig
from ros2_netvlad.demo import world
from ros2_netvlad.demo.run import IMAGE_TOPIC, ODOM_TOPIC
from ros2_netvlad.errors import NetVLADError
from ros2_netvlad.evaluation.offline import evaluate
from ros2_netvlad.evaluation.realset import assemble
from ros2_netvlad.maps.building import BuildOptions, build_map
from ros2_netvlad.model.describer import Describer, native_bf16
from ros2_netvlad.model.export import export_model
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.model.weights import load
from ros2_netvlad.sources.rosbag import PoseLookup
from ros2_netvlad.sources.source import BagSource, FolderSource, frames_of, plan_keyframes

SIZE = (640, 480)


def frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """Real-photo views of the demo world at 640×480."""
    rng = np.random.default_rng(seed)
    places = world.places(20)
    return [world.render_view(places[i % 20], rng, SIZE) for i in range(count)]


def timed(function, repeats: int) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def speed(root: Path, repeats: int, batches: list[int]) -> None:
    print(f"\n## Speed at {SIZE[0]}x{SIZE[1]} ({torch.get_num_threads()} threads)\n")
    print("| model | batch | backend | ms/image | images/s | vs torch fp32 |")
    print("|---|---|---|---|---|---|")
    emulated = not native_bf16()
    for label, model in (
        ("VGG16-NetVLAD-WPCA4096", build_model(ArchConfig("vgg16", 64, 4096))),
        (
            "EfficientNet-Lite0-NetVLAD",
            build_model(ArchConfig("efficientnet_lite0", 64), pretrained=True),
        ),
    ):
        report = export_model(model, root / f"{label}.onnx", iter(frames(16, seed=1)), size=SIZE)
        onnx, int8 = str(report.onnx), str(report.int8)
        variants = [  # every precision asked for by name: auto would differ between CPUs
            ("torch fp32", dict(precision="fp32")),
            ("torch bf16" + (" (emulated)" if emulated else ""), dict(precision="bf16")),
            ("onnxruntime fp32", dict(backend="onnxruntime", backend_model=onnx)),
            ("openvino fp32", dict(backend="openvino", backend_model=onnx, precision="fp32")),
            ("openvino int8", dict(backend="openvino", backend_model=int8, precision="fp32")),
        ]
        if not emulated:  # OpenVINO's bf16 is offered only where it is native
            variants.append(
                ("openvino bf16", dict(backend="openvino", backend_model=onnx, precision="bf16"))
            )
        for batch in batches:
            x = np.stack(frames(batch, seed=2))
            baseline = None
            for name, overrides in variants:
                if "emulated" in name and batch > 1:
                    continue  # emulated bf16 is 7-28x slower: batch 1 says enough
                try:
                    config = DescriberConfig(
                        device="cpu", resize="none", batch_size=batch, **overrides
                    )
                    describer = Describer(model, config)
                except (NetVLADError, RuntimeError) as error:
                    print(f"| {label} | {batch} | {name} | failed: {error} | | |")
                    continue
                seconds = timed(lambda: describer.describe(x), repeats) / batch
                describer = None  # one runtime's buffers at a time (VGG16 at batch 8: gigabytes)
                gc.collect()
                baseline = baseline or seconds
                print(
                    f"| {label} | {batch} | {name} | {1000 * seconds:.1f} | {1 / seconds:.2f} | "
                    f"{baseline / seconds:.2f}x |",
                    flush=True,
                )


def int8_recall(root: Path) -> None:
    print("\n## Recall@1, OpenVINO int8 vs torch fp32 (EfficientNet-Lite0, NetVLAD on the map)\n")
    print("| data | torch fp32 R@1 | int8 R@1 | difference | int8 cosine to fp32 |")
    print("|---|---|---|---|---|")
    first, second = root / "world" / "traversal1", root / "world" / "traversal2"
    places = world.places(20)
    world.write_traversal(first, places, seed=1)
    world.write_traversal(second, places, seed=2, changed=True, start_ns=1_700_000_600_000_000_000)
    realset = assemble()
    sets = {
        "demo world": (
            BagSource(first, IMAGE_TOPIC, PoseLookup(ODOM_TOPIC)),
            lambda: [BagSource(second, IMAGE_TOPIC, PoseLookup(ODOM_TOPIC))],
            25.0,
            32,
        ),
        "real development set": (
            FolderSource(realset.map_folder, realset.map_poses),
            lambda: [FolderSource(realset.query_folder, realset.query_poses)],
            10.0,
            64,
        ),
    }
    for name, (source, queries, threshold, clusters) in sets.items():
        torch.manual_seed(0)
        model = build_model(ArchConfig("efficientnet_lite0", clusters), pretrained=True)
        options = BuildOptions(
            model=DescriberConfig(max_side=320),
            fit_clusters=True,
            store_images=True,
            progress=False,
        )
        map_dir = root / name.replace(" ", "_")
        build_map(map_dir, [source], model, options)
        trained = load(map_dir / "model.pt")
        describer = Describer(trained, DescriberConfig(max_side=320))
        calibration = (describer.resize(f.image) for f in queries_for_calibration(source))
        report = export_model(trained, map_dir.parent / f"{map_dir.name}.onnx", calibration)
        fp32 = evaluate(map_dir, queries(), root / f"eval_{name}_fp32", threshold, progress=False)
        int8_config = DescriberConfig(backend="openvino", backend_model=str(report.int8))
        int8 = evaluate(
            map_dir, queries(), root / f"eval_{name}_int8", threshold, int8_config, progress=False
        )
        print(
            f"| {name} | {fp32['recall@1']:.3f} | {int8['recall@1']:.3f} | "
            f"{int8['recall@1'] - fp32['recall@1']:+.3f} | {report.int8_cosine:.4f} |",
            flush=True,
        )


def queries_for_calibration(source):
    """The map's own images (what a robot has before it deploys)."""
    plan = plan_keyframes([source], KeyframeConfig(), Counter())
    return (frame for _, frame in frames_of([source], plan, Counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-recall", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="bench_backends_"))
    print(f"# Inference backends (torch {torch.__version__}, native bf16: {native_bf16()})")
    speed(root, args.repeats, args.batches)
    if not args.skip_recall:
        int8_recall(root)


if __name__ == "__main__":
    main()
