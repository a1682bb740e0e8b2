"""fit_pca: fit PCA whitening on NetVLAD descriptors of up to N images and write it into a
checkpoint."""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path

from ros2_netvlad.errors import edge
from ros2_netvlad.model.checkpoints import save
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.weights import load
from ros2_netvlad.model.whitening import apply_whitening, fit_pca_whitening, pooled_descriptors
from ros2_netvlad.sources.images import bag_rgb, folder_rgb
from ros2_netvlad.tools.options import add_describer, model_config


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
    add_describer(p, map_default=False, backends=False)
    args = p.parse_args(argv)
    if bool(args.images) == bool(args.bag) or (args.bag and not args.image_topic):
        p.error("give --images DIR, or --bag with --image-topic")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    model = load(args.weights)
    describer = Describer(model, model_config(args))
    images = folder_rgb(args.images) if args.images else bag_rgb(args.bag, args.image_topic)
    images = itertools.islice(images, args.max_images)
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
