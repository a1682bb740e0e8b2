"""Sequence-consistent acceptance: several consecutive frames whose best matches are weaker than
``min_inliers`` but agree — each within ``sequence_radius`` of the previous frame's match in the
map, as a robot moving along a route it drove before matches consecutive places of it — confirm
a revisit no single frame could (ORB-SLAM's consecutive-keyframe check, SeqSLAM's sequences).

A frame supports the running hypothesis when its best candidate has at least the weak floor of
inliers (``sequence_min_inliers``, never below the map's look-alikes' quantile) and lies near the
previous support; otherwise the hypothesis starts again from it (or is dropped). Once
``sequence_frames`` consecutive frames support it, the current frame's best weak candidate is
accepted: marked verified."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np


class SequenceGate:
    def __init__(self, frames: int, radius: float) -> None:
        self.frames, self.radius = frames, radius
        self._supports: deque[np.ndarray] = deque(maxlen=max(frames, 1))

    @property
    def on(self) -> bool:
        return self.frames > 1

    def decide(self, candidates: list, floor: int) -> list:
        """``candidates`` (the localizer's, best first); returns them with the sequence-confirmed
        one verified and first (unchanged when a single frame already verified, or the chain is
        too short)."""
        weak = next((c for c in candidates if c.inliers >= floor), None)
        if weak is None:
            self._supports.clear()
            return candidates
        if self._supports and np.linalg.norm(weak.position - self._supports[-1]) > self.radius:
            self._supports.clear()  # another place: a new hypothesis starts here
        self._supports.append(weak.position)
        if weak.verified or len(self._supports) < self.frames:
            return candidates
        accepted = replace(weak, verified=True, rerank_score=weak.score + weak.inliers)
        return [accepted, *(c for c in candidates if c is not weak)]

    def resize(self, frames: int, radius: float) -> None:
        self.frames, self.radius = frames, radius
        self._supports = deque(self._supports, maxlen=max(frames, 1))
