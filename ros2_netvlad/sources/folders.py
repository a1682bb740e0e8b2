"""Image folders with poses: a CSV (``name,x,y,z,qx,qy,qz,qw`` or ``name,lat,lon[,alt]``) or UTM
coordinates in the file names (``...@utm_east@utm_north@...``, the public VPR dataset
convention)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ros2_netvlad.errors import InputError
from ros2_netvlad.geometry import Pose, geodetic_to_enu

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff"}
UTM_NAME = re.compile(r"@(-?\d+(?:\.\d+)?)@(-?\d+(?:\.\d+)?)@")


class DatasetError(InputError):
    """An image folder or pose file is unusable; the message names the file and line."""


@dataclass(frozen=True)
class PosedImage:
    path: Path
    pose: Pose
    geo: tuple[float, float, float] | None = None


def folder_images(
    folder: str | Path,
    poses_csv: str | Path | None = None,
    origin: tuple[float, float, float] | None = None,
) -> list[PosedImage]:
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
            raise DatasetError(
                f"{path.name}: no @utm_east@utm_north@ in the file name; give --poses CSV"
            )
        posed.append(PosedImage(path, Pose((float(match.group(1)), float(match.group(2)), 0.0))))
    return posed


def _from_csv(
    folder: Path, path: Path, origin: tuple[float, float, float] | None
) -> list[PosedImage]:
    if not path.is_file():
        raise DatasetError(f"pose file not found: {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0]) if rows else set()
    metric, geodetic = {"name", "x", "y", "z", "qx", "qy", "qz", "qw"}, {"name", "lat", "lon"}
    if not (metric <= columns or geodetic <= columns):
        raise DatasetError(
            f"{path}: header must be name,x,y,z,qx,qy,qz,qw or name,lat,lon[,alt]; "
            f"got {','.join(sorted(columns)) or 'nothing'}"
        )
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
        return PosedImage(
            image,
            Pose([float(row[k]) for k in "xyz"], [float(row[k]) for k in ("qx", "qy", "qz", "qw")]),
        )
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


@dataclass(frozen=True)
class MatDataset:
    """A Pittsburgh / Tokyo Time Machine ``dbStruct`` (.mat): image names and UTM positions."""

    db_images: list[str]
    db_utm: np.ndarray  # N×2 east, north
    query_images: list[str]
    query_utm: np.ndarray
    pos_dist_thr: float
    non_triv_pos_dist_sq_thr: float


def load_mat(path: str | Path) -> MatDataset:
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f".mat file not found: {path}")
    try:
        s = loadmat(str(path), struct_as_record=False, squeeze_me=True)["dbStruct"]
        db = _field(s, "dbImageFns", "dbImage")
        query = _field(s, "qImageFns", "qImage")
        return MatDataset(
            [str(n) for n in np.atleast_1d(db)],
            np.asarray(s.utmDb, float).reshape(2, -1).T,
            [str(n) for n in np.atleast_1d(query)],
            np.asarray(s.utmQ, float).reshape(2, -1).T,
            float(getattr(s, "posDistThr", 25.0)),
            float(getattr(s, "nonTrivPosDistSqThr", 100.0)),
        )
    except (KeyError, AttributeError, ValueError) as error:
        raise DatasetError(
            f"{path}: not a dbStruct .mat (dbImageFns/dbImage, utmDb, qImageFns/qImage, utmQ): "
            f"{error}"
        ) from None


def _field(struct, *names):
    for name in names:
        if hasattr(struct, name):
            return getattr(struct, name)
    raise AttributeError(f"none of the fields {', '.join(names)}")


def mat_images(
    dataset: MatDataset, image_root: str | Path, queries: bool = True
) -> list[PosedImage]:
    names, utm = (
        (dataset.query_images, dataset.query_utm)
        if queries
        else (dataset.db_images, dataset.db_utm)
    )
    root = Path(image_root)
    return [
        PosedImage(root / name, Pose((east, north, 0.0))) for name, (east, north) in zip(names, utm)
    ]
