"""A real pose-graph consumer of the node's loop closures (``slam_eval``): odometry between-factors
plus one loop-closure factor per frame whose best candidate is verified, robust kernels, gtsam
Levenberg-Marquardt, and the trajectories scored against ground truth with evo (APE/RPE).

Graph nodes are the camera frames (the stamps the node answered). A loop closure joins the
current frame and the map entry it matched (found by ``map_stamp``: in ``loop_closure`` mode the
map's entries are earlier frames of the same drive). An appearance match says "same place", not
the exact relative pose, so the factor is the identity with a loose covariance, under a robust
kernel so that a rare false closure is down-weighted instead of bending the map.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import gtsam
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from evo.core import metrics  # noqa: E402
from evo.core.trajectory import PoseTrajectory3D  # noqa: E402

from ros2_netvlad.errors import InputError
from ros2_netvlad.geometry import Pose
from ros2_netvlad.sources.rosbag import open_bag, read_poses, stamp_ns
from ros2_netvlad.tables import table_rows

log = logging.getLogger(__name__)
KERNELS = ("cauchy", "dcs", "huber", "none")


@dataclass(frozen=True)
class Closure:
    query_ns: int  # header stamp of the frame that recognised the place
    map_ns: int  # stamp of the map entry it matched
    inliers: int
    score: float


@dataclass(frozen=True)
class SlamConfig:
    loop_sigma_xy: float = 4.0  # m: how far apart two views of "the same place" may be taken
    loop_sigma_z: float = 0.5
    loop_sigma_yaw: float = 0.5  # rad
    loop_sigma_tilt: float = 0.1  # rad (roll, pitch)
    odom_sigma_per_metre: float = 0.05  # translation sigma grows with the step length
    odom_sigma_min: float = 0.02  # m
    odom_sigma_rot: float = 0.02  # rad per step
    kernel: str = "cauchy"
    kernel_width: float = 1.0  # in sigmas of the whitened residual

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise InputError(f"kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")


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
                best = verified[0]
                inliers = int(best["inliers"]) if "inliers" in rows.dtype.names else 0
                map_ns = int(best["map_stamp_sec"]) * 1_000_000_000 + int(best["map_stamp_nanosec"])
                closures.append(Closure(query, map_ns, inliers, float(best["score"])))
    return sorted(set(answered)), closures


def poses_at(bag: str | Path, topic: str, stamps: list[int], tolerance: float = 0.2) -> list[Pose]:
    trajectory = read_poses(bag, topic).trajectory
    poses = [trajectory.at(s, int(tolerance * 1e9)) for s in stamps]
    missing = sum(p is None for p in poses)
    if missing:
        raise InputError(f"{bag}: {topic} has no pose within {tolerance} s of {missing} frames")
    return poses


# --- the graph ----------------------------------------------------------------------------------
def _pose3(pose: Pose) -> gtsam.Pose3:
    x, y, z, w = pose.orientation
    return gtsam.Pose3(gtsam.Rot3.Quaternion(w, x, y, z), gtsam.Point3(*pose.position))


def _robust(base, config: SlamConfig):
    estimators = {
        "cauchy": gtsam.noiseModel.mEstimator.Cauchy,
        "dcs": gtsam.noiseModel.mEstimator.DCS,
        "huber": gtsam.noiseModel.mEstimator.Huber,
    }
    if config.kernel == "none":
        return base
    return gtsam.noiseModel.Robust.Create(
        estimators[config.kernel].Create(config.kernel_width), base
    )


def optimize(
    odometry: list[Pose], links: list[tuple[int, int]], config: SlamConfig = SlamConfig()
) -> np.ndarray:
    """N×3 optimized positions: odometry chain + identity loop factors between node pairs."""
    graph, initial = gtsam.NonlinearFactorGraph(), gtsam.Values()
    poses = [_pose3(p) for p in odometry]
    for i, pose in enumerate(poses):
        initial.insert(i, pose)
    anchor = gtsam.noiseModel.Diagonal.Sigmas(np.full(6, 1e-3))
    graph.add(gtsam.PriorFactorPose3(0, poses[0], anchor))
    for i in range(1, len(poses)):
        step = poses[i - 1].between(poses[i])
        sigma_t = max(
            config.odom_sigma_per_metre * np.linalg.norm(step.translation()), config.odom_sigma_min
        )
        sigmas = np.r_[np.full(3, config.odom_sigma_rot), np.full(3, sigma_t)]
        graph.add(
            gtsam.BetweenFactorPose3(i - 1, i, step, gtsam.noiseModel.Diagonal.Sigmas(sigmas))
        )
    loop = gtsam.noiseModel.Diagonal.Sigmas(
        np.array(
            [config.loop_sigma_tilt, config.loop_sigma_tilt, config.loop_sigma_yaw]
            + [config.loop_sigma_xy, config.loop_sigma_xy, config.loop_sigma_z]
        )
    )
    for earlier, later in links:
        graph.add(gtsam.BetweenFactorPose3(earlier, later, gtsam.Pose3(), _robust(loop, config)))
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(200)
    result = gtsam.LevenbergMarquardtOptimizer(graph, initial, params).optimize()
    return np.array([result.atPose3(i).translation() for i in range(len(poses))])


def link_closures(stamps: list[int], closures: list[Closure], tolerance_ns: int = 100_000_000):
    """(earlier node, later node) for each closure whose two stamps are graph nodes."""
    index = {s: i for i, s in enumerate(stamps)}
    array = np.array(stamps)
    links = []
    for closure in closures:
        j = int(np.argmin(np.abs(array - closure.map_ns)))
        if closure.query_ns in index and abs(array[j] - closure.map_ns) <= tolerance_ns:
            i = index[closure.query_ns]
            if i != j:
                links.append((min(i, j), max(i, j)))
    return links


def with_false_links(
    links: list[tuple[int, int]], fraction: float, positions: np.ndarray, seed: int = 0
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``fraction`` of the links replaced by random false ones (between frames ≥ 50 m apart in
    ground truth): the robustness check. Returns (links, the false ones)."""
    rng = np.random.default_rng(seed)
    count = int(np.ceil(fraction * len(links)))  # at least one whenever fraction > 0
    replaced = set(rng.choice(len(links), count, replace=False).tolist()) if count else set()
    out, false = [], []
    for n, link in enumerate(links):
        if n not in replaced:
            out.append(link)
            continue
        later = link[1]
        far = np.flatnonzero(np.linalg.norm(positions[:later] - positions[later], axis=1) > 50.0)
        if len(far):
            bad = (int(rng.choice(far)), later)
            out.append(bad)
            false.append(bad)
    return out, false


# --- scoring ------------------------------------------------------------------------------------
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
) -> dict:
    """Odometry only vs. optimized with the verified loop closures vs. the same with
    ``false_fraction`` of them replaced by false ones. Writes metrics.json, report.md and
    trajectories.png into ``out``; returns the metrics."""
    out = Path(out)
    stamps, closures = read_closures(inputs.closures, inputs.closures_topic)
    if len(stamps) < 2:
        raise InputError(f"{inputs.closures}: fewer than two answered frames")
    odometry = poses_at(inputs.bag, inputs.odom_topic, stamps)
    truth = np.array([p.position for p in poses_at(inputs.bag, inputs.truth_topic, stamps)])
    links = link_closures(stamps, closures)
    false_links, false = with_false_links(links, false_fraction, truth, seed)
    runs = {
        "odometry_only": np.array([p.position for p in odometry]),
        "with_loop_closures": optimize(odometry, links, config),
        f"with_{false_fraction:.0%}_false_closures": optimize(odometry, false_links, config),
    }
    scored = {name: trajectory_errors(stamps, truth, xyz) for name, xyz in runs.items()}
    wrong = sum(np.linalg.norm(truth[i] - truth[j]) > 25.0 for i, j in links)
    metrics_out = {
        "frames": len(stamps),
        "loop_closures": len(links),
        "false_among_node_closures": int(wrong),  # by ground truth (> 25 m apart)
        "injected_false_closures": len(false),
        "config": asdict(config),
        **{name: {k: v for k, v in s.items() if k != "aligned"} for name, s in scored.items()},
    }
    odom_ate = scored["odometry_only"]["ate_rmse_m"]
    clean_ate = scored["with_loop_closures"]["ate_rmse_m"]
    noisy_ate = list(scored.values())[2]["ate_rmse_m"]
    metrics_out["ate_ratio_to_odometry"] = clean_ate / odom_ate if odom_ate else float("nan")
    metrics_out["ate_ratio_false_to_clean"] = noisy_ate / clean_ate if clean_ate else float("nan")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics_out, indent=2))
    plot = _plot(out, truth, scored, links, false)
    (out / "report.md").write_text(_report(metrics_out, plot))
    return metrics_out


def _plot(out: Path, truth: np.ndarray, scored: dict, links, false) -> str:
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.plot(truth[:, 0], truth[:, 1], "k-", lw=2, label="ground truth")
    styles = {"odometry_only": "r--", "with_loop_closures": "b-"}
    for name, result in scored.items():
        xyz = result["aligned"]
        ax.plot(
            xyz[:, 0],
            xyz[:, 1],
            styles.get(name, "g:"),
            label=f"{name} (ATE {result['ate_rmse_m']:.1f} m)",
        )
    for i, j in links:
        ax.plot(truth[[i, j], 0], truth[[i, j], 1], "c-", lw=0.5, alpha=0.6)
    for i, j in false:
        ax.plot(truth[[i, j], 0], truth[[i, j], 1], "m-", lw=1)
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
        f"kernel {m['config']['kernel']}.",
        "",
        "| trajectory | ATE RMSE (m) | ATE max (m) | RPE RMSE (m/frame) |",
        "|---|---|---|---|",
        *[_row(n, m[n]) for n in rows],
        "",
        f"ATE with loop closures / odometry only: **{m['ate_ratio_to_odometry']:.2f}**; "
        f"with false closures / clean: **{m['ate_ratio_false_to_clean']:.2f}**.",
        "",
        f"![{plot}]({plot})",
    ]
    return "\n".join(lines) + "\n"
