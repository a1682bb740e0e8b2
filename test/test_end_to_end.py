"""End to end on a reduced demo world: generate → build map → replay_eval through the live node, and
a random-weight baseline on the same world; plus the evaluate CLI on folder and .mat query sets."""

import csv
import json
import os

import cv2
import numpy as np
import pytest
import scipy.io
import yaml

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.demo import world
from ros2_netvlad.demo.odometry import TRUTH_TOPIC
from ros2_netvlad.demo.run import IMAGE_TOPIC, DemoConfig, run_demo, summary_text
from ros2_netvlad.evaluation.offline import evaluate as evaluate_offline
from ros2_netvlad.localization.localizer import Localizer
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.sources.rosbag import PoseLookup
from ros2_netvlad.sources.source import BagSource
from ros2_netvlad.tools import evaluate, slam_eval
from ros2_netvlad.tools.demo import loop_closures_through_node, replay_through_node
from rosutil import configure_environment


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    configure_environment(out / "ros_log")
    os.environ["ROS_DOMAIN_ID"] = str(1 + (os.getpid() + 7) % 200)  # not the node tests' domain
    config = DemoConfig(places=6)
    return out, run_demo(out, replay_through_node, config, loop_closures_through_node)


def test_live_node_beats_random_weights(demo):
    out, summary = demo
    live, random = summary["live"], summary["random_backbone"]
    assert live["processed_frames"] == live["published_frames"] == 18
    assert live["recall@1"] >= 0.9, summary_text(summary)
    assert random["recall@1"] <= live["recall@1"] - 0.15, summary_text(summary)
    assert live["pose_prior_count"] > 0 and live["pose_prior_error_m_p50"] < 10
    assert 0 < live["latency_p50_ms"] <= live["latency_p95_ms"] <= live["latency_max_ms"]
    report = (out / "replay_eval" / "report.md").read_text()
    assert "## Live node" in report and "latency.png" in report
    for name in (
        "metrics.json",
        "report.md",
        "recall_at_n.png",
        "precision_recall.png",
        "trajectory.png",
    ):
        assert (out / "replay_eval" / name).is_file() and (out / "baseline_random" / name).is_file()
    assert json.loads((out / "summary.json").read_text())["live"]["recall@1"] == live["recall@1"]
    rows = list(csv.DictReader(open(out / "replay_eval" / "queries.csv")))  # what the node said
    assert len(rows) == 18 and live["groups"]["traversal2"]["queries"] == 18
    verified = [r for r in rows if r["verified"] == "1"]
    own = [r for r in verified if r["acceptance"] == "1"]  # accepted on their own inliers
    gate = Localizer(MapDatabase.load(out / "map")).min_inliers  # learned from its look-alikes
    assert gate >= LocalizerConfig().min_inliers
    assert own and all(int(r["top_inliers"].split(";")[0]) >= gate for r in own)
    # the rest were tracked by the drive's (drifting) wheel odometry after a closure
    assert {r["acceptance"] for r in verified} <= {"1", "3"}
    resolved = yaml.safe_load((out / "replay_eval" / "config.yaml").read_text())
    assert resolved["node"]["localizer"]["top_k"] == 5 and resolved["arguments"]["max_side"] == 0


def test_verified_loop_closures_are_all_true_in_the_live_replay(demo):
    _, summary = demo
    decisions = summary["live"]["decisions"]
    verified, raw = decisions["verified"], decisions["raw"]
    assert verified["false_loop_closures"] == 0 and verified["precision"] == 1.0, decisions
    assert verified["recall"] >= 0.5, decisions  # of the frames that have a true match
    assert raw["recall_at_100_precision"] <= verified["recall_at_100_precision"] + 1e-9


def test_acceptance_over_frames_adds_revisits_and_no_false_closure(demo, tmp_path):
    """Traversal 2 in order through the same Pipeline offline (no odometry: each frame alone, or
    two consecutive agreeing frames at >= 12 inliers), and through the live node with the
    drive's drifting wheel odometry (odometry tracking after each closure): each rule accepts
    what the single frame did not, and nothing false."""
    out, summary = demo
    queries = [BagSource(out / "world" / "traversal2", IMAGE_TOPIC, PoseLookup(TRUTH_TOPIC))]
    single = evaluate_offline(out / "map", queries, tmp_path / "single", progress=False)
    config = LocalizerConfig(sequence_frames=2, sequence_min_inliers=12)
    sequence = evaluate_offline(
        out / "map", queries, tmp_path / "seq", progress=False, localizer=config
    )
    single, sequence = single["decisions"]["verified"], sequence["decisions"]["verified"]
    assert sequence["false_loop_closures"] == 0 and sequence["precision"] == 1.0, sequence
    assert sequence["recall"] >= single["recall"], (single, sequence)
    live = summary["live"]["decisions"]["verified"]
    assert live["false_loop_closures"] == 0, live
    assert live["recall"] >= single["recall"] + 0.1, (single, live)  # tracked revisits
    tracked = summary["live"]["groups"]["traversal2"]["by_acceptance"]["3"]
    assert tracked >= 2, summary["live"]["groups"]


def test_pose_graph_with_the_nodes_loop_closures(demo, tmp_path, capsys):
    """slam_eval end to end: the RGB-D drive of the 3-D world through the live node in
    loop_closure mode (CameraInfo and depth replayed with the images), its recorded
    ~/loop_closures with their relative poses in a gtsam graph, evo against ground truth."""
    out, summary = demo
    slam = summary["slam"]
    assert slam["frames"] >= 30 and slam["loop_closures"] >= 5, slam
    assert slam["false_among_node_closures"] == 0, slam
    assert slam["closures_by_geometry"]["2"] >= 0.8 * slam["loop_closures"], slam  # metric
    assert slam["ate_ratio_to_odometry"] <= 0.6, slam  # loop closures remove most of the drift
    # the relative poses beat "same place" identity factors (issue 19's targets)
    assert slam["with_loop_closures"]["ate_rmse_m"] <= 0.3, slam
    # ... and beat them clearly. Issue 19's target was 0.5; with issue 20's extra closures the
    # identity factors got better too (0.46 -> 0.39 m), and which frames the live node processes
    # (thread timing) moves the ratio between 0.45 and 0.52 from run to run: the bound leaves
    # that spread room (benchmarks/pose_graph.py prints the figure)
    assert slam["ate_ratio_to_identity"] <= 0.6, slam
    assert slam["injected_false_closures"] >= 1 and slam["ate_ratio_false_to_clean"] <= 1.2, slam
    assert "loop factors: identity" in summary_text(summary)
    assert (out / "slam" / "trajectories.png").stat().st_size > 10_000
    # the CLI on the same recording, with another robustness setting
    closures = out / "loop_closure_replay" / "loop_closures"
    drive = out / "world" / "loop_drive"
    code = slam_eval.main(
        ["--bag", str(drive), "--closures", str(closures), "--out", str(tmp_path / "s")]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "ATE with loop closures / odometry only" in printed
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["loop_closures"] == slam["loop_closures"]
    assert metrics["with_loop_closures"]["ate_rmse_m"] == slam["with_loop_closures"]["ate_rmse_m"]


def test_evaluate_cli_on_folder_and_mat(demo, tmp_path, capsys):
    out, _ = demo
    places = world.places(6)
    rng = np.random.default_rng(5)
    root = tmp_path / "queries"
    root.mkdir()
    names, utm = [], []
    for place in places:
        position = world.place_position(place.index, len(places))
        name = f"@{position[0]:.2f}@{position[1]:.2f}@q{place.index}.jpg"
        cv2.imwrite(
            str(root / name),
            cv2.cvtColor(world.render_view(place, rng, changed=True), cv2.COLOR_RGB2BGR),
        )
        names.append(name)
        utm.append(position[:2])
    assert (
        evaluate.main(
            [
                "--map",
                str(out / "map"),
                "--images",
                str(root),
                "--out",
                str(tmp_path / "folder"),
                "--max-side",
                "320",
                "--no-progress",
            ]
        )
        == 0
    )
    folder = json.loads((tmp_path / "folder" / "metrics.json").read_text())
    assert folder["num_queries"] == 6 and folder["recall@1"] >= 0.8
    # every decision, one row per query, and the verified decision per group (the folder)
    rows = list(csv.DictReader(open(tmp_path / "folder" / "queries.csv")))
    assert len(rows) == 6 and set(rows[0]) >= {"query", "top_ids", "top_inliers", "verified"}
    assert all(r["group"] == "queries" and r["has_true_match"] == "1" for r in rows)
    correct = sum(r["correct"] == "1" for r in rows)
    assert folder["groups"]["queries"]["queries"] == 6 and correct >= 5
    assert folder["groups"]["queries"]["false"] == sum(
        r["verified"] == "1" and r["correct"] == "0" for r in rows
    )
    assert "Per group" in (tmp_path / "folder" / "report.md").read_text()
    db_struct = {
        "whichSet": "test",
        "dbImageFns": np.array(names, dtype=object),
        "utmDb": np.array(utm).T,
        "qImageFns": np.array(names, dtype=object),
        "utmQ": np.array(utm).T,
        "numImages": 6,
        "numQueries": 6,
        "posDistThr": 25,
        "posDistSqThr": 625,
        "nonTrivPosDistSqThr": 100,
    }
    scipy.io.savemat(tmp_path / "test.mat", {"dbStruct": db_struct})
    assert (
        evaluate.main(
            [
                "--map",
                str(out / "map"),
                "--mat",
                str(tmp_path / "test.mat"),
                "--image-root",
                str(root),
                "--out",
                str(tmp_path / "mat"),
                "--max-side",
                "320",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        json.loads((tmp_path / "mat" / "metrics.json").read_text())["recall@1"]
        == folder["recall@1"]
    )
    capsys.readouterr()
    assert (
        evaluate.main(
            [
                "--map",
                str(out / "map"),
                "--mat",
                str(tmp_path / "missing.mat"),
                "--image-root",
                str(root),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert ".mat file not found" in capsys.readouterr().err
