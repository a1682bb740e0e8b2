"""import_weights: convert a public NetVLAD weight file into a ros2_netvlad checkpoint."""

from __future__ import annotations

import argparse
import sys

from ros2_netvlad.errors import edge
from ros2_netvlad.model.checkpoints import fingerprint, save
from ros2_netvlad.model.weights import load


@edge("import_weights")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="import_weights",
        description="Convert pytorch-NetVlad / Patch-NetVLAD (.pth.tar) or MATLAB struct (.mat) "
        "NetVLAD weights into a ros2_netvlad checkpoint (config + preprocessing + weights).",
    )
    parser.add_argument("source", help="weight file in any supported format")
    parser.add_argument("out", help="checkpoint to write (.pt)")
    parser.add_argument(
        "--output-dim",
        type=int,
        default=0,
        help="keep only the first N whitened dims (needs a whitening layer)",
    )
    parser.add_argument(
        "--trust-weights",
        action="store_true",
        help="allow full unpickling of old checkpoints (only for files you trust)",
    )
    args = parser.parse_args(argv)
    model = load(args.source, trusted=args.trust_weights)
    if args.output_dim:
        model.truncate(args.output_dim)
    path = save(model, args.out, source=str(args.source))
    arch = model.arch
    print(
        f"wrote {path}: {arch.backbone}, K={arch.num_clusters}, D={model.feature_dim}, "
        f"whitening={arch.whiten_dim or 'none'}, descriptor={model.output_dim}-D, "
        f"preprocessing={model.preprocessing}, fingerprint={fingerprint(model)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
