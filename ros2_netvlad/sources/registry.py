"""The kinds of source, by what a path looks like: what build_map, train and evaluate accept. The
first kind whose ``detects`` takes a path opens it; an image folder is the fallback.

Adding a kind (a dataset format, a robot's own log) is one file: a class with the ``Source``
members (source.py) and a ``register_source(SourceKind(...))`` call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ros2_netvlad.sources.folders import DatasetError
from ros2_netvlad.sources.rosbag import PoseLookup
from ros2_netvlad.sources.source import BagSource, FolderSource, MatSource, Source


@dataclass(frozen=True)
class SourceOptions:
    """What a path alone does not say: how bags are posed, and where a .mat's images live."""

    image_topic: str = ""
    poses: PoseLookup | None = None
    poses_csv: Path | None = None  # for an image folder (else poses.csv inside, or UTM names)
    image_root: Path | None = None  # for a .mat
    queries: bool = False  # a .mat's query half instead of its database half
    camera_topic: str = ""  # bags: CameraInfo (empty = the image topic's sibling)
    depth_topic: str = ""  # bags: an aligned depth image (empty = none)
    camera_to_base: tuple[float, ...] | None = None  # the optical frame in the posed frame (None:
    # the bag's tf, else REP 103 optical axes)


@dataclass(frozen=True)
class SourceKind:
    name: str
    detects: Callable[[Path], bool]
    opens: Callable[[Path, SourceOptions], Source]


def _is_bag(path: Path) -> bool:
    return path.suffix in (".mcap", ".db3") or (path / "metadata.yaml").is_file()


def _bag(path: Path, options: SourceOptions) -> Source:
    if not options.image_topic or options.poses is None:
        raise DatasetError(
            f"{path} is a rosbag2: give --image-topic and --pose-topic (or --tf-frames)"
        )
    return BagSource(
        path,
        options.image_topic,
        options.poses,
        options.camera_topic,
        options.depth_topic,
        options.camera_to_base,
    )


def _mat(path: Path, options: SourceOptions) -> Source:
    if options.image_root is None:
        raise DatasetError(f"{path} is a dbStruct .mat: give --image-root (its images' folder)")
    return MatSource(options.image_root, mat=path, queries=options.queries)


def _folder(path: Path, options: SourceOptions) -> Source:
    inner = path / "poses.csv"
    return FolderSource(path, options.poses_csv or (inner if inner.is_file() else None))


_KINDS: list[SourceKind] = [
    SourceKind("rosbag2", _is_bag, _bag),
    SourceKind("dbStruct .mat", lambda path: path.suffix == ".mat", _mat),
]
_FALLBACK = SourceKind("image folder", Path.is_dir, _folder)


def register_source(kind: SourceKind) -> None:
    """Tried before the built-in kinds, so a plugin may also claim paths they would take."""
    _KINDS.insert(0, kind)


def source_kinds() -> tuple[str, ...]:
    return (*(k.name for k in _KINDS), _FALLBACK.name)


def open_source(path: str | Path, options: SourceOptions = SourceOptions()) -> Source:
    path = Path(path)
    kind = next((k for k in _KINDS if k.detects(path)), _FALLBACK)  # a kind may name a missing file
    if not kind.detects(path):
        if not path.exists():
            raise DatasetError(f"not found: {path}")
        raise DatasetError(f"{path}: not a source ({', '.join(source_kinds())})")
    return kind.opens(path, options)
