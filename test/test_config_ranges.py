"""Ranges are stated once, in field metadata: Python, YAML (from_dict) and the node's
ParameterDescriptors refuse the same values."""

from __future__ import annotations

import dataclasses

import pytest

from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.config_rules import ConfigError, from_dict
from ros2_netvlad.ros.params import SECTIONS
from ros2_netvlad.training.config import TrainConfig

BOUNDED = [
    (section, cls, f, bound)
    for section, cls in [*SECTIONS.items(), ("train", TrainConfig)]
    for f in dataclasses.fields(cls)
    for bound in ("min", "max")
    if bound in f.metadata and not isinstance(f.default, bool)
]


@pytest.mark.parametrize(
    "section, cls, field, bound", BOUNDED, ids=[f"{s}.{f.name}-{b}" for s, _, f, b in BOUNDED]
)
def test_every_declared_bound_is_enforced_from_python_and_yaml(section, cls, field, bound):
    limit = field.metadata[bound]
    step = 1 if isinstance(field.default, int) else 0.5
    outside = limit - step if bound == "min" else limit + step
    inside = limit
    name = f"{section}.{field.name}"
    base = {"map": "maps/x"} if section == "node" else {}  # localize mode needs a map
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        from_dict(cls, {**base, field.name: outside}, section)
    try:  # the bound itself is allowed (other rules, e.g. 0-or->=32, may still apply)
        from_dict(cls, {**base, field.name: inside}, section)
    except ConfigError as error:
        assert f"must be >= {limit}" not in str(error) and f"must be <= {limit}" not in str(error)


def test_top_k_500_is_refused_everywhere_not_only_over_ros():
    with pytest.raises(ConfigError, match="localizer.top_k: must be <= 100, got 500"):
        LocalizerConfig(top_k=500)
