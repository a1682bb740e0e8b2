"""A map directory on disk: the entry row format, reading its manifest, index and entries with
errors that name the file, and replacing a directory atomically (write a temporary sibling, then
swap it in; a save cut short leaves the previous map, recovered on the next load)."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

from ros2_netvlad.maps.manifest import Manifest, MapError

log = logging.getLogger(__name__)
MANIFEST, INDEX, ENTRIES, MODEL = "manifest.json", "index.faiss", "entries.sqlite", "model.pt"
# Additive (maps before it load; the manifest's "local_features" key says whether it is filled):
# keypoints as float32 x y pairs, descriptor rows in the dtype and width of the manifest's codec,
# and (added later, NULL without a depth image) one float32 depth in metres per keypoint.
LOCAL_FEATURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_features (
    id INTEGER PRIMARY KEY,          -- = faiss id
    keypoints BLOB NOT NULL,
    descriptors BLOB NOT NULL,
    depths BLOB
);
"""
SCHEMA = (
    """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,          -- = faiss id
    stamp_ns INTEGER NOT NULL,
    frame_id TEXT NOT NULL,
    x REAL NOT NULL, y REAL NOT NULL, z REAL NOT NULL,
    qx REAL NOT NULL, qy REAL NOT NULL, qz REAL NOT NULL, qw REAL NOT NULL,
    covariance BLOB,                 -- 36 float64 (row-major 6x6), optional
    latitude REAL, longitude REAL, altitude REAL,
    source TEXT NOT NULL             -- bag + topic, or image file
);
CREATE TABLE images (id INTEGER PRIMARY KEY, jpeg BLOB NOT NULL);  -- optional (--store-images)
"""
    + LOCAL_FEATURES_SCHEMA
)


@dataclass(frozen=True)
class Entry:
    stamp_ns: int
    frame_id: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    covariance: tuple[float, ...] | None = None
    geo: tuple[float, float, float] | None = None  # latitude, longitude, altitude
    source: str = ""

    def row(self) -> tuple:
        cov = None if self.covariance is None else np.asarray(self.covariance, np.float64).tobytes()
        lat, lon, alt = self.geo if self.geo else (None, None, None)
        return (
            int(self.stamp_ns),
            self.frame_id,
            *map(float, self.position),
            *map(float, self.orientation),
            cov,
            lat,
            lon,
            alt,
            self.source,
        )

    @staticmethod
    def from_row(row: Sequence) -> "Entry":
        cov = None if row[10] is None else tuple(np.frombuffer(row[10], np.float64))
        geo = None if row[11] is None else (row[11], row[12], row[13])
        return Entry(row[1], row[2], tuple(row[3:6]), tuple(row[6:10]), cov, geo, row[14])


def map_geo_origin(path: str | Path) -> tuple[float, float, float] | None:
    """The GNSS origin of a map directory (None when its poses are not from GNSS), read from its
    manifest alone: query sets must place their fixes around it, not around their own first fix."""
    return read_manifest(Path(path)).geo_origin


def read_manifest(path: Path) -> Manifest:
    if not path.is_dir():
        raise MapError(f"map directory not found: {path}")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise MapError(f"{path}: missing {MANIFEST}; not a map directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MapError(f"{path / MANIFEST}: corrupt JSON ({error})") from None
    return Manifest.from_json(manifest, path / MANIFEST)


def read_index(path: Path) -> faiss.Index:
    if not path.is_file():
        raise MapError(f"missing {path}")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as error:
        raise MapError(f"{path}: corrupt faiss index ({str(error).splitlines()[-1]})") from None


def read_entries(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise MapError(f"missing {path}")
    memory = sqlite3.connect(":memory:", check_same_thread=False)
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        source.backup(memory)
        source.close()
        memory.execute("SELECT id, stamp_ns, x, qw, source FROM entries LIMIT 1")
        memory.executescript(LOCAL_FEATURES_SCHEMA)  # maps written before it have none
        columns = {row[1] for row in memory.execute("PRAGMA table_info(local_features)")}
        if "depths" not in columns:  # maps written before keypoint depths were stored
            memory.execute("ALTER TABLE local_features ADD COLUMN depths BLOB")
    except sqlite3.DatabaseError as error:
        raise MapError(f"{path}: corrupt entries database ({error})") from None
    return memory


def fsync_dir(path: Path) -> None:
    for file in path.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2


def swap_into_place(tmp: Path, path: Path) -> None:
    """Moves the finished directory ``tmp`` to ``path``. An existing map is exchanged atomically
    (renameat2 RENAME_EXCHANGE on Linux); elsewhere it is renamed aside first and recovered by
    ``load`` if the process dies between the two renames."""
    if not path.exists():
        os.rename(tmp, path)
        return
    if rename_exchange(tmp, path):
        shutil.rmtree(tmp)  # now holds the previous map
        return
    backup = path.with_name(f".{path.name}.previous")
    shutil.rmtree(backup, ignore_errors=True)
    os.rename(path, backup)
    os.rename(tmp, path)
    shutil.rmtree(backup)


def rename_exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def recover(path: Path) -> Path:
    backup = path.with_name(f".{path.name}.previous")
    if not path.exists() and backup.is_dir():
        log.warning(
            "%s was being replaced when a save was interrupted; restoring the previous map", path
        )
        os.rename(backup, path)
    return path
