"""A real pose-graph consumer of the node's loop closures (``slam_eval``): the recorded tables
read back, one graph node per answered frame, the graph (evaluation/pose_graph.py: odometry plus
one robust factor per frame whose best candidate is verified) optimized with relative-pose and
with identity factors, and the trajectories scored against ground truth with evo (APE/RPE).

A loop closure joins the current frame and the map entry it matched (found by ``map_stamp``: in
``loop_closure`` mode the map's entries are earlier frames of the same drive). False closures are
injected for the robustness run; closures are counted false by ground truth (``is_false``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from evo.core import metrics  # noqa: E402
from evo.core.trajectory import PoseTrajectory3D  # noqa: E402

from ros2_netvlad.errors import InputError
from ros2_netvlad.evaluation.pose_graph import Closure, Link, SlamConfig, optimize
from ros2_netvlad.geometry import Pose, angle_between, vector_angle
from ros2_netvlad.sources.rosbag import open_bag, read_poses, stamp_ns
from ros2_netvlad.tables import from_upper_triangle, table_rows

log = logging.getLogger(__name__)


# --- reading ------------------------------------------------------------------------------------
def read_closures(bag: str | Path, topic: str) -> tuple[list[int], list[Closure]]:
    """(stamps of every answered frame, the verified best candidate of each frame that has one)."""
    answered, closures = [], []
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise InputError(f"{bag}: no topic {topic!r} (record the node's ~/loop_closures)")
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            rows, query = table_rows(msg), stamp_ns(msg.header)
            answered.append(query)
            if "verified" not in (rows.dtype.names or ()):
                raise InputError(
                    f"{bag}: {topic} has no 'verified' field; not a loop_closures table"
                )
            verified = rows[rows["verified"] == 1]
            if len(verified):
                closures.append(_closure(verified[0], query))
    return sorted(set(answered)), closures


def _closure(best, query: int) -> Closure:
    """One table row → Closure; tables recorded before the geometry fields read as geometry 0."""
    names = best.dtype.names
    inliers = int(best["inliers"]) if "inliers" in names else 0
    map_ns = int(best["map_stamp_sec"]) * 1_000_000_000 + int(best["map_stamp_nanosec"])
    geometry = int(best["geometry"]) if "geometry" in names else 0
    acceptance = int(best["acceptance"]) if "acceptance" in names else 1
    if not geometry:
        return Closure(query, map_ns, inliers, float(best["score"]), acceptance=acceptance)
    relative = Pose(
        [best["rel_x"], best["rel_y"], best["rel_z"]],
        [best["rel_qx"], best["rel_qy"], best["rel_qz"], best["rel_qw"]],
    )
    covariance = from_upper_triangle(best["rel_cov"])
    score = float(best["score"])
    return Closure(query, map_ns, inliers, score, geometry, relative, covariance, acceptance)


def poses_at(bag: str | Path, topic: str, stamps: list[int], tolerance: float = 0.2) -> list[Pose]:
    trajectory = read_poses(bag, topic).trajectory
    poses = [trajectory.at(s, int(tolerance * 1e9)) for s in stamps]
    missing = sum(p is None for p in poses)
    if missing:
        raise InputError(f"{bag}: {topic} has no pose within {tolerance} s of {missing} frames")
    return poses


# --- linking ------------------------------------------------------------------------------------
def link_closures(
    stamps: list[int], closures: list[Closure], tolerance_ns: int = 100_000_000
) -> list[Link]:
    """A link (earlier node = the map entry, later = the query) for each closure whose two stamps
    are graph nodes."""
    index = {s: i for i, s in enumerate(stamps)}
    array = np.array(stamps)
    links = []
    for closure in closures:
        j = int(np.argmin(np.abs(array - closure.map_ns)))
        if closure.query_ns in index and abs(array[j] - closure.map_ns) <= tolerance_ns:
            i = index[closure.query_ns]
            if j < i:  # the map entry came first (loop_closure mode)
                links.append(Link(j, i, closure))
    return links


def with_false_links(
    links: list[Link], fraction: float, positions: np.ndarray, seed: int = 0, far: float = 15.0
) -> tuple[list[Link], list[Link]]:
    """``fraction`` of the links replaced by random false ones (between frames ≥ ``far`` metres
    apart in ground truth), each keeping the closure's measurement (a confident relative pose
    between the wrong frames): the robustness check. Returns (links, the false ones)."""
    rng = np.random.default_rng(seed)
    count = int(np.ceil(fraction * len(links)))  # at least one whenever fraction > 0
    replaced = set(rng.choice(len(links), count, replace=False).tolist()) if count else set()
    out, false = [], []
    for n, link in enumerate(links):
        if n not in replaced:
            out.append(link)
            continue
        later = link.later
        away = np.flatnonzero(np.linalg.norm(positions[:later] - positions[later], axis=1) > far)
        if len(away):
            bad = Link(int(rng.choice(away)), later, link.closure)
            out.append(bad)
            false.append(bad)
    return out, false


# --- scoring ------------------------------------------------------------------------------------
def is_false(link: Link, truth: list[Pose], radius: float) -> bool:
    """By ground truth: frames more than ``radius`` apart, unless the closure's relative pose
    says exactly that (the same facade seen from down the street is a true closure, with its
    pose): within 3° of rotation and, metric, 10 % of the distance (at least 0.3 m); rotation +
    direction, 5° of bearing (what its scale-free factor constrains)."""
    earlier, later = truth[link.earlier], truth[link.later]
    distance = float(np.linalg.norm(earlier.position - later.position))
    closure = link.closure
    if distance <= radius:
        return False
    if closure.geometry not in (1, 2):
        return True
    expected = earlier.inverse().compose(later)
    turned = angle_between(expected.orientation, closure.relative.orientation)
    if closure.geometry == 1:
        bearing = vector_angle(expected.position, closure.relative.position)
        return bearing > np.radians(5.0) or turned > np.radians(3.0)
    off = float(np.linalg.norm(expected.position - closure.relative.position))
    return off > max(0.3, 0.1 * distance) or turned > np.radians(3.0)


def trajectory_errors(stamps: list[int], truth: np.ndarray, estimate: np.ndarray) -> dict:
    """evo APE (translation, after SE(3) Umeyama alignment) and RPE (translation per frame)."""
    times = np.array(stamps, float) / 1e9
    identity = np.tile([1.0, 0.0, 0.0, 0.0], (len(stamps), 1))  # wxyz: positions are what count
    reference = PoseTrajectory3D(np.asarray(truth, float), identity, times)
    estimated = PoseTrajectory3D(np.asarray(estimate, float), identity.copy(), times)
    estimated.align(reference, correct_scale=False)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((reference, estimated))
    rpe = metrics.RPE(
        metrics.PoseRelation.translation_part, delta=1, delta_unit=metrics.Unit.frames
    )
    rpe.process_data((reference, estimated))
    rmse = metrics.StatisticsType.rmse
    return {
        "ate_rmse_m": float(ape.get_statistic(rmse)),
        "ate_max_m": float(ape.get_statistic(metrics.StatisticsType.max)),
        "rpe_rmse_m": float(rpe.get_statistic(rmse)),
        "aligned": estimated.positions_xyz,
    }


# --- the tool's one call ------------------------------------------------------------------------
@dataclass(frozen=True)
class SlamInputs:
    bag: Path  # odometry + ground truth (+ images)
    closures: Path  # bag with the node's recorded ~/loop_closures
    odom_topic: str = "/odom"
    truth_topic: str = "/ground_truth"
    closures_topic: str = "/netvlad_localizer/loop_closures"


def slam_eval(
    inputs: SlamInputs,
    out: str | Path,
    config: SlamConfig = SlamConfig(),
    false_fraction: float = 0.05,
    seed: int = 0,
    true_radius: float = 5.0,
) -> dict:
    """Odometry only vs. optimized with the verified loop closures (``config.factors``, and with
    identity factors beside it) vs. the same with ``false_fraction`` of them replaced by false
    ones (≥ 3 × ``true_radius`` apart). A closure whose frames are more than ``true_radius``
    apart in ground truth counts as false unless its metric pose says so (``is_false``).
    Writes metrics.json, report.md and trajectories.png into ``out``; returns the metrics."""
    out = Path(out)
    stamps, closures = read_closures(inputs.closures, inputs.closures_topic)
    if len(stamps) < 2:
        raise InputError(f"{inputs.closures}: fewer than two answered frames")
    odometry = poses_at(inputs.bag, inputs.odom_topic, stamps)
    truth_poses = poses_at(inputs.bag, inputs.truth_topic, stamps)
    truth = np.array([p.position for p in truth_poses])
    links = link_closures(stamps, closures)
    false_links, false = with_false_links(links, false_fraction, truth, seed, 3 * true_radius)
    identity = dataclasses.replace(config, factors="identity")
    runs = {
        "odometry_only": np.array([p.position for p in odometry]),
        "with_loop_closures": optimize(odometry, links, config),
        f"with_{false_fraction:.0%}_false_closures": optimize(odometry, false_links, config),
        "identity_factors": optimize(odometry, links, identity),
    }
    scored = {name: trajectory_errors(stamps, truth, xyz) for name, xyz in runs.items()}
    wrong = sum(is_false(k, truth_poses, true_radius) for k in links)
    geometry = [k.closure.geometry for k in links]
    accepted = [k.closure.acceptance for k in links]
    metrics_out = {
        "frames": len(stamps),
        "loop_closures": len(links),
        "closures_by_geometry": {str(g): geometry.count(g) for g in (0, 1, 2)},
        "closures_by_acceptance": {str(a): accepted.count(a) for a in (1, 2, 3)},
        "false_among_node_closures": int(wrong),  # by ground truth (is_false)
        "true_radius_m": true_radius,
        "injected_false_closures": len(false),
        "config": asdict(config),
        **{name: {k: v for k, v in s.items() if k != "aligned"} for name, s in scored.items()},
    }
    odom_ate = scored["odometry_only"]["ate_rmse_m"]
    clean_ate = scored["with_loop_closures"]["ate_rmse_m"]
    noisy_ate = list(scored.values())[2]["ate_rmse_m"]
    metrics_out["ate_ratio_to_odometry"] = clean_ate / odom_ate if odom_ate else float("nan")
    metrics_out["ate_ratio_false_to_clean"] = noisy_ate / clean_ate if clean_ate else float("nan")
    identity_ate = scored["identity_factors"]["ate_rmse_m"]
    metrics_out["ate_ratio_to_identity"] = (
        clean_ate / identity_ate if identity_ate else float("nan")
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics_out, indent=2))
    plot = _plot(out, truth, scored, links, false)
    (out / "report.md").write_text(_report(metrics_out, plot))
    return metrics_out


def _plot(out: Path, truth: np.ndarray, scored: dict, links, false) -> str:
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.plot(truth[:, 0], truth[:, 1], "k-", lw=2, label="ground truth")
    styles = {"odometry_only": "r--", "with_loop_closures": "b-", "identity_factors": "y-."}
    for name, result in scored.items():
        xyz = result["aligned"]
        ax.plot(
            xyz[:, 0],
            xyz[:, 1],
            styles.get(name, "g:"),
            label=f"{name} (ATE {result['ate_rmse_m']:.1f} m)",
        )
    for link in links:
        pair = [link.earlier, link.later]
        ax.plot(truth[pair, 0], truth[pair, 1], "c-", lw=0.5, alpha=0.6)
    for link in false:
        pair = [link.earlier, link.later]
        ax.plot(truth[pair, 0], truth[pair, 1], "m-", lw=1)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title("trajectories (aligned to ground truth); cyan: loop closures, magenta: false")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=110)
    plt.close(fig)
    return "trajectories.png"


def _row(name: str, e: dict) -> str:
    return f"| {name} | {e['ate_rmse_m']:.2f} | {e['ate_max_m']:.2f} | {e['rpe_rmse_m']:.3f} |"


def _report(m: dict, plot: str) -> str:
    rows = [name for name in m if isinstance(m[name], dict) and "ate_rmse_m" in m[name]]
    lines = [
        "# Pose graph with the node's loop closures",
        "",
        f"{m['frames']} frames, {m['loop_closures']} verified loop closures "
        f"({m['false_among_node_closures']} false by ground truth), "
        f"{m['injected_false_closures']} false ones injected for the robustness run; "
        f"kernel {m['config']['kernel']}, {m['config']['factors']} factors. Closures by "
        f"geometry (0 none, 1 rotation + direction, 2 metric): {m['closures_by_geometry']}; by "
        f"acceptance (1 own inliers, 2 weak sequence, 3 odometry tracking): "
        f"{m['closures_by_acceptance']}.",
        "",
        "| trajectory | ATE RMSE (m) | ATE max (m) | RPE RMSE (m/frame) |",
        "|---|---|---|---|",
        *[_row(n, m[n]) for n in rows],
        "",
        f"ATE with loop closures / odometry only: **{m['ate_ratio_to_odometry']:.2f}**; "
        f"with false closures / clean: **{m['ate_ratio_false_to_clean']:.2f}**; "
        f"{m['config']['factors']} / identity factors: **{m['ate_ratio_to_identity']:.2f}**.",
        "",
        f"![{plot}]({plot})",
    ]
    return "\n".join(lines) + "\n"
