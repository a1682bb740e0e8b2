"""The harder real set (../shared/realset-hard, read from there): laid out for the folder tools
with one query folder per difficulty, every query's place in the map, distractors in the map."""

from __future__ import annotations

import csv
from pathlib import Path

from ros2_netvlad.evaluation.realset_hard import DIFFICULTY, GROUPS, assemble_hard

HARD = Path(__file__).resolve().parents[1].parent / "shared" / "realset-hard"


def _rows(folder: Path) -> list[dict]:
    return list(csv.DictReader(open(folder / "poses.csv")))


def test_the_hard_set_is_laid_out_by_difficulty(tmp_path):
    assert HARD.is_dir(), f"{HARD} is missing: CI keeps ../shared beside the checkout"
    hard = assemble_hard(HARD, tmp_path / "hard")
    places = sorted(p.name for p in (HARD / "pairs").iterdir() if p.is_dir())
    assert sorted(DIFFICULTY) == places  # every place has its README difficulty
    map_rows = _rows(hard.map_folder)
    assert len(map_rows) == len(places) + len(list((HARD / "distractors").glob("*.jpg")))
    where = {r["name"].removesuffix(".png"): float(r["x"]) for r in map_rows}
    queries = 0
    for group in GROUPS:
        for row in _rows(hard.query_folders[group]):
            place = row["name"].rsplit("_", 1)[0]
            assert DIFFICULTY[place] == group and where[place] == float(row["x"])
            assert (hard.query_folders[group] / row["name"]).is_file()
            queries += 1
    assert queries == sum(len(list((HARD / "pairs" / p).glob("*.jpg"))) - 1 for p in places)
    assert assemble_hard(HARD, tmp_path / "hard") == hard  # a complete one is reused
