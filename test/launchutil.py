"""`ros2 launch` as a terminal runs it, for the launch tests and benchmarks/reliability.py: its own
session with a pty as controlling terminal, so Ctrl-C is a keystroke and closing the terminal is a
hang-up."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import termios
import threading
from pathlib import Path

from rosutil import executable


class Launch:
    """`ros2 launch ros2_netvlad localize.launch.py ARGUMENTS` in a terminal of its own."""

    def __init__(self, *arguments: str, log_dir: Path) -> None:
        self._master, slave = os.openpty()
        self.process = subprocess.Popen(
            [executable("ros2"), "launch", "ros2_netvlad", "localize.launch.py", *arguments],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_take_terminal,
            env={**os.environ, "ROS_LOG_DIR": str(log_dir)},
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO once the terminal is gone
                return
            if not data:
                return
            self._chunks.append(data)

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    @property
    def node_pid(self) -> int:
        found = re.search(r"netvlad_localizer-1\]: process started with pid \[(\d+)\]", self.output)
        assert found, self.output[-3000:]
        return int(found.group(1))

    def poll(self):
        return self.process.poll()

    def ctrl_c(self) -> None:
        os.write(self._master, b"\x03")  # the terminal sends SIGINT to its foreground group

    def hang_up(self) -> None:
        os.close(self._master)  # the terminal closes: SIGHUP to the session leader
        self._master = -1

    def wait(self, timeout: float = 90.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(timeout=5)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        if self._master >= 0:
            os.close(self._master)
            self._master = -1


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"
