"""PCA whitening fitted on NetVLAD descriptors and written into the network as its whitening layer.

y = diag(λ^-1/2) Uᵀ (x - μ), keeping the d directions of largest variance (the paper's PCA +
whitening, faiss PCAMatrix with eigen_power = -0.5); the layer adds the final L2 normalization, and
truncating to the first n ≤ d dims stays valid because the dims are ordered by variance.
"""

from __future__ import annotations

import logging

import faiss
import numpy as np
import torch

from ros2_netvlad.errors import InputError
from ros2_netvlad.model.describer import describe_all
from ros2_netvlad.model.netvlad import PlaceNet, Whitening

log = logging.getLogger(__name__)


def fit_pca_whitening(
    descriptors: np.ndarray, dim: int, eps: float = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """(weight d×D, bias d) of the whitening map, fitted with faiss PCAMatrix (eigen power -0.5)."""
    x = np.ascontiguousarray(descriptors, dtype=np.float32)
    n, in_dim = x.shape
    if dim > min(n, in_dim):
        raise InputError(
            f"PCA to {dim} dims needs at least {dim} descriptors and input dims; "
            f"got {n} descriptors of {in_dim}-D (describe more images or lower the dims)"
        )
    pca = faiss.PCAMatrix(in_dim, dim, -0.5, False)
    pca.epsilon = eps
    pca.train(x)
    matrix = faiss.vector_to_array(pca.A).reshape(dim, in_dim)
    mean = faiss.vector_to_array(pca.mean)
    return matrix, -matrix @ mean


def apply_whitening(
    model: PlaceNet, weight: np.ndarray, bias: np.ndarray, output_dim: int = 0
) -> PlaceNet:
    """Installs the whitening layer (replacing any earlier one) and records it in the model's
    arch."""
    import dataclasses

    dim, in_dim = weight.shape
    if in_dim != model.pooled_dim:
        raise InputError(
            f"whitening expects {in_dim}-D input but the pooling gives {model.pooled_dim}-D"
        )
    layer = Whitening(in_dim, dim, output_dim)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.from_numpy(np.asarray(weight, np.float32)))
        layer.linear.bias.copy_(torch.from_numpy(np.asarray(bias, np.float32)))
    model.whiten = layer.to(next(model.pool.parameters()).device)
    model.arch = dataclasses.replace(model.arch, whiten_dim=dim, output_dim=output_dim)
    log.info("whitening %d-D → %d-D installed", in_dim, dim)
    return model


def pooled_descriptors(model: PlaceNet, describer, images) -> np.ndarray:
    """NetVLAD outputs before any whitening (the PCA is fitted on these)."""
    saved = model.whiten
    model.whiten = torch.nn.Identity()
    try:
        return describe_all(describer, images)
    finally:
        model.whiten = saved
