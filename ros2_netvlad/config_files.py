"""Configs in files: reading a section of a YAML or ROS params file, and writing the resolved
configuration a tool ran with (``config.yaml``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ros2_netvlad.config_rules import from_dict

T = TypeVar("T")


def load_yaml_section(path: str | Path, section: str, cls: type[T]) -> T:
    """Read one section of a YAML file (plain, or a ROS params file) into a config."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    return from_dict(cls, params_block(data).get(section, {}), section)


def params_block(data: dict[str, Any]) -> dict[str, Any]:
    """The ``ros__parameters`` block of a ROS params file, or the mapping itself."""
    for value in data.values():
        if isinstance(value, dict) and "ros__parameters" in value:
            return value["ros__parameters"]
    return data


RESOLVED_CONFIG = "config.yaml"


def resolved(**sections: Any) -> dict[str, Any]:
    """Config sections as plain data (dataclasses → dicts, paths → strings), in the given order."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return dataclasses.asdict(value)
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {name: plain(value) for name, value in sections.items()}


def write_resolved_config(folder: str | Path, **sections: Any) -> Path:
    """Writes what a tool ran with, every default filled in, as ``config.yaml`` in its output
    folder: a run can be read back or repeated without guessing which defaults applied."""
    path = Path(folder) / RESOLVED_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resolved(**sections), sort_keys=False))
    return path
