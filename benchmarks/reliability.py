"""Reliability trials for a map grown online (loop_closure mode): does any signal sequence lose it?

Four kinds of trial, each with the real node over Fast DDS:
  signals    the node adds keyframes, then gets SIGINT, SIGINT twice (0 / 0.05 / 0.1 / 0.3 / 1 s
             apart), SIGTERM or SIGHUP, or SIGINT after its stdout/stderr reader went away; a trial
             passes when it exits 0 without a traceback and the saved map holds every keyframe.
  launch     the same through the real `ros2 launch` in a pty: Ctrl-C, SIGTERM to launch only,
             SIGTERM to the process group, the terminal closing (SIGHUP), launch SIGKILLed (the
             node follows by its parent-death signal); passes when the exit is 0 (launch's, or the
             node's where launch was killed), every keyframe is on disk, no traceback, and the node
             has exited by the time launch returns.
  autosave   keyframes arrive every 0.5 s with node.autosave_period P; SIGKILL at a random moment;
             the loss is what the node held minus what the map on disk holds, in seconds of driving
             (bound: P + 1 s, as the check runs once a second, + one save).
  kill-save  a process saves a growing map in a loop and is SIGKILLed at random moments; the map on
             disk must always load, holding either the previous or the new count.
Run: `make install && PATH=$PWD/.venv/bin:$PATH AMENT_PREFIX_PATH=$PWD/.venv .venv/bin/python
benchmarks/reliability.py [--trials 10]` (about 25 minutes at 10 trials; the launch trials need the
launch stack, see README).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))  # the pty launcher shared with test_launch.py
PATTERNS = {
    "SIGINT": [signal.SIGINT],
    "SIGTERM": [signal.SIGTERM],
    "SIGHUP": [signal.SIGHUP],
    "SIGINT, stdout/stderr closed": ["close", signal.SIGINT],
    **{
        f"SIGINT x2 {gap:g} s": [signal.SIGINT, gap, signal.SIGINT]
        for gap in (0.0, 0.05, 0.1, 0.3, 1.0)
    },
}


def build_weights(root: Path) -> Path:
    from ros2_netvlad.demo import world
    from ros2_netvlad.demo.run import map_of_bag

    world.write_traversal(root / "bag", world.places(6), seed=1)
    map_of_bag(root / "map", root / "bag", max_side=160, min_distance=5.0)
    return root / "map" / "model.pt"


class Robot:
    """Camera + odometry publisher and loop-closure listener, in this process, under a namespace of
    its own for each trial (a killed node's endpoints linger in the graph for a while)."""

    def __init__(self, namespace: str) -> None:
        import rclpy
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CompressedImage, PointCloud2

        if not rclpy.ok():
            rclpy.init()
        self.namespace = namespace
        self.node = rclpy.create_node("reliability_robot", namespace=namespace)
        self.images = self.node.create_publisher(CompressedImage, "image/compressed", 10)
        self.odom = self.node.create_publisher(Odometry, "odom", 50)
        self.answered: set[int] = set()
        self.node.create_subscription(
            PointCloud2,
            "netvlad_localizer/loop_closures",
            lambda m: self.answered.add(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec),
            50,
        )
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return False

    def keyframe(self, k: int) -> bool:
        """Odometry 10 m further, then an image at the same stamp until the node answers it."""
        import numpy as np
        from nav_msgs.msg import Odometry

        from ros2_netvlad.demo import world
        from ros2_netvlad.ros.conversions import ns_to_stamp, rgb_to_compressed

        stamp = (k + 1) * 10**9
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id = ns_to_stamp(stamp), "map"
        odom.pose.pose.position.x, odom.pose.pose.orientation.w = 10.0 * k, 1.0
        self.odom.publish(odom)
        self.spin_until(lambda: False, 0.3)  # reliable odometry first, so the image finds its pose
        image = rgb_to_compressed(
            world.render_view(world.places(6)[k % 6], np.random.default_rng(k)), ns_to_stamp(stamp)
        )
        for _ in range(20):  # best effort: resend until processed
            self.images.publish(image)
            if self.spin_until(lambda: stamp in self.answered, 1.0):
                return True
        return False


def settings(map_dir: Path, weights: Path, autosave: float) -> dict[str, object]:
    return {
        "node.mode": "loop_closure",
        "node.map": str(map_dir),
        "model.weights": str(weights),
        "model.device": "cpu",
        "model.max_side": 160,
        "node.autosave_period": autosave,
        "keyframes.min_distance": 1.0,
    }


def start_node(
    weights: Path, map_dir: Path, log: Path, autosave: float, namespace: str, pipe: bool = False
):
    args = [str(Path(sys.prefix) / "bin" / "netvlad_localizer"), "--ros-args"]
    args += ["--params-file", str(REPO / "config" / "localize.yaml")]
    for name, value in settings(map_dir, weights, autosave).items():
        args += ["-p", f"{name}:={value}"]
    args += ["-r", f"__ns:={namespace}"]
    output = subprocess.PIPE if pipe else log.open("w")
    return subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)


def wait_ready(robot: Robot, process) -> None:
    ok = robot.spin_until(
        lambda: (
            process.poll() is None
            and robot.images.get_subscription_count() > 0
            and robot.odom.get_subscription_count() > 0
        ),
        120,
    )
    if not ok:
        raise RuntimeError(f"the node did not come up (exit {process.poll()})")


def map_size(path: Path) -> int:
    from ros2_netvlad.maps.database import MapDatabase

    return len(MapDatabase.load(path)) if path.is_dir() else 0


def signal_trial(
    robot: Robot, weights: Path, root: Path, pattern: list, keyframes: int = 4
) -> tuple[bool, str]:
    map_dir, log = root / "map", root / "node.log"
    pipe = "close" in pattern  # the node's output goes to a pipe whose reader then disappears
    if pipe:
        log.write_text("(output to a pipe that was closed)")
    process = start_node(weights, map_dir, log, 0.0, robot.namespace, pipe)
    wait_ready(robot, process)
    added = sum(robot.keyframe(k) for k in range(keyframes))
    for step in pattern:
        if step == "close":
            process.stdout.close()
        elif isinstance(step, float):
            time.sleep(step)  # the gap between two signals is the scenario
        else:
            process.send_signal(step)
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        return False, f"hung (see {log})"
    text = log.read_text()
    saved = map_size(map_dir)
    ok = code == 0 and saved == added and "Traceback" not in text
    return ok, f"exit {code}, {saved}/{added} keyframes saved"


def autosave_trial(
    robot: Robot, weights: Path, root: Path, period: float, rng: random.Random
) -> tuple[float, float]:
    map_dir = root / "map"
    process = start_node(
        weights, map_dir, root / "node.log", autosave=period, namespace=robot.namespace
    )
    wait_ready(robot, process)
    kill_at, added, k = time.monotonic() + rng.uniform(2 * period, 4 * period), 0, 0
    while time.monotonic() < kill_at:
        started = time.monotonic()
        added += robot.keyframe(k)
        k += 1
        robot.spin_until(lambda: False, max(0.0, 0.5 - (time.monotonic() - started)))
    process.kill()
    process.wait()
    lost = added - map_size(map_dir)
    return lost, lost * 0.5


LAUNCH_PATHS = (
    "Ctrl-C",
    "SIGTERM to launch",
    "SIGTERM to the group",
    "terminal closed",
    "launch SIGKILLed",
)


def launch_trial(
    robot: Robot, weights: Path, root: Path, how: str, keyframes: int = 4
) -> tuple[bool, str]:
    import ctypes

    import yaml
    from launchutil import Launch, gone

    shipped = yaml.safe_load((REPO / "config" / "localize.yaml").read_text())
    section = shipped["/**"]["ros__parameters"]
    for name, value in settings(root / "map", weights, 0.0).items():
        group, key = name.split(".")
        section[group][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(shipped))
    ns = robot.namespace.strip("/")
    launch = Launch(
        f"params_file:={root / 'params.yaml'}",
        f"namespace:={ns}",
        f"image_topic:=/{ns}/image",
        log_dir=root / "log",
    )
    libc = ctypes.CDLL(None)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: an orphaned node becomes our child
    try:
        wait_ready(robot, launch)
        added = sum(robot.keyframe(k) for k in range(keyframes))
        node = launch.node_pid
        {
            "Ctrl-C": launch.ctrl_c,
            "SIGTERM to launch": lambda: launch.process.send_signal(signal.SIGTERM),
            "SIGTERM to the group": lambda: os.killpg(launch.process.pid, signal.SIGTERM),
            "terminal closed": launch.hang_up,
            "launch SIGKILLed": launch.process.kill,
        }[how]()
        code = launch.wait(90)
        outlived = not gone(node)
        if how == "launch SIGKILLed":  # the node's own exit, collected as its new parent
            _, status = os.waitpid(node, 0)
            code, outlived = os.waitstatus_to_exitcode(status), False
    except (subprocess.TimeoutExpired, RuntimeError, ChildProcessError) as error:
        return False, f"{type(error).__name__}: {error} (see {root})"
    finally:
        launch.close()
        libc.prctl(36, 0, 0, 0, 0)
    saved = map_size(root / "map")
    clean = "Traceback" not in launch.output
    ok = code == 0 and saved == added and clean and not outlived
    detail = f"exit {code}, {saved}/{added} keyframes saved"
    return ok, detail + (", node outlived launch" if outlived else "")


KILL_SAVE = textwrap.dedent("""
    import sys, numpy as np
    from ros2_netvlad.maps.database import Entry, MapDatabase
    path = sys.argv[1]
    db = MapDatabase.load(path)
    while True:
        db.add(np.random.rand(5, 64).astype(np.float32), [Entry(1, "map", (0, 0, 0))] * 5)
        db.save(path)
        print(len(db), flush=True)
""")


def kill_save_trials(root: Path, trials: int, rng: random.Random) -> tuple[int, int]:
    import numpy as np

    from ros2_netvlad.maps.database import Entry, MapDatabase

    path = root / "map"
    db = MapDatabase.create(64)
    db.add(np.random.rand(5, 64).astype(np.float32), [Entry(1, "map", (0, 0, 0))] * 5)
    db.save(path)
    good = 0
    for _ in range(trials):
        before = map_size(path)
        process = subprocess.Popen(
            [sys.executable, "-c", KILL_SAVE, str(path)], stdout=subprocess.PIPE, text=True
        )
        process.stdout.readline()  # imports done, at least one save finished
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside a later save
        process.kill()
        process.wait()
        try:
            after = map_size(path)
            good += after >= before and (after - before) % 5 == 0
        except Exception as error:  # a map that does not load is exactly what this counts
            print(f"  kill-save: map does not load: {error}")
    return good, trials


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=3, help="trials per signal pattern")
    parser.add_argument("--kill-save-trials", type=int, default=40)
    parser.add_argument("--autosave-trials", type=int, default=3)
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only the trials of these names (as printed)"
    )
    parser.add_argument("--autosave-period", type=float, default=2.0)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault(
        "FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "test" / "fastdds_profile.xml")
    )
    rng = random.Random(0)
    tmp = Path(
        tempfile.mkdtemp(prefix="reliability_")
    )  # kept: node logs of failed trials are in it
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "ros_log"))
    weights = build_weights(tmp / "weights")
    trial = iter(range(10**6))

    def in_own_namespace(run, *run_args):
        robot = Robot(f"/trial{next(trial)}")
        try:
            return run(robot, weights, Path(tempfile.mkdtemp(dir=tmp)), *run_args)
        finally:
            robot.close()

    print("| trial | passed | detail (worst) |\n|---|---|---|")

    def chosen(name: str) -> bool:
        return not args.only or name in args.only

    for name, pattern in filter(lambda item: chosen(item[0]), PATTERNS.items()):
        results = [in_own_namespace(signal_trial, pattern) for _ in range(args.trials)]
        worst = min(results, key=lambda result: result[0])
        print(
            f"| {name} | {sum(ok for ok, _ in results)}/{len(results)} | {worst[1]} |", flush=True
        )
    for how in filter(lambda how: chosen(f"ros2 launch, {how}"), LAUNCH_PATHS):
        results = [in_own_namespace(launch_trial, how) for _ in range(args.trials)]
        worst = min(results, key=lambda result: result[0])
        print(
            f"| ros2 launch, {how} | {sum(ok for ok, _ in results)}/{len(results)} | {worst[1]} |",
            flush=True,
        )
    losses = [
        in_own_namespace(autosave_trial, args.autosave_period, rng)
        for _ in range(args.autosave_trials)
    ]
    worst = max(seconds for _, seconds in losses)
    print(
        f"| SIGKILL, autosave every {args.autosave_period:g} s | worst loss {worst:.1f} s of "
        f"driving "
        f"({max(n for n, _ in losses)} keyframes) | bound: period + 1 s (checked once a second) + "
        f"one save |"
    )
    good, total = kill_save_trials(Path(tempfile.mkdtemp(dir=tmp)), args.kill_save_trials, rng)
    print(f"| SIGKILL during save | {good}/{total} maps load with the old or new count | |")
    print(f"node logs: {tmp}")


if __name__ == "__main__":
    main()
