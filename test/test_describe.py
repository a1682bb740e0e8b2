"""Describer: shapes, batching, resize policies, precision, and clear errors on bad input."""

import dataclasses

import numpy as np
import pytest

from conftest import random_vgg_model
from ros2_netvlad.config import DescriberConfig
from ros2_netvlad.config_rules import ConfigError
from ros2_netvlad.errors import DeviceError
from ros2_netvlad.model.describer import Describer, describe_all

CPU = DescriberConfig(device="cpu", max_side=96, precision="fp32")  # comparisons at fp32


@pytest.fixture(scope="module")
def describer():
    return Describer(random_vgg_model(num_clusters=4), CPU)


@pytest.fixture(scope="module")
def images():
    import skimage.data

    return [
        np.ascontiguousarray(skimage.data.astronaut()[::4, ::4]),  # 128×128
        np.ascontiguousarray(skimage.data.coffee()[::5, ::5]),  # 80×120
        np.ascontiguousarray(skimage.data.chelsea()[::4, ::4]),
    ]  # 75×113


def test_single_and_batched_descriptors_agree(describer, images):
    single = np.stack([describer(image) for image in images])
    batched = describer(images)
    assert single.shape == batched.shape == (3, 4 * 512 + 512)  # NetVLAD K=4 and the GeM head
    assert batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(single, batched, atol=1e-5)
    np.testing.assert_allclose(describe_all(describer, iter(images)), batched, atol=1e-5)


def test_stacked_batch_array(describer, images):
    batch = np.stack([images[0], images[0][:, ::-1]])
    out = describer(batch)
    assert out.shape == (2, 2560) and not np.allclose(out[0], out[1])


def test_resize_policies(describer, images):
    big = images[0]  # 128×128
    assert describer.resize(big).shape == (96, 96, 3)
    assert describer.resize(images[1]).shape == (64, 96, 3)  # 80×120 → longest side 96, aspect kept
    assert describer.resize(images[1][:40, :60]) is not None and describer.resize(
        images[1][:40, :60]
    ).shape == (40, 60, 3)
    exact = Describer(
        describer.model, dataclasses.replace(CPU, resize="exact", width=64, height=48)
    )
    assert exact.resize(big).shape == (48, 64, 3)
    none = Describer(describer.model, dataclasses.replace(CPU, resize="none"))
    assert none.resize(big) is big


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((32, 32, 3), np.float32), "dtype uint8"),
        (np.zeros((32, 32), np.uint8), "grayscale"),
        (np.zeros((32, 32, 1), np.uint8), "grayscale"),
        (np.zeros((32, 32, 4), np.uint8), "4 channels"),
        (np.zeros((0, 32, 3), np.uint8), "empty image"),
        ([[1, 2, 3]], "numpy array"),
        ([], "no images"),
    ],
)
def test_bad_input_is_named(describer, bad, message):
    with pytest.raises(ValueError, match=message):
        describer(bad)


def test_bf16_on_cpu_is_close_to_fp32(describer, images):
    bf16 = Describer(describer.model, dataclasses.replace(CPU, precision="bf16"))
    cosine = np.sum(bf16(images) * describer(images), axis=1)
    assert cosine.min() > 0.98


def test_memory_format_does_not_change_results(describer, images):
    plain = Describer(
        random_vgg_model(num_clusters=4), dataclasses.replace(CPU, channels_last=False)
    )
    np.testing.assert_allclose(plain(images), describer(images), atol=1e-4)


def test_device_and_precision_errors():
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            Describer(random_vgg_model(), DescriberConfig(device="cuda"))
    with pytest.raises(
        DeviceError, match="model.device is 'cuda:99'"
    ):  # here and on any GPU machine
        Describer(random_vgg_model(), DescriberConfig(device="cuda:99"))
    with pytest.raises(DeviceError, match="fp16 needs a CUDA device"):
        Describer(random_vgg_model(), DescriberConfig(device="cpu", precision="fp16"))
    with pytest.raises(ConfigError, match="model.precision"):
        DescriberConfig(precision="int8")
