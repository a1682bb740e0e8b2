"""What localize.launch.py adds to a plain launch_ros Node, so that `ros2 launch` behaves as robots
and supervisors expect: it stops the node gracefully on SIGTERM and SIGHUP, exits non-zero when the
node failed, and refuses a params file that does not exist. Imported by the launch file only."""

from __future__ import annotations

import os
import signal
import threading

import launch.logging
from launch.actions import Shutdown

try:  # launch's own signal dispatcher (Galactic and later); without it nothing is changed
    from launch.utilities.signal_management import AsyncSafeSignalManager
except ImportError:  # pragma: no cover - older or patched launch
    AsyncSafeSignalManager = None

GRACEFUL = (signal.SIGTERM, signal.SIGHUP)


def stop_gracefully_on_sigterm() -> bool:
    """`ros2 launch` ends at once on SIGTERM (it cancels its run without stopping anything:
    ros2/launch#666) and on SIGHUP (no handler: the default action), orphaning the node, possibly
    in the middle of saving a map. Here both become launch's own Ctrl-C shutdown: SIGINT to the
    node, then waiting for it to exit. launch dispatches signals through its
    AsyncSafeSignalManager, which offers ``handle()`` but no public way to reach the running
    instance: where it cannot be reached (another launch version) nothing changes and False is
    returned — the node still saves when its launcher dies (parent-death signal), and stopping
    with SIGINT (docker STOPSIGNAL, systemd KillSignal) works with any launch."""
    manager = getattr(AsyncSafeSignalManager, "_AsyncSafeSignalManager__current", None)
    if manager is None or threading.current_thread() is not threading.main_thread():
        return False

    def as_ctrl_c(number: int) -> None:
        name = signal.Signals(number).name
        launch.logging.get_logger("launch").warning(f"{name}: stopping as for Ctrl-C")
        os.kill(os.getpid(), signal.SIGINT)

    for number in GRACEFUL:
        manager.handle(number, as_ctrl_c)
        # a Python-level handler, so the signal reaches the manager instead of ending the process
        signal.signal(number, lambda *_: None)
    return True


def require_file(path: str, argument: str) -> str:
    """A launch argument naming a file that must exist (a typo would otherwise run on defaults)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{argument}:={path}: no such file; refusing to launch")
    return path


def end_with_the_node(name: str):
    """An OnProcessExit callback: launch ends when the node ends, and fails (exit code 1) when the
    node did: a node that refused to start (exit 2) or crashed is seen by `&&`, CI and systemd's
    Restart=on-failure. Raising is how a launch file makes `ros2 launch` exit non-zero."""

    def on_exit(event, _context):
        if event.returncode != 0:
            meaning = " (it refused to start: see its line above)" if event.returncode == 2 else ""
            raise RuntimeError(f"{name} exited with code {event.returncode}{meaning}")
        return [Shutdown(reason=f"{name} exited")]

    return on_exit
