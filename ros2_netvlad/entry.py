"""Console-script entry points.

Each one imports its program inside a guard: importing torch takes seconds, and a Ctrl-C in that
time must end the program quietly, not with a KeyboardInterrupt traceback from deep inside an import.
That is the reason these imports are made here, by name, and not at the top of the module.
"""

from __future__ import annotations

import importlib
import sys

from .errors import EXIT_INTERRUPTED


def _run(program: str, module: str, interrupted_code: int = EXIT_INTERRUPTED) -> None:
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        print(f"{program}: interrupted while starting", file=sys.stderr)
        sys.exit(interrupted_code)
    sys.exit(main())


def netvlad_localizer() -> None:
    _run("netvlad_localizer", "ros2_netvlad.ros.node", interrupted_code=0)  # Ctrl-C is how a node stops


def replay_bag() -> None:
    _run("replay_bag", "ros2_netvlad.ros.replay")


def replay_eval() -> None:
    _run("replay_eval", "ros2_netvlad.ros.replay_eval")


def import_weights() -> None:
    _run("import_weights", "ros2_netvlad.tools.import_weights")


def build_map() -> None:
    _run("build_map", "ros2_netvlad.tools.build_map")


def evaluate() -> None:
    _run("evaluate", "ros2_netvlad.tools.evaluate")


def train() -> None:
    _run("train", "ros2_netvlad.tools.train")


def fit_pca() -> None:
    _run("fit_pca", "ros2_netvlad.tools.fit_pca")


def demo() -> None:
    _run("demo", "ros2_netvlad.tools.demo")
