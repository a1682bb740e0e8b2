"""Images without poses, for work that needs none (fitting PCA whitening, calibration): every image
of a folder, or every decodable image on a topic of some bags, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ros2_netvlad.imaging import ImageDecodeError, message_to_rgb
from ros2_netvlad.sources.folders import IMAGE_SUFFIXES, DatasetError, read_rgb
from ros2_netvlad.sources.rosbag import image_messages


def folder_rgb(folder: str | Path) -> Iterator[np.ndarray]:
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DatasetError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return (read_rgb(p) for p in paths)


def bag_rgb(bags: Sequence[str | Path], image_topic: str) -> Iterator[np.ndarray]:
    """Decodable images on ``image_topic`` (undecodable ones are skipped)."""
    for bag in bags:
        for _, _, msg in image_messages(bag, image_topic):
            try:
                yield message_to_rgb(msg)
            except ImageDecodeError:
                continue
