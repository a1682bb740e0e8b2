"""Saving a map that grows online: under the map lock (the worker adds entries meanwhile), and
knowing whether anything is unsaved, so autosave and the stop save only write when needed."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from ros2_netvlad.errors import InputError
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.maps.lookalikes import measure_lookalikes

log = logging.getLogger(__name__)


class MapSaver:
    def __init__(self, database: MapDatabase, lock: threading.Lock, path: str) -> None:
        self.database, self.lock, self.path = database, lock, path
        self._saved_size, self._saved_at = len(database), time.monotonic()

    @property
    def unsaved(self) -> bool:
        """Entries added since the last save, or a map never written to ``path``."""
        return len(self.database) != self._saved_size or not Path(self.path).is_dir()

    def due(self, now: float, period: float) -> bool:
        """Autosave: entries were added and ``period`` seconds passed (0 = never)."""
        grown = len(self.database) != self._saved_size
        return bool(period) and grown and now - self._saved_at >= period

    def save(self) -> Path:
        if not self.path:
            raise InputError("node.map is empty: nowhere to save")
        with self.lock:
            self._measure_lookalikes()
            size, path = len(self.database), self.database.save(self.path)
        self._saved_size, self._saved_at = size, time.monotonic()
        return path

    def _measure_lookalikes(self) -> None:
        """The grown map's look-alikes, so its gate follows what it has become; a failure here
        never costs the save (the previous measurement stays)."""
        try:
            lookalikes = measure_lookalikes(self.database)
        except Exception as error:  # noqa: BLE001 (any verifier, any index)
            log.warning("look-alikes not re-measured: %s: %s", type(error).__name__, error)
            return
        if lookalikes is not None:
            self.database.record(lookalikes=lookalikes)
