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
    # the README's possibly overlapping distractors (one building's offices, one walk through
    # Lund) share a position per group, so none is another's wrong place; the rest do not
    number = {int(n[7:10]): x for n, x in where.items() if n.startswith("other_d")}
    offices, lund = range(13, 19), range(35, 41)  # d013-d018, d035-d040
    assert len({number[n] for n in offices}) == 1 and len({number[n] for n in lund}) == 1
    others = [x for n, x in number.items() if n not in offices and n not in lund]
    assert len(set(others)) == len(others) == len(number) - 12
    assert number[13] not in others and number[35] not in others and number[13] != number[35]
    (hard.map_folder.parent / "LAYOUT").write_text("1")  # an assembly laid out before: redone
    assert assemble_hard(HARD, tmp_path / "hard") == hard
    assert (hard.map_folder.parent / "LAYOUT").read_text() == "2"
