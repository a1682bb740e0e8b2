"""Descriptor extraction speed: images/s and ms/image at 640×480.

For every backbone: batch 1 and 8, fp32 vs bf16 on the CPU (fp16 on CUDA). Then, in the same run
with the same weights and input, Patch-NetVLAD's own model code (the peer) on
VGG16-NetVLAD-WPCA4096,
printed as the ratio ours/peer. Run: `make bench` or `.venv/bin/python benchmarks/extract.py`.
"""

from __future__ import annotations

import argparse
import configparser
import time

import numpy as np
import torch
import torchvision
from torch import nn

from ros2_netvlad.config import ArchConfig, DescriberConfig
from ros2_netvlad.model.backbones import BACKBONES
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.netvlad import build_model

HEIGHT, WIDTH = 480, 640


def timed(function, repeats: int) -> float:
    function()  # warm-up: kernel selection, allocations
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def images(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, HEIGHT, WIDTH, 3), dtype=np.uint8)


def native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels on this CPU (AVX512-BF16 / AMX); elsewhere bf16 is
    emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bench_backbones(device: str, repeats: int, batches: list[int]) -> None:
    reduced = "fp16" if device.startswith("cuda") else "bf16"
    slow_bf16 = reduced == "bf16" and not native_bf16()
    if slow_bf16:
        print(
            "note: this CPU has no native bf16 kernels; bf16 is emulated and timed at batch 1 only"
        )
    print(f"\n{'backbone':<20}{'batch':>6}{'precision':>10}{'ms/image':>10}{'images/s':>10}")
    for name in BACKBONES:
        whiten = 4096 if name == "vgg16" else 0
        model = build_model(ArchConfig(name, 64, whiten))
        for batch in batches:
            for precision in ("fp32", reduced):
                if precision == "bf16" and slow_bf16 and batch > 1:
                    continue
                config = DescriberConfig(
                    device=device, precision=precision, resize="none", batch_size=batch
                )
                describer = Describer(model, config)
                x = images(batch)
                seconds = timed(lambda: describer.describe(x), repeats)
                label = name + ("-WPCA4096" if whiten else "")
                print(
                    f"{label:<20}{batch:>6}{precision:>10}{1000 * seconds / batch:>10.1f}"
                    f"{batch / seconds:>10.2f}",
                    flush=True,
                )


def peer_model(ours: nn.Module) -> nn.Module:
    """Patch-NetVLAD's get_model with our weights copied in (vladv1 has no assignment bias, so the
    comparison zeroes ours)."""
    from patchnetvlad.models import models_generic as peer

    encoder = nn.Sequential(*list(torchvision.models.vgg16(weights=None).features.children())[:-2])
    config = configparser.ConfigParser()
    config["g"] = {"pooling": "netvlad", "num_clusters": "64", "vladv2": "False", "num_pcs": "4096"}
    model = peer.get_model(encoder, 512, config["g"], append_pca_layer=True)
    with torch.no_grad():
        ours.pool.conv.bias.zero_()
        model.encoder.load_state_dict(ours.backbone.state_dict())
        model.pool.centroids.copy_(ours.pool.centroids)
        model.pool.conv.weight.copy_(ours.pool.conv.weight)
        model.WPCA[0].weight.copy_(ours.whiten.linear.weight[:, :, None, None])
        model.WPCA[0].bias.copy_(ours.whiten.linear.bias)
    return model.eval()


def bench_peer(device: str, repeats: int, batches: list[int]) -> None:
    from patchnetvlad.models import models_generic as peer

    ours = build_model(ArchConfig("vgg16", 64, 4096))
    theirs = peer_model(ours).to(device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    print(f"\nVGG16-NetVLAD-WPCA4096 vs Patch-NetVLAD ({device}, same weights and input)")
    print(
        f"{'batch':>6}{'precision':>10}{'ours ms/img':>13}{'peer ms/img':>13}"
        f"{'ours/peer speed':>17}{'max |diff|':>12}"
    )
    for batch in batches:
        x = images(batch)

        def run_peer() -> (
            torch.Tensor
        ):  # the peer's own extraction path: ToTensor + Normalize, no_grad
            t = (torch.from_numpy(x).to(device).permute(0, 3, 1, 2).float() / 255 - mean) / std
            with torch.no_grad():
                return peer.get_pca_encoding(theirs, theirs.pool(theirs.encoder(t)))

        peer_seconds = timed(run_peer, repeats)
        want = run_peer().cpu().numpy()
        for precision in ("fp32",) + (("fp16",) if device.startswith("cuda") else ()):
            describer = Describer(
                ours,
                DescriberConfig(
                    device=device, precision=precision, resize="none", batch_size=batch
                ),
            )
            seconds = timed(lambda: describer.describe(x), repeats)
            diff = np.abs(describer.describe(x) - want).max()
            print(
                f"{batch:>6}{precision:>10}{1000 * seconds / batch:>13.1f}"
                f"{1000 * peer_seconds / batch:>13.1f}"
                f"{peer_seconds / seconds:>16.2f}x{diff:>12.1e}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-backbones", action="store_true", help="only the peer comparison")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}, "
        f"input {WIDTH}x{HEIGHT}"
    )
    if not args.skip_backbones:
        bench_backbones(args.device, args.repeats, args.batches)
    bench_peer(args.device, args.repeats, args.batches)


if __name__ == "__main__":
    main()
