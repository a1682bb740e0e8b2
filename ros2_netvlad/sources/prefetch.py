"""Reading ahead: decoding images in a background thread while the model works on the last batch."""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator


def prefetch(items: Iterable, depth: int) -> Iterator:
    """Runs ``items`` in a background thread, ``depth`` ahead; re-raises its errors here."""
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()

    def produce() -> None:
        try:
            for item in items:
                buffer.put(item)
            buffer.put(done)
        except BaseException as error:  # handed to the consumer
            buffer.put(error)

    threading.Thread(target=produce, daemon=True, name="prefetch").start()
    while (item := buffer.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
