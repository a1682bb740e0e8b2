"""A real-image development set assembled from photographs that registry packages ship.

Each *place* is a pair of real photographs of the same scene taken under a change (viewpoint,
illumination, day/dusk, stereo baseline): the first goes into the map, the second is the query
(whole, and as three partial crops, i.e. four queries per place). Unrelated real photographs
are added to the map as distractors, and held-out ones are queries that have **no** true match,
so any loop closure accepted for them is a false one. Positions are synthetic (place i at
x = 100·i m) so the folder tools (``build_map --images``, ``evaluate --images``) read the set
through their usual ``poses.csv``.

Sources (documented in README):
- PyPI ``patchnetvlad`` 0.1.8: ``example_images/tokyo_db.png`` / ``tokyo_query.jpg`` (Tokyo 24/7,
  day vs. dusk, other camera);
- PyPI ``scikit-image`` 0.26: ``motorcycle_left/right`` (Middlebury stereo) and distractors;
- Debian ``opencv-doc`` (``/usr/share/doc/opencv-doc/examples/data``): graf1/graf3 (viewpoint),
  leuvenA/leuvenB (illumination), aero1/aero3 (aerial viewpoint), aloeL/aloeR, basketball1/2,
  rubberwhale1/2 (indoor), box/box_in_scene (object in clutter) and distractors (street scenes
  with text, buildings, interiors);
- Debian ``octave-vlfeat`` (``/usr/share/octave/site/m/vlfeat/data``): river1/river2,
  roofs1/roofs2 (viewpoint).
Debian packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb`` into a
cache folder; nothing is installed.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ros2_netvlad.errors import InputError

log = logging.getLogger(__name__)

OPENCV = ("deb", "opencv-doc", "usr/share/doc/opencv-doc/examples/data")
OPENCV_TEXT = ("deb", "opencv-doc", "usr/share/doc/opencv-doc/examples/text")
OPENCV_HFS = ("deb", "opencv-doc", "usr/share/doc/opencv-doc/examples/hfs/data")
VLFEAT = ("deb", "octave-vlfeat", "usr/share/octave/site/m/vlfeat/data")
PATCHNETVLAD = ("pip", "patchnetvlad", "example_images")
SKIMAGE = ("pip", "skimage", "data")

# (place, condition, source, map image, query image)
PAIRS = (
    ("tokyo", "day vs dusk, other camera", PATCHNETVLAD, "tokyo_db.png", "tokyo_query.jpg"),
    ("graffiti", "viewpoint 40 deg", OPENCV, "graf1.png", "graf3.png"),
    ("leuven", "illumination", OPENCV, "leuvenA.jpg", "leuvenB.jpg"),
    ("aerial", "aerial viewpoint", OPENCV, "aero1.jpg", "aero3.jpg"),
    ("aloe", "stereo baseline", OPENCV, "aloeL.jpg", "aloeR.jpg"),
    ("basketball", "indoor, motion", OPENCV, "basketball1.png", "basketball2.png"),
    ("rubberwhale", "indoor, motion", OPENCV, "rubberwhale1.png", "rubberwhale2.png"),
    ("box", "object in clutter", OPENCV, "box.png", "box_in_scene.png"),
    ("river", "viewpoint", VLFEAT, "river1.jpg", "river2.jpg"),
    ("roofs", "viewpoint", VLFEAT, "roofs1.jpg", "roofs2.jpg"),
    ("motorcycle", "stereo baseline", SKIMAGE, "motorcycle_left.png", "motorcycle_right.png"),
)
MAP_DISTRACTORS = (
    (OPENCV_TEXT, "scenetext01.jpg"),
    (OPENCV_TEXT, "scenetext02.jpg"),
    (OPENCV_TEXT, "scenetext03.jpg"),
    (OPENCV, "building.jpg"),
    (OPENCV, "home.jpg"),
    (OPENCV, "fruits.jpg"),
    (OPENCV, "board.jpg"),
    (OPENCV, "stuff.jpg"),
    (SKIMAGE, "astronaut.png"),
    (SKIMAGE, "coffee.png"),
    (SKIMAGE, "rocket.jpg"),
    (SKIMAGE, "chelsea.png"),
    (SKIMAGE, "retina.jpg"),
    (SKIMAGE, "hubble_deep_field.jpg"),
    (SKIMAGE, "coins.png"),
    (SKIMAGE, "moon.png"),
    (OPENCV, "apple.jpg"),
    (OPENCV, "butterfly.jpg"),
    (OPENCV, "messi5.jpg"),
    (OPENCV, "orange.jpg"),
    (OPENCV, "squirrel_cls.jpg"),
    (OPENCV, "starry_night.jpg"),
    (OPENCV, "licenseplate_motion.jpg"),
    (OPENCV, "text_defocus.jpg"),
    (OPENCV, "ela_original.jpg"),
    (OPENCV, "pca_test1.jpg"),
    (OPENCV, "left01.jpg"),
    (OPENCV, "HappyFish.jpg"),
    (OPENCV, "chicky_512.png"),
    (OPENCV_HFS, "000.jpg"),
    (OPENCV_HFS, "001.jpg"),
    (OPENCV_HFS, "002.jpg"),
)
NO_MATCH_QUERIES = (
    (OPENCV_TEXT, "scenetext04.jpg"),
    (OPENCV_TEXT, "scenetext05.jpg"),
    (OPENCV_TEXT, "scenetext06.jpg"),
    (OPENCV, "baboon.jpg"),
    (OPENCV, "smarties.png"),
    (SKIMAGE, "brick.png"),
    (SKIMAGE, "camera.png"),
)
MAX_SIDE = 640
PLACE_SPACING = 100.0


@dataclass(frozen=True)
class RealSet:
    map_folder: Path
    query_folder: Path

    @property
    def map_poses(self) -> Path:
        return self.map_folder / "poses.csv"

    @property
    def query_poses(self) -> Path:
        return self.query_folder / "poses.csv"


def default_location() -> Path:
    """Where tests and benchmarks keep the assembled set: $XDG_CACHE_HOME (or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ros2_netvlad" / "realset"


def assemble(out: str | Path | None = None, cache: str | Path | None = None) -> RealSet:
    """Writes ``out/map`` and ``out/queries`` (PNG + poses.csv); reuses a complete earlier one."""
    out = Path(out) if out else default_location()
    realset = RealSet(out / "map", out / "queries")
    if realset.map_poses.is_file() and realset.query_poses.is_file():
        return realset
    files = SourceFiles(Path(cache) if cache else out / "packages")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    map_rows, query_rows = [], []
    for index, (place, _, source, map_name, query_name) in enumerate(PAIRS):
        position = (index * PLACE_SPACING, 0.0, 0.0)
        map_rows.append(_write(tmp / "map", f"{place}.png", files.read(source, map_name), position))
        for crop, image in _query_views(files.read(source, query_name)).items():
            query_rows.append(_write(tmp / "queries", f"{place}_{crop}.png", image, position))
    for index, (source, name) in enumerate(MAP_DISTRACTORS, start=len(PAIRS)):
        position = (index * PLACE_SPACING, 0.0, 0.0)
        map_rows.append(
            _write(tmp / "map", f"other_{Path(name).stem}.png", files.read(source, name), position)
        )
    for index, (source, name) in enumerate(NO_MATCH_QUERIES, start=10 * len(PAIRS)):
        position = (index * PLACE_SPACING, 0.0, 0.0)
        query_rows.append(
            _write(
                tmp / "queries",
                f"nomatch_{Path(name).stem}.png",
                files.read(source, name),
                position,
            )
        )
    _poses_csv(tmp / "map" / "poses.csv", map_rows)
    _poses_csv(tmp / "queries" / "poses.csv", query_rows)
    shutil.rmtree(out / "map", ignore_errors=True)
    shutil.rmtree(out / "queries", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (tmp / "map").rename(out / "map")
    (tmp / "queries").rename(out / "queries")
    shutil.rmtree(tmp)
    log.info(
        "real development set: %d map images, %d queries in %s", len(map_rows), len(query_rows), out
    )
    return realset


def _query_views(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The whole query photo, its left and right 55 % and its central 60 % (a robot rarely frames
    a place the same way twice, and partial overlap is where global descriptors fail first)."""
    height, width = rgb.shape[:2]
    crop = int(width * 0.55)
    return {
        "full": rgb,
        "left": rgb[int(0.05 * height) :, :crop],
        "right": rgb[: int(0.95 * height), width - crop :],
        "centre": rgb[int(0.2 * height) : int(0.8 * height), int(0.2 * width) : int(0.8 * width)],
    }


def _write(folder: Path, name: str, rgb: np.ndarray, position: tuple) -> tuple:
    folder.mkdir(parents=True, exist_ok=True)
    scale = MAX_SIDE / max(rgb.shape[:2])
    if scale < 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return (name, *position)


def _poses_csv(path: Path, rows: list[tuple]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "x", "y", "z", "qx", "qy", "qz", "qw"])
        for name, x, y, z in rows:
            writer.writerow([name, x, y, z, 0, 0, 0, 1])


class SourceFiles:
    """Finds a shipped photograph: in an installed Python package, or in a Debian package that is
    downloaded (not installed) into ``cache`` on first use."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def read(self, source: tuple[str, str, str], name: str) -> np.ndarray:
        kind, package, folder = source
        root = self._python_package(package) if kind == "pip" else self._debian_package(package)
        path = root / folder / name
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{path}: missing or unreadable ({kind} package {package})")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    @staticmethod
    def _python_package(package: str) -> Path:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise InputError(f"the real development set needs the Python package {package!r}")
        return Path(next(iter(spec.submodule_search_locations)))

    def _debian_package(self, package: str) -> Path:
        root = self.cache / package
        if root.is_dir():
            return root
        if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
            raise InputError(
                f"the real development set needs apt-get and dpkg-deb to fetch {package}"
            )
        download = self.cache / "debs"
        download.mkdir(parents=True, exist_ok=True)
        debs = list(download.glob(f"{package}_*.deb"))
        if not debs:
            result = subprocess.run(
                ["apt-get", "download", package], cwd=download, capture_output=True, text=True
            )
            debs = list(download.glob(f"{package}_*.deb"))
            if not debs:
                raise InputError(
                    f"apt-get download {package} failed ({result.stderr.strip()[-200:]}); "
                    "run `apt-get update` once, then retry"
                )
        _unpack(debs[0], root)
        return root


def _unpack(deb: Path, root: Path) -> None:
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as archive:
        members = [m for m in archive.getmembers() if m.isfile() and _is_image(m.name)]
        archive.extractall(tmp, members=members, filter="data")
    tmp.rename(root)


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in {".jpg", ".jpeg", ".png"}
