"""The map database: one directory with ``manifest.json``, ``index.faiss``, ``entries.sqlite`` and
(optionally) ``model.pt``.

Saving writes a complete temporary sibling directory and swaps it into place, so a reader (or a
crash) sees the old map or the new one, never a mix. Entries live in an in-memory SQLite database
while the map is open; each ``add`` is one transaction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

from ros2_netvlad.config import DatabaseConfig
from ros2_netvlad.maps.manifest import Manifest
from ros2_netvlad.maps.search import exact_search, search_excluding
from ros2_netvlad.maps.storage import (  # Entry: re-exported, the public name stays here
    ENTRIES,
    INDEX,
    MANIFEST,
    MODEL,
    SCHEMA,
    Entry,
    MapError,
    fsync_dir,
    read_entries,
    read_index,
    read_manifest,
    recover,
    swap_into_place,
)
from ros2_netvlad.verification.features import Codec, LocalFeatures
from ros2_netvlad.verification.registry import with_codec

log = logging.getLogger(__name__)


class MapDatabase:
    """Descriptors (faiss) + entries (SQLite), row id = faiss id."""

    def __init__(
        self,
        index: faiss.Index,
        entries: sqlite3.Connection,
        manifest: Manifest,
        config: DatabaseConfig,
        model_bytes: bytes | None = None,
    ) -> None:
        self.index, self._db, self.manifest, self.config = index, entries, manifest, config
        self.model_bytes = model_bytes
        self._pending: list[
            np.ndarray
        ] = []  # descriptors waiting for an untrained index's training
        self._positions: np.ndarray | None = None
        self._stamps: np.ndarray | None = None
        self._apply_search_parameters()

    # --- creation and loading -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        dim: int,
        config: DatabaseConfig = DatabaseConfig(),
        fingerprint: str = "",
        model_bytes: bytes | None = None,
    ) -> "MapDatabase":
        spec = config.factory_string()
        try:
            index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as error:
            raise MapError(
                f"database.index {spec!r} is not a valid faiss factory string for {dim}-D: "
                f"{str(error).splitlines()[-1]}"
            ) from None
        manifest = Manifest(dim, spec, model_fingerprint=fingerprint)
        entries = sqlite3.connect(":memory:", check_same_thread=False)
        entries.executescript(SCHEMA)
        return cls(index, entries, manifest, config, model_bytes)

    @classmethod
    def load(
        cls,
        path: str | Path,
        fingerprint: str = "",
        force: bool = False,
        config: DatabaseConfig = DatabaseConfig(),
    ) -> "MapDatabase":
        """Opens a map. A non-empty ``fingerprint`` must match the map's unless ``force``."""
        path = recover(Path(path))
        manifest = read_manifest(path)
        index = read_index(path / INDEX)
        entries = read_entries(path / ENTRIES)
        count = entries.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        if not (index.ntotal == count == manifest.count):
            raise MapError(
                f"{path}: entry counts disagree: {INDEX} has {index.ntotal}, {ENTRIES} has "
                f"{count}, {MANIFEST} says {manifest.count}"
            )
        if index.d != manifest.descriptor_dim:
            raise MapError(
                f"{path}: {INDEX} is {index.d}-D but {MANIFEST} says {manifest.descriptor_dim}-D"
            )
        stored = manifest.model_fingerprint
        if fingerprint and stored != fingerprint and not force:
            raise MapError(
                f"{path}: built with model {stored or 'unknown'}, but the current model is "
                f"{fingerprint}; descriptors would not be comparable (force to override)"
            )
        model_path = path / MODEL
        model_bytes = model_path.read_bytes() if model_path.is_file() else None
        return cls(_to_device(index, config), entries, manifest, config, model_bytes)

    # --- contents -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.manifest.descriptor_dim

    def record(self, **changes) -> None:
        """Records what shaped the map's descriptors (Manifest fields: resize, precision,
        local_features, geo_origin, build). Local features are declared before entries carry
        them."""
        if changes.get("local_features") is not None and changes["local_features"].codec is None:
            changes["local_features"] = with_codec(changes["local_features"])
        self.manifest = dataclasses.replace(self.manifest, **changes)

    @property
    def _codec(self) -> Codec | None:
        features = self.manifest.local_features
        return None if features is None else features.codec

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def add(
        self,
        descriptors: np.ndarray,
        entries: Sequence[Entry],
        images: Sequence[bytes] | None = None,
        local_features: Sequence[LocalFeatures] | None = None,
    ) -> np.ndarray:
        """Appends entries with their descriptors (and optional JPEG images and local features)
        in one transaction; returns their ids."""
        descriptors = np.ascontiguousarray(descriptors, dtype=np.float32)
        descriptors = descriptors[None] if descriptors.ndim == 1 else descriptors
        if descriptors.ndim != 2 or descriptors.shape[1] != self.dim:
            raise MapError(f"descriptors must be N x {self.dim}, got {np.shape(descriptors)}")
        if len(descriptors) != len(entries):
            raise MapError(f"{len(descriptors)} descriptors for {len(entries)} entries")
        if not np.all(np.isfinite(descriptors)):
            raise MapError("descriptors contain NaN or infinity")
        start = len(self)
        ids = np.arange(start, start + len(entries))
        with self._db:  # one transaction: all rows or none
            self._db.executemany(
                f"INSERT INTO entries VALUES (?{', ?' * 14})",
                [(int(i), *e.row()) for i, e in zip(ids, entries)],
            )
            if images is not None:
                self._db.executemany("INSERT INTO images VALUES (?, ?)", zip(map(int, ids), images))
            if local_features is not None:
                if self._codec is None:
                    raise MapError("record(local_features=...) before adding entries with them")
                self._db.executemany(
                    "INSERT INTO local_features VALUES (?, ?, ?, ?)",
                    [(int(i), *self._codec.encode(f)) for i, f in zip(ids, local_features)],
                )
            self._add_vectors(descriptors)
        self.manifest = dataclasses.replace(self.manifest, count=start + len(entries))
        self._positions = self._stamps = None
        return ids

    def search(
        self, descriptors: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each Q×k, best first; missing results have id -1 and score -inf.
        ``exclude`` (ids) are left out of the search itself, so k results still come back when
        many of the nearest entries are excluded."""
        self._train_if_needed()
        queries = np.ascontiguousarray(descriptors, dtype=np.float32).reshape(-1, self.dim)
        excluded = np.unique(np.asarray(exclude if exclude is not None else [], np.int64))
        if self.index.ntotal == 0 or len(excluded) >= self.index.ntotal:
            return np.full((len(queries), k), -np.inf, np.float32), np.full(
                (len(queries), k), -1, np.int64
            )
        if (
            isinstance(self.index, faiss.IndexFlat)
            and self.index.metric_type == faiss.METRIC_INNER_PRODUCT
        ):
            return exact_search(self.index, queries, k, excluded)
        if len(excluded):
            scores, ids = search_excluding(self.index, queries, k, excluded, self.config)
        else:
            scores, ids = self.index.search(queries, k)
        scores[ids < 0] = -np.inf
        return scores, ids

    def entries(self, ids: Sequence[int]) -> list[Entry]:
        ids = [int(i) for i in ids]
        rows = (
            {
                r[0]: r
                for r in self._db.execute(
                    f"SELECT * FROM entries WHERE id IN ({','.join('?' * len(ids))})", ids
                )
            }
            if ids
            else {}
        )
        missing = [i for i in ids if i not in rows]
        if missing:
            raise MapError(f"no map entries with ids {missing[:5]}")
        return [Entry.from_row(rows[i]) for i in ids]

    def local_features(self, ids: Sequence[int]) -> dict[int, LocalFeatures]:
        """The stored local features of these entries (entries without any are left out)."""
        ids = [int(i) for i in ids]
        if self._codec is None or not ids:
            return {}
        rows = self._db.execute(
            "SELECT id, keypoints, descriptors, depths FROM local_features "
            f"WHERE id IN ({','.join('?' * len(ids))})",
            ids,
        )
        return {i: self._codec.decode(k, d, z) for i, k, d, z in rows}

    def local_feature_bytes(self) -> int:
        """Bytes of stored local features (keypoints + descriptors) over the whole map."""
        row = self._db.execute(
            "SELECT SUM(LENGTH(keypoints) + LENGTH(descriptors)) FROM local_features"
        ).fetchone()
        return int(row[0] or 0)

    def stamps(self) -> np.ndarray:
        """N entry stamps in ns (cached), for the exclusion window."""
        if self._stamps is None:
            rows = self._db.execute("SELECT stamp_ns FROM entries ORDER BY id").fetchall()
            self._stamps = np.array([r[0] for r in rows], dtype=np.int64)
        return self._stamps

    def image(self, entry_id: int) -> bytes | None:
        row = self._db.execute("SELECT jpeg FROM images WHERE id = ?", (int(entry_id),)).fetchone()
        return None if row is None else row[0]

    def positions(self) -> np.ndarray:
        """N×3 entry positions (cached), for spatial filtering."""
        if self._positions is None:
            rows = self._db.execute("SELECT x, y, z FROM entries ORDER BY id").fetchall()
            self._positions = np.array(rows, dtype=np.float64).reshape(-1, 3)
        return self._positions

    def descriptors(self) -> np.ndarray:
        """All stored descriptors (exact for Flat, reconstructed for compressed indexes)."""
        self._train_if_needed()
        index = self._cpu_index()
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.make_direct_map()
        return index.reconstruct_n(0, index.ntotal)

    # --- saving ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes the whole map to ``path`` atomically."""
        self._train_if_needed()
        path = Path(path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkdir, not mkdtemp: mkdtemp makes the directory 0700, and a map must be as readable as
        # any file
        # the user writes (the umask decides), e.g. for a container running under another uid.
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
        tmp.mkdir()
        try:
            faiss.write_index(self._cpu_index(), str(tmp / INDEX))
            (tmp / ENTRIES).touch()  # created here with 0666 & ~umask; sqlite3 would make it 0644
            target = sqlite3.connect(tmp / ENTRIES)
            with target:
                self._db.backup(target)
            target.close()
            if self.model_bytes is not None:
                (tmp / MODEL).write_bytes(self.model_bytes)
            (tmp / MANIFEST).write_text(
                json.dumps(dataclasses.replace(self.manifest, count=len(self)).to_json(), indent=2)
            )
            fsync_dir(tmp)
            swap_into_place(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    # --- internals ------------------------------------------------------------------------------
    def _add_vectors(self, descriptors: np.ndarray) -> None:
        if self.index.is_trained and not self._pending:
            self.index.add(descriptors)
        else:
            self._pending.append(descriptors)

    def _train_if_needed(self) -> None:
        if not self._pending:
            return
        vectors = np.concatenate(self._pending)
        if not self.index.is_trained:
            needed = _training_minimum(self.index)
            if len(vectors) < needed:
                raise MapError(
                    f"index {self.manifest.index!r} needs at least {needed} descriptors to "
                    f"train, "
                    f"the map has {len(vectors)}; use a smaller nlist or the exact 'Flat' index"
                )
            self.index.train(_training_sample(vectors, needed))
        self.index.add(vectors)
        self._pending = []

    def reconfigure(self, config: DatabaseConfig) -> None:
        """Applies new search settings (nprobe, ef_search) at run time; the index itself stays."""
        self.config = config
        self._apply_search_parameters()

    def _apply_search_parameters(self) -> None:
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.nprobe = self.config.nprobe
        hnsw = getattr(faiss.downcast_index(self.index), "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = self.config.ef_search

    def _cpu_index(self) -> faiss.Index:
        if hasattr(faiss, "index_gpu_to_cpu") and type(self.index).__name__.startswith("Gpu"):
            return faiss.index_gpu_to_cpu(self.index)
        return self.index


def _training_sample(vectors: np.ndarray, nlist: int, per_list: int = 64) -> np.ndarray:
    """A seeded subset for IVF training: ~64 points per list trains as well as all of them, and
    k-means cost grows with the sample (1M x 4096-D would take hours on a laptop)."""
    if len(vectors) <= nlist * per_list:
        return vectors
    keep = np.random.default_rng(0).choice(len(vectors), nlist * per_list, replace=False)
    return vectors[np.sort(keep)]


def _training_minimum(index: faiss.Index) -> int:
    ivf = faiss.try_extract_index_ivf(index)
    return int(ivf.nlist) if ivf is not None else 1


def _to_device(index: faiss.Index, config: DatabaseConfig) -> faiss.Index:
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if config.device in ("auto", "cuda") and gpus > 0:
        log.info("map index moved to %d GPU(s)", gpus)
        return faiss.index_cpu_to_all_gpus(index)
    return index
