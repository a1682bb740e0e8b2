"""The shortlist's optional parts (issue 20): a GeM of the backbone's feature map concatenated to
NetVLAD with a weight, and multi-scale describing. Checked against their definitions in fp32
(tolerances 1e-5 / 1e-4 for the exported graph), through a checkpoint and ONNX, and a model at
the defaults is exactly the NetVLAD of before (same fingerprint)."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import torch
import torch.nn.functional as F

from ros2_netvlad.config import ARCH_ADDED, ArchConfig, DescriberConfig
from ros2_netvlad.model.backends import (
    calibration_sample,
    onnxruntime_runner,
    torch_reference,
)
from ros2_netvlad.model.checkpoints import (
    checkpoint_bytes,
    fingerprint,
    model_from_checkpoint,
    read_checkpoint,
)
from ros2_netvlad.model.export import export_model
from ros2_netvlad.model.netvlad import SCALES, GeM, build_model

CPU = DescriberConfig(device="cpu", max_side=320, precision="fp32")


def _model(**arch) -> torch.nn.Module:
    """A small model: NetVLAD alone unless ``arch`` says otherwise (not the defaults)."""
    torch.manual_seed(0)
    arch = {**ARCH_ADDED, **arch}
    return build_model(ArchConfig("efficientnet_lite0", 4, **arch), pretrained=False).eval()


def _images(count: int = 2) -> torch.Tensor:
    return (
        torch.from_numpy(np.stack(calibration_sample((96, 64))[:count])).permute(0, 3, 1, 2).float()
    )


def test_gem_is_the_generalized_mean():
    x = torch.rand(2, 5, 3, 4) + 0.1
    expected = F.normalize((x**3).mean(dim=(2, 3)) ** (1 / 3), dim=1)
    assert torch.allclose(GeM()(x), expected, atol=1e-6)


@torch.no_grad()
def test_the_gem_head_concatenates_with_its_weight():
    weight = 0.5
    model = _model(gem_weight=weight)
    images = _images()
    features = model.features(images)
    vlad, gem = model.pool(features), model.gem(features)
    out = model(images)
    assert (
        out.shape[1]
        == model.output_dim
        == model.pooled_dim
        == 4 * model.feature_dim + model.feature_dim
    )
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    # the cosine of two images is (vlad·vlad' + w² gem·gem') / (1 + w²)
    expected = (vlad[0] @ vlad[1] + weight**2 * gem[0] @ gem[1]) / (1 + weight**2)
    assert abs(float(out[0] @ out[1]) - float(expected)) < 1e-5


@torch.no_grad()
def test_multiscale_sums_the_descriptors_of_the_smaller_images():
    model = _model(multiscale=True)
    images = _images(1)
    parts = [model.pooled(model.features(images))] + [
        model.pooled(model.features(F.interpolate(images, scale_factor=s, mode="bilinear")))
        for s in SCALES[1:]
    ]
    expected = F.normalize(sum(parts), dim=1)
    assert torch.allclose(model(images), expected, atol=1e-5)
    single = _model()
    single.load_state_dict(model.state_dict())
    assert not torch.allclose(single(images), expected, atol=1e-3)  # the scales matter


def _fingerprint_before_issue_20(model) -> str:
    """checkpoints.fingerprint as it was: the arch had no gem_weight / multiscale."""
    arch = {k: v for k, v in dataclasses.asdict(model.arch).items()}
    del arch["gem_weight"], arch["multiscale"]
    digest = hashlib.sha256()
    ident = (arch, dataclasses.asdict(model.preprocessing), model.output_dim)
    digest.update(repr(ident).encode())
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def test_old_models_keep_their_fingerprint_and_the_parts_travel_in_checkpoints(tmp_path):
    defaults = ArchConfig("vgg16")
    assert defaults.gem_weight == 1.0 and not defaults.multiscale
    plain = _model()  # as every model before issue 20
    assert fingerprint(plain) == _fingerprint_before_issue_20(plain)  # old maps still open
    # a checkpoint written before the fields existed reads as NetVLAD alone, one scale
    old = torch.load(io.BytesIO(checkpoint_bytes(plain)), weights_only=True)
    del old["arch"]["gem_weight"], old["arch"]["multiscale"]
    loaded = model_from_checkpoint(old)
    assert loaded.gem is None and not loaded.arch.multiscale
    assert fingerprint(loaded) == fingerprint(plain)
    with_gem = _model(gem_weight=1.0)
    with_gem.load_state_dict(plain.state_dict())
    assert fingerprint(with_gem) != fingerprint(plain)  # same weights, another descriptor
    both = _model(gem_weight=0.5, multiscale=True)
    path = tmp_path / "m.pt"
    path.write_bytes(checkpoint_bytes(both))
    loaded = model_from_checkpoint(read_checkpoint(path), path).eval()
    assert loaded.arch == both.arch and fingerprint(loaded) == fingerprint(both)
    with torch.no_grad():
        assert torch.allclose(loaded(_images()), both(_images()), atol=1e-6)


def test_the_exported_graph_has_both_parts(tmp_path):
    model = _model(gem_weight=0.5, multiscale=True)
    exported = export_model(model, tmp_path / "m.onnx")
    assert exported.parity_max_diff <= 1e-4  # the tool's own check on real photos
    run = onnxruntime_runner(exported.onnx, torch.device("cpu"))
    batch = calibration_sample((200, 150))[:2]
    assert np.abs(run(batch) - torch_reference(model, batch)).max() <= 1e-4
