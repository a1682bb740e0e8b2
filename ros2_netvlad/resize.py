"""The resize rule: how big images are when they are described (none, longest side, or exact
size). It shapes every descriptor, so a map records the rule it was built with and every reader
resolves its own settings against it."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ros2_netvlad.config import DescriberConfig
from ros2_netvlad.config_rules import ConfigError

# What `auto` / 0 become when neither the caller nor a map says otherwise.
RESIZE_DEFAULTS = {"resize": "max_side", "max_side": 640, "width": 640, "height": 480}


def recorded_resize(config: DescriberConfig) -> dict[str, Any]:
    """The rule as a map's manifest and a checkpoint record it (all four fields)."""
    return {k: getattr(config, k) for k in RESIZE_DEFAULTS}


def explicit_resize(config: DescriberConfig) -> dict[str, Any]:
    """The resize rule a config asks for explicitly: only the fields it sets (not auto / 0)."""
    return {k: getattr(config, k) for k in RESIZE_DEFAULTS if getattr(config, k) not in ("auto", 0)}


def resize_rule_text(settings: DescriberConfig | Mapping[str, Any]) -> str:
    """The resize rule in words, e.g. 'max_side 320' or 'exact 640 480'."""
    values = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
    return " ".join(map(str, _resize_rule({**RESIZE_DEFAULTS, **values})))


def _resize_rule(settings: Mapping[str, Any]) -> tuple:
    """What actually shapes the network input: the fields the resize mode uses, nothing else."""
    mode = settings["resize"]
    return {"none": (mode,), "max_side": (mode, settings["max_side"])}.get(
        mode, (mode, settings["width"], settings["height"])
    )


def resolve_resize(
    config: DescriberConfig, recorded: Mapping[str, Any] | None = None, force: bool = False
) -> tuple[DescriberConfig, str]:
    """Concrete describe settings for describing images against a map whose build recorded
    ``recorded`` (None for a new map or one built before maps carried them): explicit settings win,
    auto / 0 take the map's, then RESIZE_DEFAULTS. An explicit rule that differs from the map's
    makes descriptors incomparable: refused with ConfigError, or with ``force`` allowed and
    described in the returned warning (empty when there is nothing to say)."""
    base = {**RESIZE_DEFAULTS, **(recorded or {})}
    resolved = {**base, **explicit_resize(config)}
    warning = ""
    if recorded and _resize_rule(resolved) != _resize_rule(base):
        wanted, built = _resize_rule(resolved), _resize_rule(base)
        message = (
            f"model resize {' '.join(map(str, wanted))} differs from the map's "
            f"{' '.join(map(str, built))}: descriptors would not be comparable"
        )
        if not force:
            raise ConfigError(
                f"{message}; leave model.resize/max_side/width/height at auto/0 to "
                f"use the map's, or force it"
            )
        warning = message + " (forced)"
    return dataclasses.replace(config, **resolved), warning
