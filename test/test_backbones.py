"""Backbones: feature dims on tiny inputs, the torchvision weights path, real ImageNet weights."""

import cv2
import numpy as np
import pytest
import torch
import torchvision

from ros2_netvlad.model.backbones import BACKBONES, EFFICIENTNET_LITE, build_backbone

# ImageNet classes: 281 tabby, 282 tiger cat, 285 Egyptian cat; 504 coffee mug, 967 espresso, 968
# cup.
CATS = {281, 282, 283, 284, 285}
COFFEE = {504, 967, 968}


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_feature_dim(name):
    backbone = build_backbone(name).module.eval()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 64, 64))
    spec = BACKBONES[name]
    assert out.shape[1] == spec.feature_dim and out.dim() == 4
    assert out.shape[-1] == 64 // spec.stride  # the spec's stride is the network's
    assert len(spec.stage_starts) == 5 and max(spec.stage_starts) < len(backbone)


def test_vgg16_is_cut_at_conv5_3_without_relu_and_pool():
    layers = list(build_backbone("vgg16").module.children())
    assert len(layers) == 29 and isinstance(layers[-1], torch.nn.Conv2d)
    assert layers[-1].out_channels == 512


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="unknown backbone 'alexnet'"):
        build_backbone("alexnet")


def test_torchvision_pretrained_from_local_file(tmp_path):
    """The pretrained path loads a torchvision state dict; tests give it a local file."""
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    loaded = build_backbone("resnet18", pretrained=True, weights_file=str(path)).module
    torch.testing.assert_close(loaded[0].weight, reference.conv1.weight)
    torch.testing.assert_close(loaded[7][1].conv2.weight, reference.layer4[1].conv2.weight)


def classify_lite0(image: np.ndarray) -> list[int]:
    import timm

    from ros2_netvlad.model.backbones import efficientnet_lite0_state_dict

    net = timm.create_model("efficientnet_lite0", pretrained=False)
    net.load_state_dict(efficientnet_lite0_state_dict(net))
    x = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    x = (x - np.array(EFFICIENTNET_LITE.mean, np.float32)) / np.array(
        EFFICIENTNET_LITE.std, np.float32
    )
    with torch.no_grad():
        logits = net.eval()(torch.from_numpy(x).permute(2, 0, 1)[None])
    return logits[0].topk(5).indices.tolist()


def test_efficientnet_lite0_real_weights_classify_real_photos(photos):
    assert CATS & set(classify_lite0(photos["chelsea"])), "chelsea must be a cat class in the top 5"
    assert COFFEE & set(classify_lite0(photos["coffee"])), (
        "coffee must be a cup/espresso in the top 5"
    )


def test_efficientnet_lite0_backbone_uses_those_weights():
    backbone = build_backbone("efficientnet_lite0", pretrained=True)
    random = build_backbone("efficientnet_lite0", pretrained=False)
    assert not torch.equal(backbone.module[0].weight, random.module[0].weight)
    assert backbone.preprocessing == EFFICIENTNET_LITE and backbone.feature_dim == 320
