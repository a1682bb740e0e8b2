"""Checkpoints (round trip, atomic save, fingerprint) and the public-format importers' errors."""

import os

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F

from conftest import random_vgg_model
from ros2_netvlad.config import DescriberConfig
from ros2_netvlad.model import checkpoints
from ros2_netvlad.model.checkpoints import WeightsError, fingerprint, save
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.preprocessing import Preprocessing
from ros2_netvlad.model.weights import load

CPU = DescriberConfig(resize="none", device="cpu", precision="fp32")  # parity: fp32


def small_photo(photos):
    return np.ascontiguousarray(photos["coffee"][::5, ::5])


def test_round_trip_rebuilds_the_exact_model(tmp_path, photos):
    model = random_vgg_model(num_clusters=8, whiten_dim=64, output_dim=32)
    with torch.no_grad():
        model.whiten.linear.weight.normal_()
    path = save(model, tmp_path / "model.pt", epoch=5)
    loaded = load(path)
    assert loaded.arch == model.arch and loaded.preprocessing == model.preprocessing
    assert fingerprint(loaded) == fingerprint(model)
    image = small_photo(photos)
    a, b = Describer(model, CPU)(image), Describer(loaded, CPU)(image)
    assert a.shape == (32,) and np.array_equal(a, b)
    assert checkpoints.read_checkpoint(path)["epoch"] == 5


def test_fingerprint_follows_weights_and_preprocessing():
    model = random_vgg_model()
    before = fingerprint(model)
    with torch.no_grad():
        model.pool.centroids[0, 0] += 1e-3
    assert fingerprint(model) != before
    other = random_vgg_model()
    other.preprocessing = Preprocessing(pixel_scale=255.0)
    assert fingerprint(other) != before


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save(random_vgg_model(), tmp_path / "model.pt")
    original = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save(random_vgg_model(num_clusters=4), path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"], "temporary file left behind"


def test_bad_files_give_errors_naming_them(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pt: not a readable torch checkpoint"):
        load(garbage)
    other = tmp_path / "classifier.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(WeightsError, match="not a NetVLAD checkpoint"):
        load(other)


def test_future_format_version_is_refused(tmp_path):
    path = save(random_vgg_model(), tmp_path / "model.pt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["format_version"] = 99
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError, match="format_version 99"):
        load(path)


def peer_style_state(num_clusters=8, dim=512, num_pcs=0):
    model = random_vgg_model(num_clusters)
    state = {
        k.replace("backbone.", "encoder."): v
        for k, v in model.state_dict().items()
        if k.startswith(("backbone.", "pool."))
    }
    if num_pcs:
        state["WPCA.0.weight"] = torch.randn(num_pcs, num_clusters * dim, 1, 1)
        state["WPCA.0.bias"] = torch.randn(num_pcs)
    return state


def test_mismatches_are_named(tmp_path):
    state = peer_style_state(num_pcs=16)
    state["WPCA.0.weight"] = torch.randn(16, 100, 1, 1)
    torch.save({"state_dict": state}, tmp_path / "a.pth")
    with pytest.raises(WeightsError, match="WPCA expects 100-D input but NetVLAD gives 4096-D"):
        load(tmp_path / "a.pth")

    torch.save({"state_dict": peer_style_state(num_pcs=16), "num_pcs": 32}, tmp_path / "b.pth")
    with pytest.raises(WeightsError, match="num_pcs is 32 but the WPCA layer has 16 outputs"):
        load(tmp_path / "b.pth")

    state = peer_style_state()
    state["pool.conv.weight"] = torch.randn(4, 512, 1, 1)
    torch.save({"state_dict": state}, tmp_path / "c.pth")
    with pytest.raises(
        WeightsError, match=r"pool.conv.weight is \(4, 512, 1, 1\), expected \(8, 512, 1, 1\)"
    ):
        load(tmp_path / "c.pth")

    state = peer_style_state()
    del state["encoder.28.weight"]
    torch.save({"state_dict": state}, tmp_path / "d.pth")
    with pytest.raises(WeightsError, match="missing backbone.28.weight"):
        load(tmp_path / "d.pth")


def test_non_tensor_pickles_need_trust(tmp_path):
    path = tmp_path / "old.pth"
    torch.save({"state_dict": peer_style_state(), "recalls": {1: np.float64(0.5)}}, path)
    with pytest.raises(WeightsError, match="trusted=True"):
        load(path)
    assert load(path, trusted=True).pool.num_clusters == 8


# --- MATLAB struct (the format hloc reads) -------------------------------------------------------


def write_matlab_struct(path, convs, assign, centers, wpca_w, wpca_b, average_rgb):
    """MATLAB layout: conv H×W×in×out, vlad assignment D×K and negated centres D×K, WPCA 1×1×in×out
    over a dimension-major (D×K) VLAD vector."""

    def layer(name, kind, *ws):
        cell = np.empty((1, len(ws)), dtype=object)
        for i, w in enumerate(ws):
            cell[0, i] = w
        return {"name": name, "type": kind, "weights": cell}

    layers = []
    for i, (w, b) in enumerate(convs):
        layers += [
            layer(f"conv{i}", "conv", w.permute(2, 3, 1, 0).numpy(), b.numpy()),
            layer(f"relu{i}", "relu"),
        ]
    layers[-1] = layer("preL2", "normalize")
    layers += [
        layer("vlad_core", "custom", assign, -centers),
        layer("postL2", "custom"),
        layer("WPCA", "conv", wpca_w.T[None, None], wpca_b),
        layer("finalL2", "custom"),
    ]
    cells = np.empty((1, len(layers)), dtype=object)
    for i, entry in enumerate(layers):
        cells[0, i] = entry
    net = {
        "layers": cells,
        "meta": {"normalization": {"averageImage": np.array(average_rgb).reshape(1, 1, 3)}},
    }
    scipy.io.savemat(path, {"net": net})


def hloc_style_descriptor(backbone, image, average_rgb, assign, centers, wpca_w, wpca_b):
    """Independent reference: VLAD flattened D×K as in the MATLAB/hloc code."""
    x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None] - torch.tensor(
        average_rgb
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        f = F.normalize(backbone(x.float()).flatten(2), dim=1)  # 1×D×N
        scores = F.softmax(torch.einsum("dk,bdn->bkn", torch.from_numpy(assign), f), dim=1)
        diff = f.unsqueeze(2) - torch.from_numpy(centers).unsqueeze(0).unsqueeze(-1)
        desc = F.normalize((scores.unsqueeze(1) * diff).sum(-1), dim=1).view(1, -1)
        desc = F.normalize(desc, dim=1)
        return F.normalize(
            F.linear(desc, torch.from_numpy(wpca_w), torch.from_numpy(wpca_b)), dim=1
        )[0].numpy()


def test_matlab_struct_import_matches_the_reference_layout(tmp_path, photos):
    rng = np.random.default_rng(0)
    backbone = random_vgg_model().backbone
    convs = [
        (m.weight.detach(), m.bias.detach()) for m in backbone if isinstance(m, torch.nn.Conv2d)
    ]
    k, d, out = 8, 512, 24
    assign = rng.normal(size=(d, k)).astype(np.float32) * 5
    centers = rng.normal(size=(d, k)).astype(np.float32) * 0.05
    wpca_w = rng.normal(size=(out, d * k)).astype(np.float32)
    wpca_b = rng.normal(size=out).astype(np.float32)
    average = [123.68, 116.78, 103.94]
    path = tmp_path / "Pitts30K_struct.mat"
    write_matlab_struct(path, convs, assign, centers, wpca_w, wpca_b, average)

    model = load(path)
    assert (model.pool.num_clusters, model.arch.whiten_dim) == (k, out)
    assert model.preprocessing == Preprocessing(
        mean=tuple(average), std=(1, 1, 1), pixel_scale=255.0
    )
    image = small_photo(photos)
    got = Describer(model, CPU)(image)
    want = hloc_style_descriptor(backbone, image, average, assign, centers, wpca_w, wpca_b)
    assert np.abs(got - want).max() <= 1e-4


def test_matlab_struct_with_wrong_layers_is_refused(tmp_path):
    net = {
        "layers": np.empty((1, 0), dtype=object),
        "meta": {"normalization": {"averageImage": np.zeros(3)}},
    }
    scipy.io.savemat(tmp_path / "bad.mat", {"net": net})
    with pytest.raises(WeightsError, match="found 0 conv and 0 vlad layers"):
        load(tmp_path / "bad.mat")
