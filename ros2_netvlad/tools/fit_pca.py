"""fit_pca: fit PCA whitening on NetVLAD descriptors of up to N images and write it into a
checkpoint."""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path

from ..bags import image_messages
from ..config import ModelConfig
from ..datasets import IMAGE_SUFFIXES, DatasetError, read_rgb
from ..describe import Describer
from ..errors import edge
from ..imaging import ImageDecodeError, message_to_rgb
from ..weights import load, save
from ..whitening import apply_whitening, fit_pca_whitening, pooled_descriptors


def images_from(args: argparse.Namespace):
    if args.images:
        paths = sorted(
            p for p in Path(args.images).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not paths:
            raise DatasetError(f"{args.images}: no images")
        return (read_rgb(p) for p in paths)

    def decoded():
        for bag in args.bag:
            for _, _, msg in image_messages(bag, args.image_topic):
                try:
                    yield message_to_rgb(msg)
                except ImageDecodeError:
                    continue

    return decoded()


@edge("fit_pca")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fit_pca", description=__doc__)
    p.add_argument("--weights", required=True, help="checkpoint (its NetVLAD layer is whitened)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write")
    p.add_argument("--images", type=Path, help="image folder")
    p.add_argument("--bag", action="append", default=[], help="rosbag2 (repeatable)")
    p.add_argument("--image-topic")
    p.add_argument("--dim", type=int, default=4096, help="whitened dims (4096)")
    p.add_argument("--output-dim", type=int, default=0, help="keep the first N of them (0 = all)")
    p.add_argument("--max-images", type=int, default=10_000)
    p.add_argument("--device", default="auto")
    p.add_argument("--max-side", type=int, default=640)
    args = p.parse_args(argv)
    if bool(args.images) == bool(args.bag) or (args.bag and not args.image_topic):
        p.error("give --images DIR, or --bag with --image-topic")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    model = load(args.weights)
    describer = Describer(model, ModelConfig(device=args.device, max_side=args.max_side))
    images = itertools.islice(images_from(args), args.max_images)
    pooled = pooled_descriptors(model, describer, images)
    weight, bias = fit_pca_whitening(pooled, args.dim)
    apply_whitening(model, weight, bias, args.output_dim)
    save(model, args.out, source=str(args.weights), pca_images=len(pooled))
    print(
        f"wrote {args.out}: whitening {model.pool.output_dim}-D → {args.dim}-D fitted on "
        f"{len(pooled)} images, "
        f"descriptor {model.output_dim}-D"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
