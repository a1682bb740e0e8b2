"""One process or many under ``torchrun``: the rank, its device, and the few collectives map
building
and training need. With one process every collective is the identity, so callers never branch."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

from ros2_netvlad.model.describer import resolve_device


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @staticmethod
    def from_environment() -> "Distributed":
        """torchrun sets WORLD_SIZE/RANK; then join the process group (NCCL on GPUs, else gloo)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return Distributed()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return Distributed(dist.get_rank(), dist.get_world_size())

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module: torch.nn.Module, extra: Any = None) -> Any:
        """Loads rank 0's weights of ``module`` on every rank; returns rank 0's ``extra``."""
        if self.world_size == 1:
            return extra
        state, extra = self.broadcast(({k: v.cpu() for k, v in module.state_dict().items()}, extra))
        module.load_state_dict(state)
        return extra

    def gather_to_root(self, value: Any) -> list[Any] | None:
        """Every rank's ``value``, in rank order, on rank 0 (None elsewhere)."""
        if self.world_size == 1:
            return [value]
        import torch.distributed as dist

        values = [None] * self.world_size if self.rank == 0 else None
        dist.gather_object(value, values, dst=0)
        return values

    def all_gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if self.world_size == 1:
            return [value]
        import torch.distributed as dist

        values: list = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def all_sum(self, values: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Element-wise sum over ranks (a CPU tensor in, a CPU tensor out)."""
        if self.world_size == 1:
            return values
        import torch.distributed as dist

        values = values.to(self._comm_device(device))
        dist.all_reduce(values)
        return values.cpu()

    def all_gather_strided(
        self, local: torch.Tensor, total: int, device: torch.device
    ) -> torch.Tensor:
        """Rows r, r+world, r+2·world, … come from rank r: returns all ``total`` rows in order."""
        if self.world_size == 1:
            return local
        import torch.distributed as dist

        comm = self._comm_device(device)
        padded = torch.zeros(
            math.ceil(total / self.world_size), *local.shape[1:], dtype=local.dtype, device=comm
        )
        padded[: len(local)] = local.to(comm)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return torch.stack(parts, dim=1).reshape(-1, *local.shape[1:])[:total]

    @staticmethod
    def _comm_device(device: torch.device) -> torch.device:
        import torch.distributed as dist

        return device if dist.get_backend() == "nccl" else torch.device("cpu")


def rank_device(name: str) -> torch.device:
    """This process's device: ``auto``/``cuda`` means the rank's own GPU (LOCAL_RANK under
    torchrun)."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device
