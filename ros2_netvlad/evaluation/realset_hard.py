"""The harder real set, ``../shared/realset-hard`` (26 places under strong change and 42
distractors, real photographs; sources and licences in its README and sources.csv, several
non-commercial): read from there, never copied into the repository.

Laid out for the folder tools like the development set (realset.py): the map gets the first image
of each place (``a.jpg``) and every distractor; the queries are the place's other images, in one
folder per difficulty the set's README gives the place (``queries/hard``, ``queries/medium``,
``queries/easy``), so ``evaluate --images`` over the three reports recall per group. Positions are
synthetic: place i at x = 100·i m, distractors beyond them; the distractors the README says may
overlap one another (six offices of one building, frames of one walk through Lund) share one
position per group, so no tool takes two of them for different places (the map's look-alike
measurement would otherwise count a possibly true pair as a wrong one)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2

from ros2_netvlad.errors import InputError
from ros2_netvlad.evaluation.realset import PLACE_SPACING, _poses_csv, _write, default_location

# the README's difficulty per place (its "difficulty" column, first word)
DIFFICULTY = {
    "aachen_bookshop_day_night": "hard",
    "admiralty_arch": "hard",  # "medium-hard"
    "amsterdam_building": "easy",  # "easy-medium"
    "berlin_cathedral": "medium",
    "british_museum": "hard",
    "eth3d_playground": "hard",
    "eth3d_terrace": "easy",
    "ettlingen_castle_courtyard": "hard",
    "fox_wall_indoor": "hard",  # "medium-hard"
    "harbour_boats": "medium",
    "herz_jesu_church": "medium",
    "indoor_room_painting": "hard",
    "kitchen_table_indoor": "hard",  # "medium-hard"
    "madrid_royal_palace": "hard",  # "medium-hard"
    "nle_tower": "hard",
    "nyu_basement_indoor": "medium",
    "oxford_street_traffic_island": "hard",
    "oxford_street_white_building": "hard",
    "sacre_coeur": "hard",
    "sagrada_familia": "hard",
    "sceaux_castle": "medium",
    "st_pancras_statue": "medium",
    "st_peters_basilica": "hard",
    "stadium_aerial": "hard",
    "stone_facade_entrance": "easy",
    "toronto_university": "hard",
}
GROUPS = ("hard", "medium", "easy")
# distractor numbers (dNNN) that may overlap one another, per the README: one position per group
SHARED_PLACE = (range(13, 19), range(35, 41))
LAYOUT = "2"  # 2: overlapping distractors share a position (1 gave each its own)


@dataclass(frozen=True)
class HardSet:
    map_folder: Path
    query_folders: dict[str, Path]  # difficulty → folder


def assemble_hard(root: str | Path, out: str | Path | None = None) -> HardSet:
    """From ``root`` (the checkout's ``../shared/realset-hard``) writes ``out/map`` and
    ``out/queries/<difficulty>`` (PNG + poses.csv, longest side 640 px); reuses a complete
    earlier one."""
    root = Path(root)
    out = Path(out) if out else default_location().with_name("realset-hard")
    hard = HardSet(out / "map", {group: out / "queries" / group for group in GROUPS})
    folders = (hard.map_folder, *hard.query_folders.values())
    layout = out / "LAYOUT"
    complete = all((folder / "poses.csv").is_file() for folder in folders)
    if complete and layout.is_file() and layout.read_text() == LAYOUT:
        return hard
    places = sorted(p for p in (root / "pairs").glob("*") if p.is_dir())
    if not places:
        raise InputError(f"{root}: no pairs/<place>/ folders (../shared/realset-hard)")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    map_rows, query_rows = [], {group: [] for group in GROUPS}
    for index, place in enumerate(places):
        position = (index * PLACE_SPACING, 0.0, 0.0)
        images = sorted(place.glob("*.jpg"))
        map_rows.append(_write(tmp / "map", f"{place.name}.png", _read(images[0]), position))
        group = DIFFICULTY.get(place.name, "hard")
        for image in images[1:]:
            name = f"{place.name}_{image.stem}.png"
            query_rows[group].append(_write(tmp / "queries" / group, name, _read(image), position))
    distractors = sorted((root / "distractors").glob("*.jpg"))
    slots = _distractor_slots([image.stem for image in distractors])
    for image, slot in zip(distractors, slots):
        position = ((len(places) + slot) * PLACE_SPACING, 0.0, 0.0)
        map_rows.append(_write(tmp / "map", f"other_{image.stem}.png", _read(image), position))
    _poses_csv(tmp / "map" / "poses.csv", map_rows)
    for group, rows in query_rows.items():
        _poses_csv(tmp / "queries" / group / "poses.csv", rows)
    (tmp / "LAYOUT").write_text(LAYOUT)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return hard


def _distractor_slots(stems: list[str]) -> list[int]:
    """Each distractor's position slot: its own, or its SHARED_PLACE group's first member's."""
    numbers = [int(s[1:4]) if re.fullmatch(r"d\d{3}_.*", s) else -1 for s in stems]

    def slot(index: int) -> int:
        group = next((g for g in SHARED_PLACE if numbers[index] in g), None)
        return index if group is None else next(i for i, n in enumerate(numbers) if n in group)

    return [slot(index) for index in range(len(stems))]


def _read(path: Path):
    image = cv2.imread(str(path))
    if image is None:
        raise InputError(f"{path}: not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
