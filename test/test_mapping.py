"""build_map end to end: real bags of real photos → map directory → localization; folders;
torchrun."""

import csv
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ros2_netvlad.config import DescriberConfig, LocalizerConfig
from ros2_netvlad.demo import world
from ros2_netvlad.localization.localizer import Localizer
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.model.checkpoints import fingerprint
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.weights import load
from ros2_netvlad.tools import build_map

PLACES = world.places(6)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    world.write_traversal(root / "t1_mcap", PLACES, seed=1, storage="mcap")
    world.write_traversal(root / "t1_sqlite", PLACES, seed=1, storage="sqlite3", compressed=False)
    truth = world.write_traversal(root / "t2", PLACES, seed=2, changed=True)
    return root, truth


def build(out, bag, *extra):
    args = [
        "--bag",
        str(bag),
        "--image-topic",
        "/camera/image_raw/compressed",
        "--pose-topic",
        "/odom",
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
        *extra,
    ]
    if "--weights" not in extra:
        args += ["--backbone", "efficientnet_lite0", "--num-clusters", "16"]
    return build_map.main(args)


def test_map_from_bag_localizes_revisits(bags, tmp_path, capsys):
    root, truth = bags
    assert build(tmp_path / "map", root / "t1_mcap", "--min-distance", "5") == 0
    summary = capsys.readouterr().out
    assert "entries: 12 of 18 images" in summary and "6 not a keyframe" in summary
    db = MapDatabase.load(tmp_path / "map")
    model = load(tmp_path / "map" / "model.pt")
    assert db.manifest.model_fingerprint == fingerprint(model) and len(db) == 12
    describer = Describer(model, DescriberConfig(device="cpu"))
    localizer = Localizer(db, LocalizerConfig(top_k=1))
    from ros2_netvlad.sources.rosbag import PoseLookup, frames

    hits = []
    for frame in frames(root / "t2", "/camera/image_raw/compressed", PoseLookup("/odom")):
        best = localizer.query(describer(frame.image), frame.stamp_ns).candidates[0]
        hits.append(np.linalg.norm(np.asarray(best.entry.position) - frame.pose.position) < 25)
    assert np.mean(hits) >= 0.8, (
        f"Recall@1 {np.mean(hits):.2f} on revisits under changed conditions"
    )


def test_sqlite3_raw_images_and_existing_weights(bags, tmp_path, capsys):
    root, _ = bags
    assert build(tmp_path / "a", root / "t1_mcap") == 0
    capsys.readouterr()
    args = [
        "--bag",
        str(root / "t1_sqlite"),
        "--image-topic",
        "/camera/image_raw",
        "--pose-topic",
        "/odom",
        "--out",
        str(tmp_path / "b"),
        "--no-progress",
        "--device",
        "cpu",
        "--weights",
        str(tmp_path / "a" / "model.pt"),
        "--index",
        "HNSW16",
        "--store-images",
    ]
    assert build_map.main(args) == 0
    a, b = MapDatabase.load(tmp_path / "a"), MapDatabase.load(tmp_path / "b")
    assert (
        a.manifest.model_fingerprint == b.manifest.model_fingerprint
        and len(b) == 18
        and b.image(3)[:2] == b"\xff\xd8"
    )
    assert b.manifest.index == "HNSW16"


def test_cli_errors_are_clear(bags, tmp_path, capsys):
    root, _ = bags
    assert build(tmp_path / "m", root / "t1_mcap", "--min-distance", "-1") == 2
    assert "keyframes.min_distance: must be >= 0" in capsys.readouterr().err
    args = [
        "--bag",
        str(root / "t1_mcap"),
        "--image-topic",
        "/nope",
        "--pose-topic",
        "/odom",
        "--out",
        str(tmp_path / "m"),
        "--backbone",
        "efficientnet_lite0",
        "--no-progress",
    ]
    assert build_map.main(args) == 2
    assert "no topic '/nope'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_folder_with_csv_and_utm_names(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for place in PLACES:
        name = f"@{500000 + 40 * place.index:.2f}@{4400000.0:.2f}@17@T@place{place.index}.png"
        cv2.imwrite(
            str(folder / name), cv2.cvtColor(world.render_view(place, rng), cv2.COLOR_RGB2BGR)
        )
        rows.append([name, 40.0 * place.index, 0, 0, 0, 0, 0, 1])
    with open(tmp_path / "poses.csv", "w", newline="") as f:
        csv.writer(f).writerows([["name", "x", "y", "z", "qx", "qy", "qz", "qw"], *rows])
    common = [
        "--backbone",
        "efficientnet_lite0",
        "--num-clusters",
        "8",
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert (
        build_map.main(
            [
                "--images",
                str(folder),
                "--poses",
                str(tmp_path / "poses.csv"),
                "--out",
                str(tmp_path / "csv_map"),
                *common,
            ]
        )
        == 0
    )
    assert (
        build_map.main(["--images", str(folder), "--out", str(tmp_path / "utm_map"), *common]) == 0
    )
    csv_map, utm_map = (
        MapDatabase.load(tmp_path / "csv_map"),
        MapDatabase.load(tmp_path / "utm_map"),
    )
    np.testing.assert_allclose(csv_map.positions()[:, 0], [40.0 * p.index for p in PLACES])
    np.testing.assert_allclose(
        sorted(utm_map.positions()[:, 0]), [500000 + 40.0 * p.index for p in PLACES]
    )
    (tmp_path / "bad.csv").write_text("file,east,north\n")
    assert (
        build_map.main(
            [
                "--images",
                str(folder),
                "--poses",
                str(tmp_path / "bad.csv"),
                "--out",
                str(tmp_path / "x"),
                *common,
            ]
        )
        == 2
    )
    assert "header must be name,x,y,z,qx,qy,qz,qw or name,lat,lon" in capsys.readouterr().err


def test_torchrun_two_ranks_build_the_same_map(bags, tmp_path):
    root, _ = bags
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        "--bag",
        str(root / "t1_mcap"),
        "--image-topic",
        "/camera/image_raw/compressed",
        "--pose-topic",
        "/odom",
        "--backbone",
        "efficientnet_lite0",
        "--num-clusters",
        "8",
        "--no-progress",
        "--device",
        "cpu",
    ]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "ros2_netvlad.tools.build_map",
            *args,
            "--out",
            str(tmp_path / "one"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr
    ranks = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "ros2_netvlad.tools.build_map",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    one, two = MapDatabase.load(tmp_path / "one"), MapDatabase.load(tmp_path / "two")
    assert len(one) == len(two) == 18
    assert one.entries(range(18)) == two.entries(range(18))
    np.testing.assert_allclose(one.descriptors(), two.descriptors(), atol=1e-4)
