"""How a config field declares and checks itself: ``param`` metadata (description, min / max,
read-only) that the ROS parameter descriptors carry, the checks every config's ``__post_init__``
runs, and building a config from a YAML or ROS mapping with each value's type checked by name.
The configs themselves are in config.py (and training/config.py, ros/node_config.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Any, Mapping, TypeVar

from ros2_netvlad.errors import InputError

T = TypeVar("T")


class ConfigError(InputError):
    """A configuration value is invalid; the message names the field."""


def check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{name}: {message}")


def check_choice(value: str, name: str, choices: tuple[str, ...]) -> None:
    check(value in choices, name, f"must be one of {', '.join(choices)}, got {value!r}")


def check_ranges(config: Any, section: str) -> None:
    """Every field's min / max from its metadata: the one statement of the ranges, which the node's
    ParameterDescriptors carry too, so ROS, YAML and Python refuse the same values."""
    for f in fields(config):
        value, low, high = getattr(config, f.name), f.metadata.get("min"), f.metadata.get("max")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        name = f"{section}.{f.name}"
        check(low is None or value >= low, name, f"must be >= {low}, got {value}")
        check(high is None or value <= high, name, f"must be <= {high}, got {value}")


def param(description: str, **meta: Any) -> Any:
    """Field metadata: a description (and optional min/max/read_only) for the ROS parameter."""
    return {"description": description, **meta}


def from_dict(cls: type[T], values: Mapping[str, Any] | None, section: str = "") -> T:
    """Build a config dataclass from a mapping, refusing unknown keys by name."""
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    prefix = f"{section}." if section else ""
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(prefix + u for u in unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    coerced = {name: _coerce(known[name], value, prefix + name) for name, value in values.items()}
    return cls(**coerced)


def _coerce(f: dataclasses.Field, value: Any, name: str) -> Any:
    kind = type(f.default)
    if kind is bool:
        check(isinstance(value, bool), name, f"must be true or false, got {value!r}")
        return value
    if kind is int:
        check(
            isinstance(value, int) and not isinstance(value, bool),
            name,
            f"must be an integer, got {value!r}",
        )
        return value
    if kind is float:
        check(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            name,
            f"must be a number, got {value!r}",
        )
        return float(value)
    if kind is str:
        check(isinstance(value, str), name, f"must be a string, got {value!r}")
    return value
