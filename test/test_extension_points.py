"""The seams, shown from one file: a toy verifier (raw grey patches at corners, stored as float16)
and a toy source (a text file of image paths with positions) are registered here alone, then a
map is built with them through build_map's own command line, and the real node, in this process
over real rclpy, answers a frame with them: the candidate the toy verifier checks comes back
verified."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.parameter import Parameter

from nodeutil import Client
from ros2_netvlad.geometry import Pose
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.ros.conversions import cloud_to_candidates
from ros2_netvlad.ros.node import LocalizerNode
from ros2_netvlad.sources.registry import SourceKind, register_source
from ros2_netvlad.sources.rosbag import Frame
from ros2_netvlad.tools import build_map
from ros2_netvlad.verification.epipolar import epipolar_evidence, prepared
from ros2_netvlad.verification.features import Codec, LocalFeatures
from ros2_netvlad.verification.registry import register_verifier, verifier_names
from rosutil import ros_session

PATCH = 8


class PatchVerifier:
    """Corners (Shi-Tomasi) described by their normalised 8x8 grey patch: 64 float16 values."""

    codec = Codec("float16", PATCH * PATCH)

    def __init__(self, settings) -> None:
        self.settings = settings

    def extract(self, rgb: np.ndarray) -> LocalFeatures:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        corners = cv2.goodFeaturesToTrack(gray, self.settings.max_features, 0.01, PATCH)
        points, rows = [], []
        for x, y in corners.reshape(-1, 2) if corners is not None else []:
            patch = cv2.getRectSubPix(gray, (PATCH, PATCH), (float(x), float(y))).ravel()
            patch = (patch - patch.mean()) / (patch.std() + 1e-6)
            points.append((x, y))
            rows.append(patch)
        if not rows:
            return LocalFeatures.empty(self.codec)
        return LocalFeatures(np.float32(points), np.asarray(rows, np.float16))

    def prepare(self, features: LocalFeatures):
        return prepared(features, features.descriptors.astype(np.float32))

    def evidence(self, query, candidate, needed: int):
        return epipolar_evidence(query, candidate, needed)


class ListSource:
    """A text file: one `image_path x y` per line; every image is a keyframe."""

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, str(path)
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        self.items = [(path.parent / name, (float(x), float(y), 0.0)) for name, x, y in lines]
        self.geo_origin = None

    def plan(self, keyframes, counts: Counter, origin, sample=None) -> list[int]:
        counts["images"] += len(self.items)
        for image, _ in self.items if sample is not None else ():
            sample.offer(_read(image) if sample.wants() else None)
        return list(range(len(self.items)))

    def frames(self, keys, counts=None):
        for key in sorted(keys):
            image, position = self.items[key]
            yield Frame(key, _read(image), Pose(position), "map", image.name, key=key)

    def stored_file(self, key: int):
        image, position = self.items[key]
        return image, np.asarray(position)


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


register_verifier("patches", PatchVerifier)
register_source(SourceKind("image list", lambda p: p.suffix == ".list", lambda p, _: ListSource(p)))


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    yield from ros_session(tmp_path_factory.mktemp("ros_log"), "extension_test_client")


def test_a_toy_verifier_and_source_build_a_map_and_answer_a_node_frame(ros, photos, tmp_path):
    listing = tmp_path / "places.list"
    lines = []
    for n, (name, rgb) in enumerate(photos.items()):
        cv2.imwrite(str(tmp_path / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        lines.append(f"{name}.png {100.0 * n} 0")
    listing.write_text("\n".join(lines))
    assert "patches" in verifier_names()
    args = ["--source", str(listing), "--backbone", "efficientnet_lite0", "--num-clusters", "8"]
    args += ["--local-features", "patches", "--device", "cpu", "--out", str(tmp_path / "map")]
    assert build_map.main([*args, "--no-progress"]) == 0  # the registries gave the CLI choices

    database = MapDatabase.load(tmp_path / "map")
    stored = database.manifest.local_features
    assert (stored.method, stored.codec) == ("patches", Codec("float16", 64)) and len(database) == 4
    astronaut = list(photos).index("astronaut")
    assert database.local_features([astronaut])[astronaut].descriptors.dtype == np.float16

    client_node, executor = ros
    node = LocalizerNode(
        parameter_overrides=[
            Parameter("node.map", value=str(tmp_path / "map")),
            Parameter("model.device", value="cpu"),
            Parameter("localizer.nms_radius", value=0.0),
        ],
        cli_args=["--ros-args", "-r", "image:=/cam", "-r", "image/compressed:=/cam/compressed"],
    )
    executor.add_node(node)
    try:
        client = Client(ros, namespace="/netvlad_localizer")
        assert node.localizer.features.method == "patches"  # verification auto: the map's
        moved = np.roll(photos["astronaut"], (6, -9), axis=(0, 1))  # the same place, shifted
        table = cloud_to_candidates(client.send(moved, 1_000_000_000))
        verified = table[table["verified"] == 1]
        assert len(verified) >= 1 and verified["map_id"][0] == astronaut
        assert verified["inliers"][0] >= node.localizer.config.min_inliers
        assert not any(table[table["map_id"] != astronaut]["verified"])
    finally:
        executor.remove_node(node)
        node.close()
        node.destroy_node()
