"""The node's one-slot mailbox between the image callback and the worker thread: the worker always
takes the newest frame, and frames it never got to are counted, not queued."""

from __future__ import annotations

import threading


class LatestFrame:
    """A one-slot mailbox: putting a frame replaces (and counts as dropped) one not yet taken."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._item: tuple | None = None
        self.dropped = 0

    def put(self, item: tuple) -> None:
        with self._ready:
            self.dropped += self._item is not None
            self._item = item
            self._ready.notify()

    def take(self, timeout: float) -> tuple | None:
        with self._ready:
            if self._item is None:
                self._ready.wait(timeout)
            item, self._item = self._item, None
            return item
