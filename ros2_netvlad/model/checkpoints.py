"""Checkpoints: config + preprocessing + state_dict, so ``load(path)`` rebuilds the exact model.

Public formats (pytorch-NetVlad, Patch-NetVLAD, the MATLAB struct used by hloc) are recognised by
``load`` and mapped by ``importers``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from ros2_netvlad import __version__
from ros2_netvlad.config import ARCH_ADDED, ArchConfig
from ros2_netvlad.config_rules import from_dict
from ros2_netvlad.errors import InputError
from ros2_netvlad.model.netvlad import PlaceNet, build_model
from ros2_netvlad.model.preprocessing import Preprocessing

FORMAT = "ros2_netvlad.checkpoint"
FORMAT_VERSION = 1


class WeightsError(InputError):
    """A weight file is missing, unreadable or does not fit the model; the message says which."""


def save(model: PlaceNet, path: str | Path, **extra: Any) -> Path:
    """Writes a checkpoint atomically (temporary file, then rename). ``extra`` (optimizer state,
    epoch, metrics) is stored beside the model and returned by ``read_checkpoint``."""
    return atomic_write_bytes(Path(path), checkpoint_bytes(model, **extra))


def checkpoint_bytes(model: PlaceNet, **extra: Any) -> bytes:
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": dataclasses.asdict(model.arch),
        "preprocessing": dataclasses.asdict(model.preprocessing),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": {
            "package_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "fingerprint": fingerprint(model),
        },
        **({"resize": model.resize_rule} if model.resize_rule else {}),
        **extra,
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Writes ``data`` to a temporary sibling and renames it over ``path``: readers see the old or
    the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    # os.open with 0o666, not mkstemp (0600): the umask decides, as for any file the user writes
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as error:
        globals_ = [
            line.strip() for line in str(error).splitlines() if "Unsupported global" in line
        ]
        if not globals_:
            raise WeightsError(
                f"{path}: not a readable torch checkpoint (corrupt or another format)"
            ) from None
        raise WeightsError(
            f"{path}: holds objects other than tensors ({globals_[0]}); if you trust this "
            f"file, load it with trusted=True (CLI: --trust-weights)"
        ) from None
    except Exception as error:  # torch raises many types for foreign or truncated files
        raise WeightsError(
            f"{path}: not a readable torch checkpoint ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | Path = "<memory>") -> PlaceNet:
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        raise WeightsError(
            f"{path}: checkpoint format_version {version} is not supported "
            f"(this package reads {FORMAT_VERSION})"
        )
    arch = from_dict(ArchConfig, {**ARCH_ADDED, **checkpoint["arch"]}, "arch")
    model = build_model(arch, preprocessing=Preprocessing(**checkpoint["preprocessing"]))
    load_state(model, checkpoint["state_dict"], path)
    model.resize_rule = checkpoint.get("resize")  # additive: older checkpoints have none
    return model


def load_state(model: PlaceNet, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """load_state_dict with an error that names every missing, unexpected or mis-shaped tensor."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected.keys() & state.keys()
        if state[k].shape != expected[k].shape
    ]
    problems = (
        ([f"missing {', '.join(missing[:5])}"] if missing else [])
        + ([f"unexpected {', '.join(unexpected[:5])}"] if unexpected else [])
        + shapes[:5]
    )
    if problems:
        raise WeightsError(f"{path}: weights do not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state)


def fingerprint(model: PlaceNet) -> str:
    """A hash of everything that determines the descriptors: weights, preprocessing and dims."""
    digest = hashlib.sha256()
    digest.update(
        repr(
            (
                _arch_identity(model.arch),
                dataclasses.asdict(model.preprocessing),
                model.output_dim,
            )
        ).encode()
    )
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _arch_identity(arch) -> dict:
    """The arch as hashed: fields added later are left out at the values models had before
    them, so those models (and the maps made with them) keep their fingerprints."""
    return {
        k: v
        for k, v in dataclasses.asdict(arch).items()
        if not (k in ARCH_ADDED and v == ARCH_ADDED[k])
    }
