"""Loading any supported weight file: our checkpoints, pytorch-NetVlad / Patch-NetVLAD
``.pth.tar`` and MATLAB ``.mat`` structs (the importers). The entry point for code that wants a
model."""

from __future__ import annotations

from pathlib import Path

from ros2_netvlad.model import importers
from ros2_netvlad.model.checkpoints import (
    FORMAT,
    WeightsError,
    model_from_checkpoint,
    read_checkpoint,
)
from ros2_netvlad.model.netvlad import PlaceNet


def load(path: str | Path, trusted: bool = False) -> PlaceNet:
    """Loads any supported weight file into a ready model (eval mode, CPU).

    Recognises our checkpoints, pytorch-NetVlad and Patch-NetVLAD ``.pth(.tar)`` files and MATLAB
    ``.mat`` structs. ``trusted`` allows full unpickling for old files that store non-tensor
    objects (only for files you trust: unpickling can run code).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file not found: {path}")
    if path.suffix == ".mat":
        return importers.from_matlab(path).eval()
    checkpoint = read_checkpoint(path, trusted)
    if checkpoint.get("format") == FORMAT:
        return model_from_checkpoint(checkpoint, path).eval()
    return importers.from_torch_checkpoint(checkpoint, path).eval()
