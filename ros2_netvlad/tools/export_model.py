"""export_model: a checkpoint (or a map's model.pt) → ONNX for ONNX Runtime, OpenVINO, TensorRT and
Isaac ROS, parity-checked against torch; --int8 adds an OpenVINO int8 model quantized by NNCF on
calibration images from a map (its stored images), an image folder or a bag."""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path

from ros2_netvlad.errors import InputError, edge
from ros2_netvlad.imaging import compressed_to_rgb
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.maps.opening import map_resize, map_weights
from ros2_netvlad.maps.storage import MANIFEST
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.export import export_model
from ros2_netvlad.model.weights import load
from ros2_netvlad.sources.images import bag_rgb, folder_rgb
from ros2_netvlad.tools.options import add_describer, model_config


@edge("export_model")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="export_model", description=__doc__)
    p.add_argument("--weights", type=Path, help="checkpoint to export")
    p.add_argument("--map", type=Path, help="or a map: its model.pt and its resize rule")
    p.add_argument("--out", required=True, type=Path, help="ONNX file to write (.onnx)")
    p.add_argument("--int8", action="store_true", help="also an OpenVINO int8 model (NNCF)")
    p.add_argument(
        "--calibration", type=Path, help="for --int8: a map (stored images), image folder or bag"
    )
    p.add_argument("--image-topic", help="image topic when --calibration is a bag")
    p.add_argument("--calibration-images", type=int, default=300, help="at most this many (300)")
    add_describer(p, backends=False)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if bool(args.weights) == bool(args.map):
        p.error("give --weights CHECKPOINT or --map MAP")
    if args.int8 and not args.calibration:
        p.error("--int8 needs --calibration (a map, an image folder or a bag)")
    model = load(map_weights(args.map, args.weights or ""))
    config = model_config(args)
    if args.map:  # the map's resize rule: the model was run at it
        config = map_resize(MapDatabase.load(args.map), config)
    describer = Describer(model, config)
    calibration = None
    if args.int8:
        images = calibration_images(args.calibration, args.image_topic)
        calibration = (describer.resize(i) for i in images)
    report = export_model(model, args.out, calibration, args.calibration_images)
    print(report.summary())
    return 0


def calibration_images(source: Path, image_topic: str | None):
    """Images from a map directory (its stored JPEGs), an image folder or a bag."""
    if not source.exists():
        raise InputError(f"--calibration {source}: not found")
    if (source / MANIFEST).is_file():
        database = MapDatabase.load(source)
        jpegs = (database.image(i) for i in range(len(database)))
        images = (compressed_to_rgb(j, "jpeg") for j in jpegs if j is not None)
        first = next(images, None)
        if first is None:
            raise InputError(
                f"--calibration {source}: the map stores no images (built without "
                "--store-images); give an image folder or a bag"
            )
        return itertools.chain([first], images)
    if (source / "metadata.yaml").is_file():
        if not image_topic:
            raise InputError("--calibration is a bag: give --image-topic")
        return bag_rgb([source], image_topic)
    return folder_rgb(source)


if __name__ == "__main__":
    sys.exit(main())
