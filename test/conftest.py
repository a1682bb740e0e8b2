"""Shared fixtures: real photographs from scikit-image and small seeded models."""

from __future__ import annotations

import os

import numpy as np
import pytest
import skimage.data
import torch

from ros2_netvlad.config import ArchConfig
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.model.precision import NATIVE_BF16_ENV

# precision auto picks bf16 by measurement on CPUs that have it natively, so the same test would
# compute fp32 on one machine and bf16 on another. The suite (and every node it starts) sees no
# native bf16; the tests about auto force the capability both ways themselves.
os.environ[NATIVE_BF16_ENV] = "0"


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real RGB photographs shipped with scikit-image."""
    return {
        name: getattr(skimage.data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")
    }


@pytest.fixture(scope="session")
def small_map(tmp_path_factory):
    """A map of five demo places for the node tests (built once per session)."""
    from nodeutil import make_small_map  # test helper module beside this file

    return make_small_map(tmp_path_factory.mktemp("small_map"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


def random_vgg_model(num_clusters: int = 8, whiten_dim: int = 0, output_dim: int = 0):
    """VGG16-NetVLAD with seeded random weights (no download needed)."""
    torch.manual_seed(0)
    model = build_model(ArchConfig("vgg16", num_clusters, whiten_dim, output_dim))
    with torch.no_grad():
        model.pool.centroids.normal_()
        model.pool.conv.weight.normal_()
        model.pool.conv.bias.normal_()
    return model.eval()
