"""Console-script entry points.

Each one imports its program inside a guard: importing torch takes seconds, and a Ctrl-C in that
time must end the program quietly, not with a KeyboardInterrupt traceback from deep inside an
import.
That is the reason these imports are made here, by name, and not at the top of the module.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Callable

from ros2_netvlad.errors import EXIT_INTERRUPTED, say

# console script → module whose main(argv=None) it runs
PROGRAMS = {
    "netvlad_localizer": "ros2_netvlad.ros.node",
    "replay_bag": "ros2_netvlad.ros.replay",
    "replay_eval": "ros2_netvlad.tools.replay_eval",
    "import_weights": "ros2_netvlad.tools.import_weights",
    "build_map": "ros2_netvlad.tools.build_map",
    "evaluate": "ros2_netvlad.tools.evaluate",
    "train": "ros2_netvlad.tools.train",
    "fit_pca": "ros2_netvlad.tools.fit_pca",
    "slam_eval": "ros2_netvlad.tools.slam_eval",
    "export_model": "ros2_netvlad.tools.export_model",
    "demo": "ros2_netvlad.tools.demo",
}


def _leave_at_once(message: str, code: int) -> None:
    """Ends the process without interpreter teardown. An interrupt inside an import can leave a
    C extension half initialized (torch, its OpenMP runtime, faiss), and its destructors at exit
    may then abort the process (SIGABRT instead of the exit code). Nothing has been written yet, so
    there is nothing to finalize."""
    say(message)
    os._exit(code)


def _entry_point(program: str) -> Callable[[], None]:
    # Ctrl-C is how a node stops, so the node reports it as success; tools use the shell's
    # convention.
    interrupted_code = 0 if program == "netvlad_localizer" else EXIT_INTERRUPTED

    def run() -> None:
        try:
            main = importlib.import_module(PROGRAMS[program]).main
        except KeyboardInterrupt:
            _leave_at_once(f"{program}: interrupted while starting\n", interrupted_code)
        sys.exit(main())

    run.__name__ = program
    return run


netvlad_localizer = _entry_point("netvlad_localizer")
replay_bag = _entry_point("replay_bag")
replay_eval = _entry_point("replay_eval")
import_weights = _entry_point("import_weights")
build_map = _entry_point("build_map")
evaluate = _entry_point("evaluate")
train = _entry_point("train")
fit_pca = _entry_point("fit_pca")
slam_eval = _entry_point("slam_eval")
export_model = _entry_point("export_model")
demo = _entry_point("demo")
