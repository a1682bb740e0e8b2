"""Metric functions against hand-computed cases; report files exist, parse and are valid PNGs."""

import json

import numpy as np
import pytest

from ros2_netvlad.evaluation.metrics import (
    first_correct_ranks,
    precision_recall,
    recall_at_n,
    retrieval_metrics,
    within,
)
from ros2_netvlad.evaluation.report import write_report

PNG = b"\x89PNG\r\n\x1a\n"


def test_recall_at_n_by_hand():
    retrieved = np.array([[3, 1, 2], [0, 5, 6], [7, 8, 9]])
    correct = [{1}, {0}, {4}]  # hit at rank 1, rank 0, never
    np.testing.assert_array_equal(first_correct_ranks(retrieved, correct), [1, 0, -1])
    assert recall_at_n(retrieved, correct, ns=(1, 2, 3)) == {
        1: pytest.approx(1 / 3),
        2: pytest.approx(2 / 3),
        3: pytest.approx(2 / 3),
    }
    with pytest.raises(ValueError, match="3 result rows for 2 queries"):
        recall_at_n(retrieved, correct[:2])


def test_precision_recall_by_hand():
    # scores 0.9 (right), 0.8 (wrong), 0.7 (right), no candidate; 4 queries have a true match
    pr = precision_recall(
        np.array([0.9, 0.8, 0.7, -np.inf]),
        np.array([True, False, True, False]),
        np.array([True, True, True, True]),
    )
    np.testing.assert_allclose(pr.precision, [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(pr.recall, [0.25, 0.25, 0.5])
    assert pr.auc == pytest.approx(0.25 * 1.0 + 0.0 * 0.5 + 0.25 * 2 / 3)
    assert pr.recall_at_full_precision == pytest.approx(0.25)
    tied = precision_recall(np.array([0.5, 0.5]), np.array([True, False]), np.array([True, True]))
    np.testing.assert_allclose(tied.precision, [0.5])  # one threshold accepts both


def test_within_threshold():
    ids = within(
        np.array([[0, 0, 0], [100, 0, 0]]), np.array([[3, 4, 0], [30, 0, 0], [99, 0, 0]]), 5.0
    )
    assert [list(i) for i in ids] == [[0], [2]]


def test_report_files(tmp_path):
    map_positions = np.array([[0, 0, 0], [50, 0, 0], [100, 0, 0.0]])
    queries = np.array([[1, 0, 0], [49, 0, 0], [300, 0, 0.0]])
    retrieved = np.stack([map_positions[[0, 1]], map_positions[[0, 1]], map_positions[[2, 1]]])
    scores = np.array([[0.9, 0.5], [0.8, 0.7], [0.4, 0.3]])
    metrics, per_query = retrieval_metrics(retrieved, scores, queries, map_positions, 25.0)
    assert metrics["recall@1"] == pytest.approx(1 / 3) and metrics["recall@5"] == pytest.approx(
        2 / 3
    )
    assert metrics["num_queries_with_true_match"] == 2
    image = np.zeros((24, 32, 3), np.uint8)
    write_report(
        tmp_path,
        "test",
        metrics,
        per_query,
        map_positions,
        queries,
        {"Live node": {"processed_frames": 3}},
        failures=[("q1", image, image, None)],
        latencies_ms=np.array([10.0, 12.0, 30.0]),
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["recall@1"] == pytest.approx(1 / 3)
    report = (tmp_path / "report.md").read_text()
    assert "| 0.333 | 0.667 |" in report and "processed_frames | 3" in report
    for name in ("recall_at_n", "precision_recall", "trajectory", "worst_failures", "latency"):
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 2000 and f"{name}.png" in report


def test_a_far_closure_is_false_unless_its_pose_says_so():
    """slam_eval's judge: frames 15 m apart are a false closure, unless the closure's relative
    pose is that of the two frames (metric: within 10 % and 3°; rotation + direction: 5° of
    bearing and 3°), the same façade seen from down the street."""
    from ros2_netvlad.evaluation.pose_graph import Closure, Link
    from ros2_netvlad.evaluation.slam import is_false
    from ros2_netvlad.geometry import Pose, yaw_quaternion

    truth = [Pose(np.zeros(3)), Pose(np.array([15.0, 0.0, 0.0]), yaw_quaternion(0.02))]
    right = Pose(np.array([15.0, 0.4, 0.0]), yaw_quaternion(0.02))  # 1.5° of bearing off
    for geometry, relative in ((2, right), (1, Pose(right.position / 15.0, right.orientation))):
        link = Link(0, 1, Closure(1, 0, 40, 0.5, geometry, relative, np.eye(6)))
        assert not is_false(link, truth, radius=5.0)
    wrong_way = Pose(np.array([0.0, 1.0, 0.0]), yaw_quaternion(0.02))  # 90° of bearing off
    assert is_false(Link(0, 1, Closure(1, 0, 40, 0.5, 1, wrong_way, np.eye(6))), truth, 5.0)
    assert is_false(Link(0, 1, Closure(1, 0, 40, 0.5)), truth, 5.0)  # no geometry: false
    assert not is_false(Link(0, 1, Closure(1, 0, 40, 0.5)), truth[:1] * 2, 5.0)  # same place
