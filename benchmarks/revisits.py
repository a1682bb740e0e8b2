"""Revisits through the live node, before and after odometry tracking: the demo world's revisit
drive (20 places, 60 frames, other light, blur, occlusions; wheel odometry that drifts, in an
odom frame of its own) replayed by replay_eval against the map of the first drive, with
`localizer.sequence_track_distance` 0 (every frame alone) and at its default; the same at the
default against a map that never saw place 9 (whose picture shares a strip with place 10: what a
robot meets exploring somewhere new that looks like somewhere mapped); plus the cost of the
acceptance-over-frames logic per frame.

    python benchmarks/revisits.py

Prints the verified decision per group (recall at 100 % precision, accepted, false, what
accepted them) for each, and microseconds per frame of SequenceGate.decide. About 4 minutes.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from ros2_netvlad.demo import world
from ros2_netvlad.demo.run import DemoConfig, build, generate_world
from ros2_netvlad.geometry import Pose, yaw_quaternion
from ros2_netvlad.localization.localizer import Candidate
from ros2_netvlad.localization.sequence import SequenceGate
from ros2_netvlad.maps.database import Entry, MapDatabase
from ros2_netvlad.maps.lookalikes import measure_lookalikes
from ros2_netvlad.tools.demo import replay_through_node


def main() -> None:
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="revisits_log_"))
    root = Path(tempfile.mkdtemp(prefix="revisits_"))
    config = DemoConfig()
    first, second = generate_world(root / "world", config)
    map_dir = build(root, first, config, pretrained=True)
    print(
        f"{'tracking':<10}{'group':<12}{'frames':>7}{'accepted':>9}{'false':>6}"
        f"{'recall':>8}{'R@100%P':>9}  by acceptance (1 own inliers, 3 tracked)"
    )
    runs = (("off", map_dir, 0.0), ("on", map_dir, None))
    runs += (("on, no 9", without_place(map_dir, 9, config, root / "map_without_9"), None),)
    for name, run_map, distance in runs:
        slug = name.replace(", ", "_").replace(" ", "")
        params = root / f"params_{slug}.yaml"
        localizer = {"top_k": 5} if distance is None else {"sequence_track_distance": distance}
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"localizer": localizer}}}))
        metrics = replay_through_node(run_map, second, root / f"replay_{slug}", config, params)
        for group, g in metrics["groups"].items():
            print(
                f"{name:<10}{group:<12}{g['queries']:>7}{g['accepted']:>9}{g['false']:>6}"
                f"{g['recall']:>8.3f}{g['recall_at_100_precision']:>9.3f}  {g['by_acceptance']}"
            )
    print(f"acceptance over frames: {gate_cost_us():.1f} µs per frame (5 candidates, odometry)")
    print(f"(reports under {root})")


def without_place(map_dir: Path, place: int, config: DemoConfig, out: Path) -> Path:
    """A copy of the map without the entries of one place (within 10 m of it), its look-alikes
    measured again: as if that place had never been mapped."""
    full = MapDatabase.load(map_dir)
    here = world.place_position(place, config.places)[:2]
    keep = [i for i, p in enumerate(full.positions()[:, :2]) if np.linalg.norm(p - here) > 10]
    fingerprint, model = full.manifest.model_fingerprint, full.model_bytes
    reduced = MapDatabase.create(full.dim, fingerprint=fingerprint, model_bytes=model)
    reduced.manifest = replace(full.manifest, count=0, lookalikes=None)
    features = full.local_features(keep)
    images = [full.image(i) for i in keep]
    reduced.add(full.descriptors()[keep], full.entries(keep), images, [features[i] for i in keep])
    reduced.record(lookalikes=measure_lookalikes(reduced))
    return reduced.save(out)


def gate_cost_us(frames: int = 20_000) -> float:
    """SequenceGate.decide on a drive along a mapped route: every 10th frame verified, the rest
    tracked or not, weak sequences on as well (the most work it does)."""
    gate = SequenceGate(frames=3, radius=10.0, track_distance=50.0, top=5)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(frames):
        x = 2.0 * i
        odometry = Pose(np.array([x * 1.02, 0.0, 0.0]), yaw_quaternion(0.001 * i))
        candidates = [
            Candidate(
                k,
                0.5,
                Entry(k, "map", (x + rng.normal(0, 3), 0.0, 0.0)),
                i % 10 == 0 and k == 0,
                40 if i % 10 == 0 else int(rng.integers(0, 20)),
                0.5,
            )
            for k in range(5)
        ]
        gate.decide(candidates, floor=15, odometry=odometry)
    return (time.perf_counter() - start) / frames * 1e6


if __name__ == "__main__":
    main()
