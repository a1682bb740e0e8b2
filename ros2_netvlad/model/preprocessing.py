"""Preprocessing: how raw 0..255 RGB pixels become a backbone's input. Each backbone names its own,
and every checkpoint carries it, so weights can never meet the wrong normalization."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ros2_netvlad.errors import InputError


@dataclass(frozen=True)
class Preprocessing:
    """How raw RGB pixels become network input: ``(rgb / 255 * pixel_scale - mean) / std``.

    ImageNet-trained torchvision models use pixel_scale 1 with ImageNet mean/std; the MATLAB
    NetVLAD models use pixel_scale 255, their average image as mean and std 1.
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pixel_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise InputError(
                f"preprocessing needs 3 means and 3 positive stds, got {self.mean}, {self.std}"
            )


IMAGENET = Preprocessing()


class Normalize(nn.Module):
    """Maps 0..255 RGB to the backbone's expected input as one fused multiply-add."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
        std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
        scale = preprocessing.pixel_scale / 255.0
        self.register_buffer("gain", scale / std)
        self.register_buffer("offset", -mean / std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.offset, x, self.gain)
