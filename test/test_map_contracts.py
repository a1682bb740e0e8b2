"""What shapes a descriptor or a distance travels with the map: the resize rule it was built with,
and the GNSS origin its positions are metres around. Readers follow both."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ros2_netvlad.config import DescriberConfig
from ros2_netvlad.config_rules import ConfigError
from ros2_netvlad.demo import messages, world
from ros2_netvlad.demo.run import map_of_bag
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.maps.opening import map_resize
from ros2_netvlad.resize import resolve_resize
from ros2_netvlad.sources.rosbag import BagWriter
from ros2_netvlad.tools import evaluate

LAT0, LON0 = 47.3769, 8.5417
PLACES = world.places(5)


def position(index: int) -> np.ndarray:
    return world.place_position(4 * index, 20)  # on the 800 m loop: the last 150 m from the first


def test_resolve_describe_follows_the_map_and_refuses_a_different_rule():
    recorded = {"resize": "max_side", "max_side": 320, "width": 640, "height": 480}
    assert resolve_resize(DescriberConfig(), recorded)[0].max_side == 320  # auto / 0 → the map's
    assert resolve_resize(DescriberConfig(max_side=320), recorded)[0].max_side == 320
    assert resolve_resize(DescriberConfig(width=800), recorded)[0].max_side == 320  # unused field
    with pytest.raises(ConfigError, match="max_side 640 differs from the map's max_side 320"):
        resolve_resize(DescriberConfig(max_side=640), recorded)
    with pytest.raises(ConfigError, match="exact 640 480 differs"):
        resolve_resize(DescriberConfig(resize="exact"), recorded)
    forced, warning = resolve_resize(DescriberConfig(max_side=640), recorded, force=True)
    assert forced.max_side == 640 and "forced" in warning
    assert resolve_resize(DescriberConfig(), None)[0].max_side == 640  # old maps: the defaults


def enu_to_fix(position: np.ndarray) -> tuple[float, float, float]:
    lat = LAT0 + position[1] / 111_320.0
    lon = LON0 + position[0] / (111_320.0 * np.cos(np.radians(LAT0)))
    return lat, lon, 400.0


def write_gnss_bag(path, order, seed, changed):
    rng = np.random.default_rng(seed)
    with BagWriter(path, "mcap") as bag:
        for n, index in enumerate(order):
            stamp = 1_000_000_000 * (n + 1)
            view = world.render_view(PLACES[index], rng, (160, 120), changed)
            bag.write("/camera/compressed", messages.compressed(view, stamp), stamp)
            lat, lon, alt = enu_to_fix(position(index))
            bag.write("/fix", messages.navsatfix(lat, lon, alt, stamp), stamp)


@pytest.fixture(scope="module")
def gnss_map(tmp_path_factory):
    root = tmp_path_factory.mktemp("gnss")
    write_gnss_bag(root / "db", range(len(PLACES)), seed=1, changed=False)
    map_of_bag(
        root / "map", root / "db", image_topic="/camera/compressed", pose_topic="/fix", max_side=160
    )
    return root


def test_map_records_its_resize_rule_precision_and_gnss_origin(gnss_map):
    manifest = json.loads((gnss_map / "map" / "manifest.json").read_text())
    assert manifest["resize"] == {
        "resize": "max_side",
        "max_side": 160,
        "width": 640,
        "height": 480,
    }
    assert manifest["geo_origin"] == pytest.approx(list(enu_to_fix(position(0))))
    build = manifest["build"]  # the resolved build settings travel with the map
    assert build["model"]["max_side"] == 160 and build["keyframes"]["min_distance"] == 0.0
    assert build["database"]["index"] == "Flat" and build["fit_clusters"] is True
    database = MapDatabase.load(gnss_map / "map")
    assert map_resize(database, DescriberConfig()).max_side == 160
    # and the precision it was described at (auto: fp32, since the suite sees no native bf16)
    assert manifest["precision"] == database.manifest.precision == "fp32"
    assert database.manifest.geo_origin == pytest.approx(manifest["geo_origin"])
    assert database.manifest.build["model"]["max_side"] == 160


def test_queries_with_a_far_first_fix_are_placed_around_the_map_origin(gnss_map, tmp_path, capsys):
    # The query drive starts at the last place, hundreds of metres from the map's first fix: its
    # positions must still be metres around the map's origin, or no query has a true match.
    write_gnss_bag(tmp_path / "q", list(reversed(range(len(PLACES)))), seed=2, changed=True)
    first_gap = np.linalg.norm(position(4) - position(0))
    assert first_gap > 100
    args = [
        "--map",
        str(gnss_map / "map"),
        "--bag",
        str(tmp_path / "q"),
        "--image-topic",
        "/camera/compressed",
        "--pose-topic",
        "/fix",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert evaluate.main([*args, "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_queries_with_true_match"] == len(PLACES)
    assert metrics["recall@5"] == 1.0 and metrics["recall@1"] >= 0.6
    resolved = yaml.safe_load((tmp_path / "eval" / "config.yaml").read_text())
    assert resolved["model"]["max_side"] == 160 and resolved["model"]["resize"] == "max_side"
    assert resolved["geo_origin"] == pytest.approx(list(enu_to_fix(position(0))))
    # the map was described at 160 px: a query side at 640 px is refused, naming both
    assert evaluate.main([*args, "--max-side", "640", "--out", str(tmp_path / "e2")]) == 2
    assert "max_side 640 differs from the map's max_side 160" in capsys.readouterr().err
