"""Node overhead: end-to-end latency (image published → ~/loop_closures received) minus the time the
model and the map search take, p50/p95 at 640x480, for 10 Hz and 30 Hz input.

The localizer node runs in this process; the camera/consumer probe runs in another process, as on a
robot, and messages cross Fast DDS.
Per frame the node records when it received, decoded, described + searched, and published, so
    overhead = end-to-end − (describe + search)
covers transport both ways, decoding, the wait for the worker, message building and publishing.
Target: overhead p95 ≤ 5 ms. Run: `make install && .venv/bin/python benchmarks/node_latency.py`.
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
from pathlib import Path

import numpy as np


def build_small_map(root: Path, backbone: str) -> Path:
    from ros2_netvlad.demo import world
    from ros2_netvlad.demo.run import map_of_bag

    world.write_traversal(root / "bag", world.places(10), seed=1, size=(640, 480))
    pretrained = backbone == "efficientnet_lite0"
    return map_of_bag(
        root / "map",
        root / "bag",
        backbone=backbone,
        num_clusters=16,
        max_side=640,
        pretrained=pretrained,
    )


def probe(rate_hz: float, frames: int, out: Path) -> None:
    """The camera and the consumer, in a process of their own (as on a robot): publishes 640x480
    images at ``rate_hz`` and records when each one was sent and when its candidates came back."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, PointCloud2

    from ros2_netvlad.demo import world
    from ros2_netvlad.ros.conversions import ns_to_stamp, rgb_to_image

    rclpy.init()
    node = rclpy.create_node("latency_probe")
    publisher = node.create_publisher(Image, "image", 10)
    sent, received = {}, {}
    node.create_subscription(
        PointCloud2,
        "netvlad_localizer/loop_closures",
        lambda m: received.setdefault(
            m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, time.monotonic()
        ),
        100,
    )
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def spin_until(when: float) -> None:  # one thread: spinning fills the waits between frames
        while (left := when - time.monotonic()) > 0:
            executor.spin_once(timeout_sec=min(left, 0.005))

    deadline = time.monotonic() + 60
    while (
        publisher.get_subscription_count() == 0
        or node.count_publishers("netvlad_localizer/loop_closures") == 0
    ) and time.monotonic() < deadline:
        spin_until(time.monotonic() + 0.01)
    rng = np.random.default_rng(0)
    messages = [
        rgb_to_image(world.render_view(p, rng, size=(640, 480), changed=True), ns_to_stamp(0))
        for p in world.places(10)
    ]
    start = time.monotonic()
    for k in range(frames):
        msg = messages[k % len(messages)]
        msg.header.stamp = ns_to_stamp(k + 1)
        sent[k + 1] = time.monotonic()
        publisher.publish(msg)
        spin_until(start + (k + 1) / rate_hz)
    spin_until(time.monotonic() + 1.0)
    out.write_text(json.dumps({"sent": sent, "received": received}))
    node.destroy_node()
    rclpy.try_shutdown()


def run(
    map_dir: Path,
    rate_hz: float,
    frames: int,
    device: str,
    max_side: int,
    reliability: str = "best_effort",
) -> dict[str, np.ndarray]:
    """The node in this process; the probe in another (CLOCK_MONOTONIC is shared between
    processes)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from ros2_netvlad.ros.node import LocalizerNode

    rclpy.init()
    localizer = LocalizerNode(
        parameter_overrides=[
            Parameter("node.map", value=str(map_dir)),
            Parameter("model.device", value=device),
            Parameter("model.max_side", value=max_side),
            Parameter("node.image_reliability", value=reliability),
        ]
    )
    executor = SingleThreadedExecutor()
    executor.add_node(localizer)
    threading.Thread(target=executor.spin, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "probe.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--probe",
                "--rate",
                str(rate_hz),
                "--frames",
                str(frames),
                "--probe-out",
                str(result),
            ],
            check=True,
        )
        probed = json.loads(result.read_text())
    sent = {int(k): v for k, v in probed["sent"].items()}
    received = {int(k): v for k, v in probed["received"].items()}
    timings = {t[0]: t for t in localizer.timings}
    executor.shutdown()
    localizer.close()
    localizer.destroy_node()
    rclpy.try_shutdown()
    stamps = [s for s in sent if s in received and s in timings]
    end_to_end = np.array([received[s] - sent[s] for s in stamps]) * 1000
    compute = np.array([timings[s][3] - timings[s][2] for s in stamps]) * 1000
    waited = np.array([timings[s][2] - timings[s][1] for s in stamps]) * 1000
    transport_in = np.array([timings[s][1] - sent[s] for s in stamps]) * 1000
    out = np.array([received[s] - timings[s][3] for s in stamps]) * 1000
    return {
        "end_to_end": end_to_end,
        "compute": compute,
        "overhead": end_to_end - compute,
        "worker_wait": waited,
        "transport_in": transport_in,
        "publish_out": out,
        "processed": np.array([len(stamps)]),
        "sent": np.array([len(sent)]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="mobilenet_v3_large")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--max-side",
        type=int,
        default=320,
        help="network input size; on a 2-core CPU 640 px inference is slower than 10 Hz",
    )
    parser.add_argument(
        "--image-reliability",
        default="reliable",
        choices=["best_effort", "reliable"],
        help="node.image_reliability (raw 640x480 frames lose fragments best effort)",
    )
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--probe-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.rate, args.frames, args.probe_out)
        return
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ROS_LOG_DIR", tmp)
        map_dir = build_small_map(Path(tmp), args.backbone)
        print(
            f"{args.backbone}, 640x480 rgb8 Image (network input {args.max_side} px), "
            f"{args.frames} frames "
            f"per rate, device {args.device}; all times ms"
        )
        print(
            f"{'rate':>6}{'processed':>11}{'e2e p50/p95':>14}{'model+search p50':>18}"
            f"{'overhead p50/p95':>18}"
            f"{'  transport in p95':>19}{'  decode+wait p95':>18}{'  publish+out p95':>18}"
        )
        for rate in (10.0, 30.0):
            r = run(map_dir, rate, args.frames, args.device, args.max_side, args.image_reliability)
            p = lambda key, q: np.percentile(r[key], q)  # noqa: E731
            print(
                f"{rate:>4.0f}Hz{int(r['processed'][0]):>6}/{int(r['sent'][0]):<4}"
                f"{p('end_to_end', 50):>7.1f}/{p('end_to_end', 95):<6.1f}{p('compute', 50):>18.1f}"
                f"{p('overhead', 50):>11.1f}/{p('overhead', 95):<6.1f}"
                f"{p('transport_in', 95):>19.1f}"
                f"{p('worker_wait', 95):>18.1f}{p('publish_out', 95):>18.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
