"""SIGINT, SIGTERM, SIGHUP and the launcher's death → one orderly shutdown that nothing interrupts.

rclpy's own handlers shut the context down at the first signal and let the next one raise
KeyboardInterrupt wherever the main thread happens to be, e.g. in the middle of saving a map. Here
the first signal only asks for a shutdown; the ones after it (a terminal and `ros2 launch` both send
SIGINT, impatient users press Ctrl-C twice) are acknowledged and otherwise ignored, so the final
save always completes. Before the node is up there is nothing to save, and a signal simply aborts
the start (as KeyboardInterrupt).

The ways a robot stops a node all arrive here: Ctrl-C and `ros2 launch` (SIGINT), `docker stop`,
systemd and most supervisors (SIGTERM), a closed terminal or SSH session (SIGHUP), and a launcher
that dies without passing anything on (Linux parent-death signal, set to SIGTERM). Nothing here may
fail because stdout or stderr went away with the terminal or the launcher.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Callable

from rclpy.executors import Executor

from ros2_netvlad.errors import say

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def follow_parent(number: int = signal.SIGTERM) -> bool:
    """Asks Linux to send ``number`` when the process that started this one ends (an orphaned
    node would otherwise run on and never save). False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(number), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent ended before the request took effect
        os.kill(os.getpid(), number)
    return True


def quiet_broken_streams() -> None:
    """stdout/stderr pointing at a closed terminal or pipe: flushed now, or pointed at /dev/null so
    Python's final flush cannot turn a clean exit into exit code 120 or a traceback."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass


class ShutdownSignals:
    """The handlers only set a flag and write to stderr: a handler runs on the main thread between
    two bytecodes, possibly inside another handler (two Ctrl-C at once), so it must never take a
    lock — an ``Event.set`` there deadlocked the node when a second SIGINT arrived inside the
    first one's ``set``."""

    def __init__(self, program: str, finishing: str = "") -> None:
        """``finishing``: what a repeated signal waits for, in words (e.g. "saving the map")."""
        self.program, self.finishing = program, finishing
        self.requested = False
        self.number = 0  # the first signal received
        self._running = False

    def install(self) -> "ShutdownSignals":
        # a launcher may hand them down blocked (ours does, to stop gracefully itself)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for number in STOP_SIGNALS:
            signal.signal(number, self._on_signal)
        follow_parent(signal.SIGTERM)
        return self

    def ignore(self) -> None:
        """Everything is saved and shut down; only interpreter teardown (about a second, with torch
        and DDS) is left. rclpy.try_shutdown resets the handlers to the default (a late Ctrl-C would
        then end the process as killed by SIGINT), and Python resets its own handlers early in
        teardown, but it leaves an ignored signal ignored. SIGKILL still ends a teardown that
        hangs."""
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)

    def running(self) -> None:
        """The node is up: from now on a signal requests a shutdown instead of aborting."""
        self._running = True

    def wait(self, alive: Callable[[], bool], poll: float = 0.25) -> None:
        """Blocks until a shutdown is requested or ``alive()`` turns false (polled: no lock that a
        handler could need is ever held here)."""
        while alive() and not self.requested:
            time.sleep(poll)  # a signal interrupts the sleep and runs its handler at once
        # whatever ended the wait, signals from here on must not interrupt the shutdown
        self.running()

    def _on_signal(self, number: int, _frame) -> None:
        already = self.requested
        self.requested = True  # also while starting: an interrupt raised in code that swallows
        self.number = self.number or number
        if not self._running:  # exceptions (a __del__, a callback) must still stop the node once up
            raise KeyboardInterrupt
        name = signal.Signals(number).name
        message = f"[{self.program}] {name}: shutting down\n"
        if already:
            finishing = f", {self.finishing} first" if self.finishing else ""
            message = f"[{self.program}] {name} again: already shutting down{finishing}\n"
        say(message)  # not logging: a handler may run while a logging lock is held


class Spinner:
    """Spins an executor in a thread until told to stop, then is joined: the executor is shut down
    only once nothing waits on it (shutting it down under a thread blocked in its wait set aborts
    the process)."""

    def __init__(self, executor: Executor) -> None:
        self.executor, self._stop = executor, threading.Event()
        self._thread = threading.Thread(target=self._spin, name="ros_executor", daemon=True)

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.1)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10.0)
        if not self._thread.is_alive():
            self.executor.shutdown(timeout_sec=5.0)
