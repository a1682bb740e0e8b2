"""Opening a map for describing against it: which weights (given, or the map's own model.pt), the
database (loaded with its fingerprint check, or created empty), and a Describer that follows what
the map recorded (resize rule, precision) unless told otherwise."""

from __future__ import annotations

import logging
from pathlib import Path

from ros2_netvlad.config import DatabaseConfig, DescriberConfig
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.maps.storage import MODEL as MODEL_FILE
from ros2_netvlad.maps.storage import MapError
from ros2_netvlad.model.checkpoints import WeightsError, checkpoint_bytes, fingerprint
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.weights import load
from ros2_netvlad.resize import recorded_resize, resolve_resize

log = logging.getLogger(__name__)


def open_map(
    map_dir: str | Path | None,
    model: DescriberConfig = DescriberConfig(),
    database: DatabaseConfig = DatabaseConfig(),
    force: bool = False,
    create: bool = False,
) -> tuple[Describer, MapDatabase]:
    """(describer, database) for ``map_dir``. ``create``: a missing directory gives a new, empty
    map (loop-closure mode) that records the describer's settings. ``force`` accepts another
    model's map or another resize rule (warned). Raises MapError / WeightsError naming what is
    missing."""
    map_dir = Path(map_dir) if map_dir else None
    new = create and not (map_dir and map_dir.exists())
    if not new and not (map_dir and map_dir.is_dir()):
        raise MapError(f"map directory not found: {map_dir} (node.map)")
    net = load(map_weights(map_dir, model.weights))
    if new:
        db = MapDatabase.create(net.output_dim, database, fingerprint(net), checkpoint_bytes(net))
    else:
        db = MapDatabase.load(map_dir, fingerprint(net), force, database)
    describer = Describer(net, map_resize(db, model, force), db.manifest.precision)
    if new:
        db.record(resize=recorded_resize(describer.config), precision=describer.precision.name)
    return describer, db


def map_resize(
    database: MapDatabase, config: DescriberConfig, force: bool = False
) -> DescriberConfig:
    """``config`` with auto / 0 taken from the map's recorded resize rule; an explicit rule that
    differs is refused (ConfigError), or only warned about with ``force``."""
    resolved, warning = resolve_resize(config, database.manifest.resize, force)
    if warning:
        log.warning(warning)
    return resolved


def map_weights(map_dir: Path | None, weights: str | Path = "") -> str:
    """``weights`` when given (it must exist), else the map's own model.pt."""
    weights = str(weights or "")
    if weights and not Path(weights).is_file():
        raise WeightsError(f"model.weights: {weights} not found")
    chosen = weights or (str(map_dir / MODEL_FILE) if map_dir else "")
    if not chosen or not Path(chosen).is_file():
        raise WeightsError(
            f"model.weights is empty and {map_dir or 'no map'} has no {MODEL_FILE}; give "
            f"model.weights"
        )
    return chosen
