"""A small tf buffer for offline use: /tf and /tf_static from a bag, looked up at image stamps."""

from __future__ import annotations

import numpy as np

from ros2_netvlad.errors import InputError
from ros2_netvlad.geometry import Pose, Trajectory


class TransformBuffer:
    """Frame tree where each child has one parent; dynamic edges are interpolated in time."""

    def __init__(self) -> None:
        self._static: dict[str, tuple[str, Pose]] = {}
        self._samples: dict[str, tuple[str, list[int], list[np.ndarray], list[np.ndarray]]] = {}
        self._dynamic: dict[str, tuple[str, Trajectory]] = {}

    def add(self, parent: str, child: str, stamp_ns: int, pose: Pose, static: bool = False) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if static:
            self._static[child] = (parent, pose)
            return
        entry = self._samples.setdefault(child, (parent, [], [], []))
        entry[1].append(stamp_ns)
        entry[2].append(pose.position)
        entry[3].append(pose.orientation)
        self._dynamic.pop(child, None)  # rebuilt lazily

    def frames(self) -> set[str]:
        edges = {
            **{c: p for c, (p, _) in self._static.items()},
            **{c: v[0] for c, v in self._samples.items()},
        }
        return set(edges) | set(edges.values())

    def lookup(self, target: str, source: str, stamp_ns: int, tolerance_ns: int) -> Pose | None:
        """Pose of ``source`` in ``target`` at ``stamp_ns``; None if a dynamic edge has no sample
        close enough. Raises InputError when the frames are not connected."""
        target, source = target.lstrip("/"), source.lstrip("/")
        up_source, up_target = self._chain(source), self._chain(target)
        common = next((f for f, _ in up_source if f in {g for g, _ in up_target}), None)
        if common is None:
            raise InputError(
                f"frames {target!r} and {source!r} are not connected in /tf "
                f"(known frames: {', '.join(sorted(self.frames())) or 'none'})"
            )
        root_to_source = self._to_ancestor(up_source, common, stamp_ns, tolerance_ns)
        root_to_target = self._to_ancestor(up_target, common, stamp_ns, tolerance_ns)
        if root_to_source is None or root_to_target is None:
            return None
        return root_to_target.inverse().compose(root_to_source)

    def _chain(self, frame: str) -> list[tuple[str, str | None]]:
        """[(frame, parent), (parent, grandparent), ...] up to the root."""
        chain, seen = [], set()
        while frame not in seen:
            seen.add(frame)
            parent = self._parent(frame)
            chain.append((frame, parent))
            if parent is None:
                break
            frame = parent
        return chain

    def _parent(self, frame: str) -> str | None:
        if frame in self._static:
            return self._static[frame][0]
        if frame in self._samples:
            return self._samples[frame][0]
        return None

    def _to_ancestor(
        self, chain: list[tuple[str, str | None]], ancestor: str, stamp_ns: int, tolerance_ns: int
    ) -> Pose | None:
        pose = Pose()
        for frame, _ in chain:
            if frame == ancestor:
                return pose
            edge = self._edge(frame, stamp_ns, tolerance_ns)
            if edge is None:
                return None
            pose = edge.compose(pose)
        return pose

    def _edge(self, child: str, stamp_ns: int, tolerance_ns: int) -> Pose | None:
        if child in self._static:
            return self._static[child][1]
        if child not in self._dynamic:
            parent, stamps, positions, orientations = self._samples[child]
            self._dynamic[child] = (
                parent,
                Trajectory(np.array(stamps), np.array(positions), np.array(orientations)),
            )
        return self._dynamic[child][1].at(stamp_ns, tolerance_ns)
