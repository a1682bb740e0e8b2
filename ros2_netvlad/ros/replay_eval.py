"""replay_eval: a query bag through the live node, scored against the bag's ground truth.

Starts netvlad_localizer (same parameters as the launch file) in a ROS domain of its own, replays
the bag's image topic, records ~/loop_closures and ~/pose_prior, stops the node cleanly and writes
the evaluation report plus latency, throughput and pose-prior error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ..bags import PoseLookup, frames, open_bag, stamp_ns
from ..config import params_block, write_resolved_config
from ..database import MapDatabase, map_geo_origin
from ..errors import NetVLADError, edge
from ..evaluation import retrieval_metrics
from ..geometry import angle_between
from ..report import summary_table, write_report


def default_params_file() -> Path:
    """The installed config/localize.yaml (as the launch file uses), else the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("ros2_netvlad")) / "config" / "localize.yaml"
        if installed.is_file():
            return installed
    except (ImportError, LookupError, ValueError, OSError):  # no ament index: use the source tree
        pass
    return Path(__file__).resolve().parents[2] / "config" / "localize.yaml"


def ground_truth(
    bag: Path, image_topic: str, poses: PoseLookup
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    truth = {}

    def record(pose, stamp) -> bool:
        truth[stamp] = (pose.position, pose.orientation)
        return False  # nothing decoded

    for _ in frames(bag, image_topic, poses, record, Counter()):
        pass
    return truth


def header_stamps(bag: Path, topic: str) -> dict[int, int]:
    """Bag log time → header stamp of each image message (to match publish times with outputs)."""
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return {
            t: stamp_ns(reader.deserialize(raw, c.msgtype).header)
            for c, t, raw in reader.messages(connections=connections)
        }


def node_parameters(params: Path | None) -> dict:
    """The node's parameters from the shipped params file and ``params`` (later wins), as given."""
    import yaml

    merged: dict = {}
    for path in [default_params_file(), *([params] if params else [])]:
        for section, values in params_block(yaml.safe_load(Path(path).read_text()) or {}).items():
            merged.setdefault(section, {}).update(values if isinstance(values, dict) else {})
    return merged


def start_node(
    map_dir: Path,
    image_topic: str,
    params: Path | None,
    device: str,
    max_side: int,
    top_k: int,
    log: Path,
) -> subprocess.Popen:
    remap = "image/compressed" if image_topic.endswith("/compressed") else "image"
    args = [
        sys.executable,
        "-m",
        "ros2_netvlad.ros.node",
        "--ros-args",
        "--params-file",
        str(default_params_file()),
    ]
    if params:
        args += ["--params-file", str(params)]
    args += [
        "-p",
        f"node.map:={map_dir}",
        "-p",
        f"model.device:={device}",
        "-p",
        f"model.max_side:={max_side}",
        "-p",
        f"localizer.top_k:={top_k}",
        "-r",
        f"{remap}:={image_topic}",
    ]
    return subprocess.Popen(
        args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=dict(os.environ)
    )


def replay_evaluate(
    map_dir: Path,
    bag: Path,
    image_topic: str,
    poses: PoseLookup,
    out: Path,
    rate: float = 1.0,
    threshold: float = 25.0,
    params: Path | None = None,
    device: str = "auto",
    max_side: int = 0,
    top_k: int = 20,
    ready_timeout: float = 180.0,
) -> dict:
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import PointCloud2

    from .conversions import cloud_to_candidates
    from .replay import BagReplayer

    out.mkdir(parents=True, exist_ok=True)
    database = MapDatabase.load(map_dir)
    truth = ground_truth(bag, image_topic, poses)
    stamps_by_log_time = header_stamps(bag, image_topic)
    node = start_node(map_dir, image_topic, params, device, max_side, top_k, out / "node.log")
    rclpy.init()
    published, received, tables, priors = {}, {}, {}, {}
    try:
        recorder = rclpy.create_node("replay_eval_recorder")
        recorder.create_subscription(
            PointCloud2,
            "/netvlad_localizer/loop_closures",
            lambda m: _record(m, received, tables, cloud_to_candidates),
            1000,
        )
        recorder.create_subscription(
            PoseWithCovarianceStamped,
            "/netvlad_localizer/pose_prior",
            lambda m: priors.setdefault(_key(m), m),
            1000,
        )
        replayer = BagReplayer(bag, [image_topic], rate=rate)
        replayer.on_publish = lambda t: published.setdefault(
            stamps_by_log_time[t], time.monotonic()
        )
        executor = SingleThreadedExecutor()
        executor.add_node(recorder)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        _wait_ready(node, replayer, recorder, ready_timeout, out / "node.log")
        started = time.monotonic()
        replayer.play()
        _drain(received, published, node)
        duration = time.monotonic() - started
    finally:
        node.send_signal(2)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
        rclpy.try_shutdown()
    return _score(
        database, truth, published, received, tables, priors, duration, threshold, out, bag.name
    )


def _key(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _record(msg, received, tables, decode) -> None:
    key = _key(msg)
    received.setdefault(key, time.monotonic())
    tables.setdefault(key, decode(msg).copy())


def _wait_ready(node, replayer, recorder, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise NetVLADError(
                f"the node exited with code {node.returncode}: {log.read_text()[-2000:]}"
            )
        if (
            replayer.subscribers_ready(0.1)
            and recorder.count_publishers("/netvlad_localizer/loop_closures") > 0
        ):
            return
    raise NetVLADError(f"the node did not come up within {timeout:.0f} s (see {log})")


def _drain(received: dict, published: dict, node, quiet: float = 3.0, limit: float = 120.0) -> None:
    """Waits until every published frame has an output, or none came for ``quiet`` seconds."""
    deadline, last_count, last_change = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline and len(received) < len(published) and node.poll() is None:
        if len(received) != last_count:
            last_count, last_change = len(received), time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return
        time.sleep(0.05)


def _score(
    database, truth, published, received, tables, priors, duration, threshold, out, name
) -> dict:
    processed = [s for s in published if s in received and s in truth]
    if not processed:
        raise NetVLADError("the node produced no output for the replayed images (see node.log)")
    k = max((len(tables[s]) for s in processed), default=1) or 1
    positions = np.full((len(processed), k, 3), np.nan)
    scores = np.full((len(processed), k), -np.inf)
    for i, s in enumerate(processed):
        t = tables[s]
        positions[i, : len(t)] = np.stack([t["x"], t["y"], t["z"]], axis=1)
        scores[i, : len(t)] = t["score"]
    query_positions = np.stack([truth[s][0] for s in processed])
    metrics, per_query = retrieval_metrics(
        positions, scores, query_positions, database.positions(), threshold
    )
    latencies = np.array([received[s] - published[s] for s in processed]) * 1000
    metrics.update(
        {
            "processed_frames": len(processed),
            "published_frames": len(published),
            "dropped_frames": len(published) - len([s for s in published if s in received]),
            "throughput_hz": round(len(processed) / duration, 3) if duration else 0.0,
            "latency_p50_ms": float(np.percentile(latencies, 50)),
            "latency_p95_ms": float(np.percentile(latencies, 95)),
            "latency_max_ms": float(latencies.max()),
        }
    )
    metrics.update(_prior_errors(priors, truth))
    live = {
        k: metrics[k]
        for k in ("published_frames", "processed_frames", "dropped_frames", "throughput_hz")
    }
    live.update(
        {k: f"{metrics[k]:.1f}" for k in ("latency_p50_ms", "latency_p95_ms", "latency_max_ms")}
    )
    prior = {
        k: (f"{v:.2f}" if isinstance(v, float) else v)
        for k, v in metrics.items()
        if k.startswith("pose_prior")
    }
    write_report(
        out,
        f"Replay evaluation of {name} through the live node",
        metrics,
        per_query,
        database.positions(),
        query_positions,
        {"Live node": live, "Pose prior": prior},
        latencies_ms=latencies,
    )
    return metrics


def _prior_errors(priors: dict, truth: dict) -> dict:
    pairs = [(m, truth[s]) for s, m in priors.items() if s in truth]
    if not pairs:
        return {"pose_prior_count": 0}
    position = np.array(
        [
            np.linalg.norm(
                np.array([m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z])
                - gt[0]
            )
            for m, gt in pairs
        ]
    )
    angle = np.degrees(
        [
            angle_between(
                np.array(
                    [
                        m.pose.pose.orientation.x,
                        m.pose.pose.orientation.y,
                        m.pose.pose.orientation.z,
                        m.pose.pose.orientation.w,
                    ]
                ),
                gt[1],
            )
            for m, gt in pairs
        ]
    )
    out = {"pose_prior_count": len(pairs)}
    for q in (50, 90, 95):
        out[f"pose_prior_error_m_p{q}"] = float(np.percentile(position, q))
        out[f"pose_prior_error_deg_p{q}"] = float(np.percentile(angle, q))
    return out


@edge("replay_eval")
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="replay_eval", description=__doc__)
    p.add_argument("--map", required=True, type=Path)
    p.add_argument(
        "--bag", required=True, type=Path, help="query rosbag2 with images and ground truth"
    )
    p.add_argument("--image-topic", required=True)
    p.add_argument("--pose-topic")
    p.add_argument("--tf-frames", nargs=2, metavar=("MAP", "CAMERA"))
    p.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    p.add_argument("--threshold", type=float, default=25.0)
    p.add_argument(
        "--params", type=Path, help="extra node params file (after config/localize.yaml)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--max-side", type=int, default=0, help="longest image side; 0 = the map's (recommended)"
    )
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    if bool(args.pose_topic) == bool(args.tf_frames):
        p.error("give exactly one of --pose-topic and --tf-frames")
    # A ROS domain of our own, so the evaluation neither hears nor disturbs a running robot.
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="replay_eval_log_"))
    metrics = replay_evaluate(
        args.map,
        args.bag,
        args.image_topic,
        PoseLookup(
            args.pose_topic or "",
            tuple(args.tf_frames) if args.tf_frames else None,
            origin=map_geo_origin(args.map),  # GNSS fixes as metres around the map's origin
        ),
        args.out,
        args.rate,
        args.threshold,
        args.params,
        args.device,
        args.max_side,
    )
    print(summary_table(metrics))
    print(
        f"processed {metrics['processed_frames']}/{metrics['published_frames']} frames, latency "
        f"p50 "
        f"{metrics['latency_p50_ms']:.0f} ms / p95 {metrics['latency_p95_ms']:.0f} ms"
    )
    print(f"report: {args.out / 'report.md'}")
    (args.out / "command.json").write_text(json.dumps(vars(args), default=str, indent=2))
    write_resolved_config(args.out, arguments=vars(args), node=node_parameters(args.params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
