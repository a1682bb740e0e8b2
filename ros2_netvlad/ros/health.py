"""The node's health as /diagnostics reports it: a processing rate that decays to zero when frames
stop, latency percentiles, and the level (OK, or WARN with the reason). Pure Python on monotonic
timestamps, so it is tested without ROS and without waiting."""

from __future__ import annotations

from collections import deque

import numpy as np

RATE_WINDOW = 10.0  # seconds of recent frames the rate is measured over


class Health:
    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._done: deque[float] = deque(maxlen=2000)  # when each frame was published
        self._latencies: deque[float] = deque(maxlen=500)  # seconds from receipt to publication
        self.done = self.rejected = 0  # frames published, and images rejected
        self.image_seen = False

    def frame_done(self, received: float, published: float) -> None:
        self.done += 1
        self._done.append(published)
        self._latencies.append(published - received)

    def rate(self, now: float) -> float:
        """Frames per second over the last ``window`` seconds (or since the first frame): 0 once
        the camera has been silent for a whole window."""
        recent = [t for t in self._done if now - t <= self.window]
        if not recent:
            return 0.0
        span = min(self.window, now - self._done[0])
        return len(recent) / span if span > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        values = np.array(self._latencies) * 1000 if self._latencies else np.zeros(1)
        return float(np.percentile(values, percentile))

    @staticmethod
    def level(now: float, last_image: float | None, image_timeout: float) -> tuple[str, str]:
        """("OK" | "WARN", message). ``last_image``: when the last image arrived (None: never)."""
        if last_image is None:
            return "WARN", "no images processed yet"
        silent = now - last_image
        if image_timeout and silent >= image_timeout:
            return "WARN", f"no image for {silent:.0f} s (node.image_timeout {image_timeout:g} s)"
        return "OK", "localizing"


class SilenceWatch:
    """When to warn that images stopped: after ``timeout`` seconds of silence, then at most every
    max(timeout, 30) s while it lasts (0 = never)."""

    def __init__(self, timeout: float, now: float) -> None:
        self.timeout, self.last_image, self._warned = timeout, now, now

    def image(self, now: float) -> None:
        self.last_image = now

    def due(self, now: float) -> bool:
        silent, first = now - self.last_image, self._warned <= self.last_image
        if not self.timeout or silent < self.timeout:
            return False
        if first or now - self._warned >= max(self.timeout, 30):
            self._warned = now
            return True
        return False
