"""Parity with the peer implementation (Patch-NetVLAD, installed with --no-deps): its model code,
random weights, a checkpoint in its format, loaded by ours, compared on a real photo."""

import configparser

import cv2
import numpy as np
import pytest
import torch
import torchvision
from patchnetvlad.models import models_generic as peer
from torch import nn

from ros2_netvlad.config import DescriberConfig
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.weights import load

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def peer_model(num_clusters: int, num_pcs: int = 0, vladv2: bool = False) -> nn.Module:
    torch.manual_seed(0)
    encoder = nn.Sequential(*list(torchvision.models.vgg16(weights=None).features.children())[:-2])
    config = configparser.ConfigParser()
    config["global_params"] = {
        "pooling": "netvlad",
        "num_clusters": str(num_clusters),
        "vladv2": str(vladv2),
        "num_pcs": str(num_pcs),
    }
    model = peer.get_model(encoder, 512, config["global_params"], append_pca_layer=bool(num_pcs))
    with torch.no_grad():
        model.pool.centroids.normal_()
        model.pool.conv.weight.normal_(std=0.3)
        if vladv2:
            model.pool.conv.bias = nn.Parameter(torch.randn(num_clusters))
    return model.eval()


def peer_descriptor(model: nn.Module, image: np.ndarray) -> np.ndarray:
    x = (image.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        vlad = model.pool(model.encoder(torch.from_numpy(x).permute(2, 0, 1)[None]))
        if hasattr(model, "WPCA"):
            vlad = peer.get_pca_encoding(model, vlad)
    return vlad[0].numpy()


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), (160, 128), interpolation=cv2.INTER_AREA)


def ours(path, image: np.ndarray, **kwargs) -> np.ndarray:
    fp32 = DescriberConfig(resize="none", device="cpu", precision="fp32")  # parity at fp32
    return Describer(load(path, **kwargs), fp32)(image)


def test_patch_netvlad_checkpoint_with_wpca(tmp_path, photo):
    model = peer_model(num_clusters=64, num_pcs=512)
    path = tmp_path / "patchnetvlad_WPCA512.pth.tar"
    torch.save({"state_dict": model.state_dict(), "num_pcs": 512}, path)
    got, want = ours(path, photo), peer_descriptor(model, photo)
    assert got.shape == want.shape == (512,)
    assert np.abs(got - want).max() <= 1e-4


def test_pytorch_netvlad_checkpoint_dataparallel_vladv2(tmp_path, photo):
    model = peer_model(num_clusters=16, vladv2=True)
    state = {
        k.replace("encoder.", "encoder.module.").replace("pool.", "pool.module."): v
        for k, v in model.state_dict().items()
    }
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 3, "state_dict": state, "best_score": 0.87, "parallel": True}, path)
    got, want = ours(path, photo), peer_descriptor(model, photo)
    assert got.shape == want.shape == (16 * 512,)
    assert np.abs(got - want).max() <= 1e-4
