"""Sources: one interface for bags and folders, poses read once, a build reading each bag at most
twice (plan + k-means sample in one pass, then describe), and the even sample behind it."""

from __future__ import annotations

from collections import Counter

import pytest

from ros2_netvlad.demo import world
from ros2_netvlad.demo.run import map_of_bag
from ros2_netvlad.sources import rosbag
from ros2_netvlad.sources.source import EvenSample


@pytest.mark.parametrize("length", [0, 1, 7, 10, 11, 99, 1000])
def test_even_sample_is_evenly_spread_and_bounded(length):
    sample = EvenSample(10)
    decoded = []
    for i in range(length):
        if sample.wants():
            decoded.append(i)
            sample.offer(i)
        else:
            sample.offer(None)
    items = sample.items()
    assert None not in items and len(items) == min(length, 10)
    assert len(decoded) <= 10 * (2 + max(1, length).bit_length())  # only what was kept is decoded
    if len(items) > 2:  # evenly spread from the start: gaps differ by at most one kept step
        gaps = [b - a for a, b in zip(items, items[1:])]
        assert items[0] == 0 and max(gaps) - min(gaps) <= sample.step


def test_a_build_reads_each_bag_twice_and_its_poses_once(tmp_path, monkeypatch):
    world.write_traversal(tmp_path / "bag", world.places(4), seed=1, size=(160, 120))
    passes, pose_reads = Counter(), Counter()
    real_messages, real_poses = rosbag.image_messages, rosbag.read_poses

    def counted_messages(bag, topic):
        passes[str(bag)] += 1
        return real_messages(bag, topic)

    def counted_poses(bag, topic, origin=None):
        pose_reads[str(bag)] += 1
        return real_poses(bag, topic, origin)

    monkeypatch.setattr(rosbag, "image_messages", counted_messages)
    monkeypatch.setattr(rosbag, "read_poses", counted_poses)
    map_of_bag(tmp_path / "map", tmp_path / "bag", max_side=96)  # NetVLAD fitted on the map
    assert passes == {str(tmp_path / "bag"): 2}, "plan + k-means sample, then describe"
    assert pose_reads == {str(tmp_path / "bag"): 1}
