"""Image folders with poses: a CSV (``name,x,y,z,qx,qy,qz,qw`` or ``name,lat,lon[,alt]``) or UTM
coordinates in the file names (``...@utm_east@utm_north@...``, the public VPR dataset convention)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .geometry import Pose, geodetic_to_enu

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff"}
UTM_NAME = re.compile(r"@(-?\d+(?:\.\d+)?)@(-?\d+(?:\.\d+)?)@")


class DatasetError(ValueError):
    """An image folder or pose file is unusable; the message names the file and line."""


@dataclass(frozen=True)
class PosedImage:
    path: Path
    pose: Pose
    geo: tuple[float, float, float] | None = None


def folder_images(folder: str | Path, poses_csv: str | Path | None = None,
                  origin: tuple[float, float, float] | None = None) -> list[PosedImage]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder not found: {folder}")
    if poses_csv:
        return _from_csv(folder, Path(poses_csv), origin)
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    posed = []
    for path in images:
        match = UTM_NAME.search(path.name)
        if not match:
            raise DatasetError(f"{path.name}: no @utm_east@utm_north@ in the file name; give --poses CSV")
        posed.append(PosedImage(path, Pose((float(match.group(1)), float(match.group(2)), 0.0))))
    return posed


def _from_csv(folder: Path, path: Path, origin: tuple[float, float, float] | None) -> list[PosedImage]:
    if not path.is_file():
        raise DatasetError(f"pose file not found: {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0]) if rows else set()
    metric, geodetic = {"name", "x", "y", "z", "qx", "qy", "qz", "qw"}, {"name", "lat", "lon"}
    if not (metric <= columns or geodetic <= columns):
        raise DatasetError(f"{path}: header must be name,x,y,z,qx,qy,qz,qw or name,lat,lon[,alt]; "
                           f"got {','.join(sorted(columns)) or 'nothing'}")
    posed = []
    for line, row in enumerate(rows, start=2):
        image = folder / row["name"]
        if not image.is_file():
            raise DatasetError(f"{path}:{line}: image {row['name']} not found in {folder}")
        try:
            posed.append(_posed_row(image, row, metric <= columns))
        except (ValueError, TypeError) as error:
            raise DatasetError(f"{path}:{line}: {error}") from None
    if posed and posed[0].geo is not None:
        posed = _to_enu(posed, origin)
    return posed


def _posed_row(image: Path, row: dict, metric: bool) -> PosedImage:
    if metric:
        return PosedImage(image, Pose([float(row[k]) for k in "xyz"], [float(row[k]) for k in ("qx", "qy", "qz", "qw")]))
    geo = (float(row["lat"]), float(row["lon"]), float(row.get("alt") or 0.0))
    return PosedImage(image, Pose(), geo)


def _to_enu(posed: list[PosedImage], origin: tuple[float, float, float] | None) -> list[PosedImage]:
    lla = np.array([p.geo for p in posed])
    enu = geodetic_to_enu(lla[:, 0], lla[:, 1], lla[:, 2], origin or tuple(lla[0]))
    return [PosedImage(p.path, Pose(xyz), p.geo) for p, xyz in zip(posed, enu)]


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def iterate(posed: list[PosedImage]) -> Iterator[tuple[PosedImage, np.ndarray]]:
    for item in posed:
        yield item, read_rgb(item.path)
