"""ROS parameters declared by walking the config dataclasses: ``section.field`` names, descriptions,
ranges and read-only flags from the fields' metadata."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter

from ros2_netvlad.config import DatabaseConfig, DescriberConfig, KeyframeConfig, LocalizerConfig
from ros2_netvlad.config_rules import ConfigError, from_dict
from ros2_netvlad.ros.node_config import NodeConfig

SECTIONS: dict[str, type] = {
    "node": NodeConfig,
    "model": DescriberConfig,
    "database": DatabaseConfig,
    "localizer": LocalizerConfig,
    "keyframes": KeyframeConfig,
}

_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}


def descriptor(name: str, field: dataclasses.Field) -> ParameterDescriptor:
    meta, kind = field.metadata, type(field.default)
    d = ParameterDescriptor(
        name=name,
        type=_TYPES[kind],
        description=meta.get("description", ""),
        read_only=bool(meta.get("read_only", False)),
    )
    if "min" in meta and kind is int:
        d.integer_range = [
            IntegerRange(
                from_value=int(meta["min"]), to_value=int(meta.get("max", 2**31 - 1)), step=0
            )
        ]
    elif "min" in meta and kind is float:
        d.floating_point_range = [
            FloatingPointRange(
                from_value=float(meta["min"]), to_value=float(meta.get("max", 1e300)), step=0.0
            )
        ]
    return d


def declare(node: Node) -> dict[str, Any]:
    """Declares every section's parameters and returns the built configs by section name.
    Raises ConfigError naming the parameter when a value is out of range or of the wrong type."""
    values: dict[str, dict[str, Any]] = {}
    _widen_integer_overrides(node)
    for section, cls in SECTIONS.items():
        values[section] = {}
        for field in dataclasses.fields(cls):
            name = f"{section}.{field.name}"
            try:
                parameter = node.declare_parameter(name, field.default, descriptor(name, field))
            except Exception as error:  # rclpy's InvalidParameterValue/Type exceptions
                raise ConfigError(f"{name}: {error}") from None
            values[section][field.name] = parameter.value
    return {section: from_dict(SECTIONS[section], v, section) for section, v in values.items()}


def _widen_integer_overrides(node: Node) -> None:
    """``nms_radius: 2`` in a params file is an INTEGER to rclpy, which refuses it for a DOUBLE
    parameter; a whole number is a valid double, so it is given as one."""
    overrides = getattr(node, "_parameter_overrides", {})  # no public accessor (Humble..Kilted)
    for section, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            name = f"{section}.{field.name}"
            given = overrides.get(name)
            if type(field.default) is float and given is not None:
                if given.type_ == Parameter.Type.INTEGER:
                    overrides[name] = Parameter(name, Parameter.Type.DOUBLE, float(given.value))


def declare_resolved(node: Node, values: dict[str, str]) -> None:
    """Read-only ``resolved.*`` parameters with what ``auto`` became (device, precision, backend),
    so `ros2 param get <node> resolved.precision` shows it; never taken from a params file."""
    for key, value in values.items():
        name = f"resolved.{key}"
        descriptor = ParameterDescriptor(
            name=name,
            type=ParameterType.PARAMETER_STRING,
            description=f"what this node resolved {key} to (read-only)",
            read_only=True,
        )
        node.declare_parameter(name, value, descriptor, ignore_override=True)


def updated(config: Any, section: str, parameters: list) -> Any:
    """A new config with the changed parameters of ``section`` applied (validated), or the old
    one."""
    changes = {
        p.name.split(".", 1)[1]: p.value for p in parameters if p.name.startswith(section + ".")
    }
    if not changes:
        return config
    return from_dict(type(config), {**dataclasses.asdict(config), **changes}, section)


# Parameters rclpy itself understands; anything else a params file or -p gives must be one of ours.
_ROS_OWN = ("use_sim_time", "qos_overrides.", "start_type_description_service")


def unknown_overrides(node: Node) -> list[str]:
    """Names given in a params file or with -p that no section declares (a typo such as
    localizer.topk would otherwise be dropped silently), each with the closest known name."""
    given = getattr(
        node, "_parameter_overrides", {}
    )  # rclpy has no public accessor (Humble..Kilted)
    known = [
        f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)
    ]
    unknown = sorted(n for n in given if n not in known and not n.startswith(_ROS_OWN))
    notes = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        notes.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return notes


def writable(section: str) -> list[str]:
    """The dotted names of a section's parameters that may change at run time."""
    return [
        f"{section}.{f.name}"
        for f in dataclasses.fields(SECTIONS[section])
        if not f.metadata.get("read_only", False)
    ]


def parameter_table() -> str:
    """The node's parameters as the markdown table in docs/node.md (a test keeps them equal)."""
    rows = ["| parameter | default | range | run time | description |", "|---|---|---|---|---|"]
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            meta = f.metadata
            bounds = [f"{k} {meta[k]}" for k in ("min", "max") if k in meta]
            writable = "read-only" if meta.get("read_only") else "writable"
            rows.append(
                f"| `{section}.{f.name}` | `{f.default!r}` | {', '.join(bounds)} | {writable} | "
                f"{meta['description']} |"
            )
    return "\n".join(rows)
