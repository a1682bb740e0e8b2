"""Importers for the public NetVLAD weight formats.

- pytorch-NetVlad / Patch-NetVLAD: ``{'state_dict': {encoder.*, pool.centroids, pool.conv.weight,
  [pool.conv.bias], [WPCA.0.weight, WPCA.0.bias]}}``, possibly with ``module.`` prefixes from
  DataParallel; VGG16 encoder, ImageNet mean/std on 0..1 pixels.
- MATLAB (Arandjelović's models exported as structs, as hloc reads them): VGG16 conv weights
  (H×W×in×out), the ``vlad_core`` assignment weights (D×K) and negated centres (D×K), and the
  ``WPCA`` layer; the average image is subtracted from 0..255 pixels; VLAD is flattened
  dimension-major (D×K), so the whitening columns are reordered to our cluster-major (K×D) layout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ros2_netvlad.config import ARCH_ADDED, ArchConfig
from ros2_netvlad.model.checkpoints import WeightsError, load_state
from ros2_netvlad.model.netvlad import PlaceNet, build_model
from ros2_netvlad.model.preprocessing import IMAGENET, Normalize, Preprocessing

VGG16_CONV_LAYERS = 13


def from_torch_checkpoint(
    checkpoint: dict[str, Any], path: str | Path, num_pcs: int = 0
) -> PlaceNet:
    """pytorch-NetVlad or Patch-NetVLAD checkpoint → PlaceNet. ``num_pcs`` (from a Patch-NetVLAD
    config), when given, must match the file's WPCA size."""
    state = strip_module_prefixes(checkpoint.get("state_dict", checkpoint))
    if "pool.centroids" not in state:
        raise WeightsError(
            f"{path}: not a NetVLAD checkpoint (no pool.centroids among "
            f"{', '.join(list(state)[:5])}, ...)"
        )
    num_clusters, dim = state["pool.centroids"].shape
    _check_shape(state, "pool.conv.weight", (num_clusters, dim, 1, 1), path)
    whiten_dim = _whitening_dim(state, num_clusters * dim, path)
    declared = int(checkpoint.get("num_pcs", num_pcs) or 0)
    if declared and whiten_dim != declared:
        raise WeightsError(
            f"{path}: num_pcs is {declared} but the WPCA layer has {whiten_dim} outputs"
        )
    model = build_model(
        ArchConfig("vgg16", num_clusters, whiten_dim, **ARCH_ADDED), preprocessing=IMAGENET
    )
    if dim != model.feature_dim:
        raise WeightsError(
            f"{path}: centroids are {dim}-D but the VGG16 encoder gives {model.feature_dim}-D"
        )
    load_state(model, _rename_torch_keys(state, num_clusters), path)
    return model


def strip_module_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Removes DataParallel's ``module.`` segments wherever they appear in a key."""
    return {re.sub(r"(^|\.)module\.", r"\1", key): value for key, value in state.items()}


def _whitening_dim(state: dict[str, torch.Tensor], vlad_dim: int, path: str | Path) -> int:
    if "WPCA.0.weight" not in state:
        return 0
    weight = state["WPCA.0.weight"]
    if weight.shape[1] != vlad_dim:
        raise WeightsError(
            f"{path}: WPCA expects {weight.shape[1]}-D input but NetVLAD gives {vlad_dim}-D (K x D)"
        )
    return int(weight.shape[0])


def _check_shape(
    state: dict[str, torch.Tensor], key: str, shape: tuple[int, ...], path: str | Path
) -> None:
    if key not in state:
        raise WeightsError(f"{path}: missing {key}")
    if tuple(state[key].shape) != shape:
        raise WeightsError(
            f"{path}: {key} is {tuple(state[key].shape)}, expected {shape} from the centroids"
        )


def _rename_torch_keys(
    state: dict[str, torch.Tensor], num_clusters: int
) -> dict[str, torch.Tensor]:
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("encoder."):
            renamed["backbone." + key[len("encoder.") :]] = value
        elif key.startswith("pool."):
            renamed[key] = value
        elif key.startswith("WPCA.0."):
            renamed["whiten.linear." + key.rsplit(".", 1)[1]] = (
                value.flatten(1) if value.dim() > 1 else value
            )
    # vladv1 files have no assignment bias: a zero bias is the same function.
    renamed.setdefault("pool.conv.bias", torch.zeros(num_clusters))
    renamed.update(_normalize_buffers(IMAGENET))
    return renamed


def _normalize_buffers(preprocessing: Preprocessing) -> dict[str, torch.Tensor]:
    return {f"normalize.{k}": v for k, v in Normalize(preprocessing).state_dict().items()}


def from_matlab(path: str | Path) -> PlaceNet:
    """A MATLAB NetVLAD struct file (``net.layers``, ``net.meta.normalization``) → PlaceNet."""
    from scipy.io import loadmat

    try:
        net = loadmat(str(path), struct_as_record=False, squeeze_me=True)["net"]
        layers = list(np.atleast_1d(net.layers))
        average = np.asarray(net.meta.normalization.averageImage, dtype=np.float64).reshape(-1)[:3]
    except (KeyError, AttributeError, ValueError) as error:
        raise WeightsError(
            f"{path}: not a NetVLAD MATLAB struct (need net.layers and "
            f"net.meta.normalization.averageImage): {error}"
        ) from None
    convs = [layer for layer in layers if layer.type == "conv" and layer.name != "WPCA"]
    vlad = [layer for layer in layers if "vlad" in str(layer.name).lower() and _weights(layer)]
    wpca = [layer for layer in layers if layer.name == "WPCA"]
    if len(convs) != VGG16_CONV_LAYERS or len(vlad) != 1:
        raise WeightsError(
            f"{path}: expected a VGG16 NetVLAD ({VGG16_CONV_LAYERS} conv layers, one vlad "
            f"layer), found {len(convs)} conv and {len(vlad)} vlad layers"
        )
    assign, centres = (np.asarray(w, dtype=np.float32) for w in _weights(vlad[0])[:2])
    dim, num_clusters = assign.shape
    whiten_dim = int(np.asarray(_weights(wpca[0])[1]).size) if wpca else 0
    preprocessing = Preprocessing(mean=tuple(average), std=(1.0, 1.0, 1.0), pixel_scale=255.0)
    model = build_model(
        ArchConfig("vgg16", num_clusters, whiten_dim, **ARCH_ADDED), preprocessing=preprocessing
    )
    state = _matlab_state(model, convs, assign, centres, wpca[0] if wpca else None, path)
    load_state(model, state, path)
    return model


def _weights(layer: Any) -> list[np.ndarray]:
    weights = getattr(layer, "weights", [])
    return [] if weights is None or np.size(weights) == 0 else list(np.atleast_1d(weights))


def _matlab_state(
    model: PlaceNet,
    convs: list[Any],
    assign: np.ndarray,
    centres: np.ndarray,
    wpca: Any,
    path: str | Path,
) -> dict[str, torch.Tensor]:
    state = dict(model.state_dict())
    targets = [name for name, m in model.backbone.named_children() if isinstance(m, nn.Conv2d)]
    for name, layer in zip(targets, convs):
        weight, bias = (np.asarray(w, dtype=np.float32) for w in _weights(layer)[:2])
        weight = weight.reshape(
            *weight.shape[:2], -1, np.asarray(bias).size
        )  # restore squeezed dims
        state[f"backbone.{name}.weight"] = torch.from_numpy(weight).permute(3, 2, 0, 1).contiguous()
        state[f"backbone.{name}.bias"] = torch.from_numpy(bias.reshape(-1))
    dim, num_clusters = assign.shape
    state["pool.conv.weight"] = torch.from_numpy(assign.T.copy())[:, :, None, None]
    state["pool.conv.bias"] = torch.zeros(num_clusters)
    state["pool.centroids"] = torch.from_numpy(-centres.T.copy())  # MATLAB stores negated centres
    if wpca is not None:
        weight, bias = (np.asarray(w, dtype=np.float32) for w in _weights(wpca)[:2])
        weight = weight.reshape(dim * num_clusters, -1).T  # out × in, with in ordered d*K + k
        if weight.shape[0] != bias.size:
            raise WeightsError(
                f"{path}: WPCA weight has {weight.shape[0]} outputs, bias {bias.size}"
            )
        reordered = (
            weight.reshape(-1, dim, num_clusters).transpose(0, 2, 1).reshape(-1, dim * num_clusters)
        )
        state["whiten.linear.weight"] = torch.from_numpy(np.ascontiguousarray(reordered))
        state["whiten.linear.bias"] = torch.from_numpy(bias.reshape(-1))
    return state
