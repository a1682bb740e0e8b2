"""One camera frame through the whole chain: describe → shortlist under the map lock → verify
outside it → decide → (in loop-closure mode) grow the map. The node, offline evaluation and the
tests call ``Pipeline.process``, so every score is of exactly what the node decides.

Whether the map grows is chosen once, when the pipeline is made (``growing``), not per frame."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ros2_netvlad.config import DatabaseConfig, KeyframeConfig, LocalizerConfig
from ros2_netvlad.geometry import Pose
from ros2_netvlad.localization.localizer import Localizer, Result
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.resize import resize_rule_text


@dataclass(frozen=True)
class Processed:
    """What one frame gave: the decision and the frame's descriptor."""

    result: Result
    descriptor: np.ndarray


class Pipeline:
    """Not thread-safe itself: one worker calls ``process``. ``lock`` is the map's, shared with
    whatever else reads or writes the map meanwhile (the node's ~/save_map)."""

    def __init__(
        self,
        describer: Describer,
        localizer: Localizer,
        growing: bool = False,
        lock: threading.Lock | None = None,
    ) -> None:
        self.describer, self.localizer = describer, localizer
        self.lock = lock or threading.Lock()
        # the query's local features: for verification, and for the entries a growing map stores
        self._wants_features = localizer.verifies or growing
        self._grow: Callable[..., None] = self._add_keyframe if growing else _keep_map

    def process(
        self,
        rgb: np.ndarray,
        stamp_ns: int,
        pose: Pose | Callable[[], Pose | None] | None = None,
        frame_id: str = "",
        depth: np.ndarray | Callable[[], np.ndarray | None] | None = None,
    ) -> Processed:
        """One frame. ``pose`` (odometry at ``stamp_ns``, in ``frame_id``) tracks revisits over
        frames and places the frame when the map grows; a frame without one is answered but not
        stored. It may be a function, asked after describing and again when the map is written
        if it had no answer: odometry just after the image's stamp, which its interpolation
        needs, often arrives while the image is being described. ``depth`` (an
        aligned depth image in metres, or a function giving it) gives a stored keyframe its
        keypoint depths, for metric relative poses later."""
        descriptor = self.describer(rgb)
        features = self.localizer.local_features(rgb) if self._wants_features else None
        with self.lock:  # the search and the stored features' read only
            shortlist = self.localizer.shortlist(descriptor, stamp_ns)
        # the odometry so far tracks revisits; a growing map asks again if it had not arrived
        odometry = pose() if callable(pose) else pose
        result = self.localizer.decide(shortlist, features, odometry)  # outside the lock
        self._grow(descriptor, stamp_ns, odometry or pose, frame_id, features, depth)
        return Processed(result, descriptor)

    def _add_keyframe(self, descriptor, stamp_ns, pose, frame_id, features, depth) -> None:
        pose = pose() if callable(pose) else pose
        if pose is not None:
            depth = depth() if callable(depth) else depth
            with self.lock:
                self.localizer.add_keyframe(descriptor, pose, stamp_ns, frame_id, features, depth)

    def summary(self) -> dict[str, str]:
        """How frames are handled, for diagnostics and start logs."""
        describer, database = self.describer, self.localizer.database
        model = describer.model
        return {
            "device": str(describer.device),
            "precision": str(describer.precision),
            "backend": describer.backend_note,
            "resize": resize_rule_text(describer.config),
            "verification": self.localizer.verification_text(),
            "model": f"{model.arch.backbone} K={model.arch.num_clusters} {model.output_dim}-D "
            f"{database.manifest.model_fingerprint}",
        }

    def reconfigure(
        self, localizer: LocalizerConfig, keyframes: KeyframeConfig, database: DatabaseConfig
    ) -> None:
        """Applies run-time settings under the map lock (the worker may be searching)."""
        with self.lock:
            self.localizer.reconfigure(localizer, keyframes)
            self.localizer.database.reconfigure(database)


def _keep_map(*_) -> None:
    """Localize mode: the map is never written."""
    return None
