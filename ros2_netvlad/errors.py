"""The package's one base error, and the guard every edge (the node, every tool) runs behind.

A ``NetVLADError`` is a problem the user can fix: a bad setting, a missing or unreadable file, a map
made by another model, a device that is not there. Its message names the problem, so an edge prints
it
as one line and exits with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable

EXIT_USAGE = 2  # what argparse uses for bad arguments; ours for every refusal
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


def say(message: str) -> None:
    """A message to stderr that never raises: the terminal or the launcher's pipe may be gone."""
    try:
        os.write(2, message.encode())
    except OSError:
        pass


class NetVLADError(Exception):
    """Base of every error the package raises on purpose."""


class InputError(NetVLADError, ValueError):
    """An argument or input the caller gave is unusable; the message says which and why."""


class DeviceError(NetVLADError, RuntimeError):
    """The requested device or precision is not available on this machine."""


def edge(program: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorates a tool's ``main``: a NetVLADError becomes ``program: message`` on stderr and exit
    code 2; Ctrl-C becomes ``program: interrupted`` and exit code 130, without a traceback."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def guarded(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except NetVLADError as error:
                print(f"{program}: {error}", file=sys.stderr)
                return EXIT_USAGE
            except KeyboardInterrupt:
                print(f"{program}: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED

        return guarded

    return wrap
