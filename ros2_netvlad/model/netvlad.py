"""The network: preprocessing → backbone → NetVLAD (optionally with a GeM concatenated, at several
scales) → optional PCA whitening, in one module.

Input is a float tensor N×3×H×W holding RGB values in 0..255; the output is L2-normalized
descriptors N×D. Preprocessing lives inside the network so weights always carry it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ros2_netvlad.config import ArchConfig
from ros2_netvlad.errors import InputError
from ros2_netvlad.model.backbones import build_backbone
from ros2_netvlad.model.preprocessing import Normalize, Preprocessing


class NetVLAD(nn.Module):
    """Generalized VLAD pooling (Arandjelović et al. 2016).

    Local features are L2-normalized, softly assigned to K clusters by a 1×1 convolution
    (w_k = 2αc_k, b_k = -α‖c_k‖² at initialization), their residuals to the learned centroids
    c_k summed per cluster, intra-normalized, flattened cluster-major (K×D) and L2-normalized.
    """

    def __init__(self, num_clusters: int = 64, dim: int = 512, alpha: float = 100.0) -> None:
        super().__init__()
        self.num_clusters, self.dim = num_clusters, dim
        self.conv = nn.Conv2d(dim, num_clusters, kernel_size=1, bias=True)
        self.centroids = nn.Parameter(torch.rand(num_clusters, dim))
        self.init_from_centroids(F.normalize(self.centroids.detach(), dim=1), alpha)

    @property
    def output_dim(self) -> int:
        return self.num_clusters * self.dim

    @torch.no_grad()
    def init_from_centroids(self, centroids: torch.Tensor | np.ndarray, alpha: float) -> None:
        """Sets c_k and the assignment conv so that softmax(w·x+b) = softmax(-α‖x-c_k‖²)."""
        c = torch.as_tensor(np.asarray(centroids, dtype=np.float32))
        if c.shape != (self.num_clusters, self.dim):
            raise InputError(
                f"centroids must be {self.num_clusters}x{self.dim}, got {tuple(c.shape)}"
            )
        self.centroids.copy_(c)
        self.conv.weight.copy_((2.0 * alpha * c)[:, :, None, None])
        self.conv.bias.copy_(-alpha * c.pow(2).sum(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x, p=2, dim=1)
        assignment = F.softmax(self.conv(x).flatten(2), dim=1)  # N×K×HW
        features = x.flatten(2)  # N×D×HW
        # Σ_i a_k(x_i)(x_i - c_k) = A·Xᵀ - (Σ_i a_k(x_i)) c_k: one batched matmul, no N×K×D×HW
        # tensor.
        vlad = torch.bmm(assignment, features.transpose(1, 2))
        vlad = vlad - assignment.sum(dim=2, keepdim=True) * self.centroids.to(vlad.dtype)
        vlad = F.normalize(vlad, p=2, dim=2)  # intra-normalization
        return F.normalize(vlad.flatten(1), p=2, dim=1)


class GeM(nn.Module):
    """Generalized-mean pooling (Radenović et al. 2018), p = 3: one D-vector per image, L2-normed.
    A mean over the map (not avg_pool2d) so exported graphs take any image size."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
        return F.normalize(pooled, p=2, dim=1)


SCALES = (1.0, 0.75, 0.5)  # arch.multiscale: descriptors at these image scales, summed


class Whitening(nn.Module):
    """PCA whitening as a linear layer followed by L2, optionally truncated to the first N dims."""

    def __init__(self, in_dim: int, out_dim: int, keep_dims: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.keep_dims = keep_dims or out_dim

    @property
    def output_dim(self) -> int:
        return self.keep_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.keep_dims
        # Whitened dims are ordered by variance, so truncation only needs the first n rows.
        y = F.linear(x, self.linear.weight[:n], self.linear.bias[:n])
        return F.normalize(y, p=2, dim=1)


class PlaceNet(nn.Module):
    """The full descriptor network: ``normalize → backbone → pool → whiten``."""

    def __init__(
        self, arch: ArchConfig, backbone: nn.Module, feature_dim: int, preprocessing: Preprocessing
    ) -> None:
        super().__init__()
        self.arch, self.preprocessing, self.feature_dim = arch, preprocessing, feature_dim
        # the resize rule the weights were trained at (config.RESIZE_DEFAULTS keys), when known
        self.resize_rule: dict | None = None
        self.normalize = Normalize(preprocessing)
        self.backbone = backbone
        self.pool = NetVLAD(arch.num_clusters, feature_dim)
        self.gem = GeM() if arch.gem_weight > 0 else None
        self.whiten = (
            Whitening(self.pooled_dim, arch.whiten_dim, arch.output_dim)
            if arch.whiten_dim
            else nn.Identity()
        )

    @property
    def pooled_dim(self) -> int:
        """Dims before whitening: NetVLAD's K×D, plus D with the GeM head."""
        return self.pool.output_dim + (self.feature_dim if self.gem is not None else 0)

    @property
    def output_dim(self) -> int:
        return self.whiten.output_dim if isinstance(self.whiten, Whitening) else self.pooled_dim

    def truncate(self, output_dim: int) -> None:
        """Keep only the first ``output_dim`` whitened dims (ordered by variance)."""
        if not isinstance(self.whiten, Whitening):
            raise InputError("descriptor truncation needs a whitening layer; this model has none")
        if not 0 < output_dim <= self.arch.whiten_dim:
            raise InputError(f"output_dim must be in 1..{self.arch.whiten_dim}, got {output_dim}")
        self.whiten.keep_dims = output_dim
        self.arch = dataclasses.replace(self.arch, output_dim=output_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Local feature map N×D×h×w (the NetVLAD input)."""
        return self.backbone(self.normalize(images))

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """A feature map → NetVLAD, with the weighted GeM concatenated (L2-normalized)."""
        vlad = self.pool(features)
        if self.gem is None:
            return vlad
        gem = self.arch.gem_weight * self.gem(features)
        return F.normalize(torch.cat([vlad, gem.to(vlad.dtype)], dim=1), p=2, dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.pooled(self.features(images))
        if self.arch.multiscale:
            for scale in SCALES[1:]:
                smaller = F.interpolate(
                    images, scale_factor=scale, mode="bilinear", align_corners=False
                )
                pooled = pooled + self.pooled(self.features(smaller))
            pooled = F.normalize(pooled, p=2, dim=1)
        return self.whiten(pooled)


def build_model(
    arch: ArchConfig,
    pretrained: bool = False,
    backbone_weights: str = "",
    preprocessing: Preprocessing | None = None,
) -> PlaceNet:
    """A PlaceNet with the named backbone; NetVLAD centroids are random until fitted or loaded.

    ``preprocessing`` overrides the backbone's own (for weights trained with another convention).
    """

    backbone = build_backbone(arch.backbone, pretrained=pretrained, weights_file=backbone_weights)
    return PlaceNet(
        arch, backbone.module, backbone.feature_dim, preprocessing or backbone.preprocessing
    )
