"""Stop paths of the node itself, over real rclpy and real processes: its launcher dies without a
word (Linux parent-death signal), and its stdout/stderr go away before it is stopped (a closed
terminal, a dead launcher's pipe). Each time: the grown map is saved whole and the exit is clean.
The launch-level paths (Ctrl-C, SIGTERM, SIGHUP to `ros2 launch`) are in test_launch.py; the
health figures /diagnostics reports are checked here without waiting."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

import pytest
from rclpy.parameter import Parameter
from test_node_lifecycle import REMAPS

from nodeutil import grow
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.ros import params
from ros2_netvlad.ros.health import Health
from rosutil import node_command, ros_session

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    yield from ros_session(tmp_path_factory.mktemp("ros_log"), "stop_paths_client")


def node_command_for(small_map, new_map) -> list[str]:
    params = {
        "node.mode": "loop_closure",
        "node.map": new_map,
        "model.weights": small_map / "model.pt",
        "model.device": "cpu",
        "model.max_side": 320,
        "node.autosave_period": 0.0,  # only the stop itself saves
    }
    return node_command(params, REMAPS)


class Orphan:
    """The node started by a middle process (a stand-in launcher); this test process is a child
    subreaper, so when the middle dies the orphaned node becomes our child and its exit status
    can be read."""

    def __init__(self, command: list[str], log) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        starter = "import subprocess, sys; p = subprocess.Popen(sys.argv[1:]); print(p.pid, flush=True); p.wait()"  # noqa: E501
        self.middle = subprocess.Popen(
            [sys.executable, "-c", starter, *command],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.pid = int(self.middle.stdout.readline())
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # still the middle's child (it is alive)
                return None
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.returncode


def test_a_launcher_that_dies_takes_the_node_down_cleanly(ros, small_map, tmp_path):
    new_map, log = tmp_path / "online_map", open(tmp_path / "node.log", "w")
    orphan = Orphan(node_command_for(small_map, new_map), log)
    try:
        grow(ros, orphan)
        orphan.middle.kill()  # SIGKILL: the launcher passes nothing on
        orphan.middle.wait(10)
        assert orphan.wait(60) == 0, (tmp_path / "node.log").read_text()[-3000:]
    finally:  # nothing may outlive the test, whatever failed
        if orphan.middle.poll() is None:
            orphan.middle.kill()
            orphan.middle.wait(10)
        if orphan.poll() is None:
            os.kill(orphan.pid, signal.SIGKILL)
            orphan.wait(10)
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    assert len(MapDatabase.load(new_map)) == 3


@pytest.mark.parametrize("how", ["sigint", "sigterm", "sighup"])
def test_closed_stdout_and_stderr_do_not_turn_a_clean_stop_into_a_failure(
    ros, small_map, tmp_path, how
):
    new_map = tmp_path / "online_map"
    process = subprocess.Popen(
        node_command_for(small_map, new_map), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        grow(ros, process)
        process.stdout.close()  # the reader is gone: every write now fails (EPIPE)
        process.send_signal(getattr(signal, how.upper()))
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert len(MapDatabase.load(new_map)) == 3


def test_the_rate_decays_to_zero_and_the_level_warns_after_image_timeout():
    health = Health(window=10.0)
    for n in range(20):  # 2 Hz for ten seconds
        health.frame_done(received=n * 0.5 - 0.1, published=n * 0.5)
    assert health.rate(now=9.6) == pytest.approx(2.0, rel=0.1)
    assert health.rate(now=15.0) == pytest.approx(1.0, rel=0.15)  # half the window is silent
    assert health.rate(now=25.0) == 0.0
    assert health.latency_ms(50) == pytest.approx(100.0)
    assert Health.level(now=12.0, last_image=9.5, image_timeout=10.0) == ("OK", "localizing")
    level, message = Health.level(now=20.0, last_image=9.5, image_timeout=10.0)
    assert level == "WARN" and message.startswith("no image for 10 s"), message
    assert Health.level(now=1e6, last_image=9.5, image_timeout=0.0)[0] == "OK"  # 0 = never
    assert Health.level(now=1.0, last_image=None, image_timeout=10.0)[0] == "WARN"


def test_the_integer_override_is_widened_only_for_doubles():
    class Fake:
        _parameter_overrides = {
            "localizer.nms_radius": Parameter("localizer.nms_radius", value=2),
            "localizer.top_k": Parameter("localizer.top_k", value=3),
        }

    params._widen_integer_overrides(Fake)
    assert Fake._parameter_overrides["localizer.nms_radius"].value == 2.0
    assert Fake._parameter_overrides["localizer.nms_radius"].type_ == Parameter.Type.DOUBLE
    assert Fake._parameter_overrides["localizer.top_k"].type_ == Parameter.Type.INTEGER
