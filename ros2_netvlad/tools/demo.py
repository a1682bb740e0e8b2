"""demo: the README's first command — the whole system on a world made of real photographs."""

from __future__ import annotations

import argparse
import logging
import sys

from ..demo import DemoConfig, run_demo, summary_text
from ..errors import edge


@edge("demo")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__)
    parser.add_argument(
        "--out",
        default="demo_output",
        help="output directory (re-used: the world and maps are kept)",
    )
    parser.add_argument("--places", type=int, default=DemoConfig.places)
    parser.add_argument("--seed", type=int, default=DemoConfig.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="demo: %(message)s")
    summary = run_demo(args.out, DemoConfig(places=args.places, seed=args.seed))
    print(summary_text(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
