"""The network as it is trained: which stages learn, how they are optimized, and describing a
place set with the current weights across ranks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ros2_netvlad.model.backbones import backbone_spec
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.distributed import Distributed
from ros2_netvlad.model.netvlad import PlaceNet
from ros2_netvlad.sources.prefetch import prefetch
from ros2_netvlad.training.config import TrainConfig
from ros2_netvlad.training.placesets import ImageLoader, PlaceSet


class TrainingNet(nn.Module):
    """The PlaceNet as trained: frozen stages run without autograd, then the trainable stages and
    NetVLAD (whitening is fitted after training, as in the paper)."""

    def __init__(self, model: PlaceNet, trainable_stages: int) -> None:
        super().__init__()
        starts = backbone_spec(model.arch.backbone).stage_starts
        cut = starts[len(starts) - trainable_stages] if trainable_stages else len(model.backbone)
        self.normalize, self.pool, self._pooled = model.normalize, model.pool, model.pooled
        self.frozen, self.trainable = model.backbone[:cut], model.backbone[cut:]
        model.requires_grad_(False)
        self.trainable.requires_grad_(True)
        self.pool.requires_grad_(True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.frozen(self.normalize(images))
        # NetVLAD (with the GeM head when the model has one), at full scale only
        return self._pooled(self.trainable(features))


def optimizer_and_schedule(params: list, config: TrainConfig) -> tuple:
    """SGD or Adam over ``params``, with a step, cosine or constant learning-rate schedule."""
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params, config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.Adam(params, config.lr, weight_decay=config.weight_decay)
    if config.schedule == "cosine":
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    gamma = (
        config.lr_gamma if config.schedule == "step" else 1.0
    )  # constant: a step that never decays
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, gamma)


def describe_across_ranks(
    describer: Describer,
    loader: ImageLoader,
    place_set: PlaceSet,
    indices: np.ndarray,
    dist: Distributed,
    device: torch.device,
    *,
    batch: int,
    what: str,
    progress: bool,
) -> torch.Tensor:
    """Descriptors of ``place_set[indices]``: this rank describes every world_size-th image
    (decoding
    ahead in a thread), then all ranks gather all rows, in order."""
    mine = indices[dist.rank :: dist.world_size]
    chunks = [mine[i : i + batch] for i in range(0, len(mine), batch)]
    local = np.zeros((len(mine), describer.output_dim), np.float32)
    bar = tqdm(total=len(indices), desc=what, unit="img", leave=False, disable=not progress)
    row = 0
    for images in prefetch((loader(place_set, chunk) for chunk in chunks), depth=2):
        local[row : row + len(images)] = describer.describe(images)
        row += len(images)
        bar.update(len(images) * dist.world_size)
    bar.close()
    return dist.all_gather_strided(torch.from_numpy(local), len(indices), device)
