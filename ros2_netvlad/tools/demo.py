"""demo: the README's first command, end to end on real photographs."""

from __future__ import annotations

import argparse
import logging
import sys

from ..demo import DemoConfig, run_demo, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description="Place recognition on a world made of real photos.")
    parser.add_argument("--out", default="demo_output", help="output directory")
    parser.add_argument("--places", type=int, default=DemoConfig.places)
    parser.add_argument("--seed", type=int, default=DemoConfig.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run_demo(args.out, DemoConfig(places=args.places, seed=args.seed))
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
