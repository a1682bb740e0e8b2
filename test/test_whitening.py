"""PCA whitening: the layer equals faiss's PCA transform followed by L2, truncation included."""

import faiss
import numpy as np
import pytest
import torch

from conftest import random_vgg_model
from ros2_netvlad.config import DescriberConfig
from ros2_netvlad.model.checkpoints import save
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.weights import load
from ros2_netvlad.model.whitening import apply_whitening, fit_pca_whitening, pooled_descriptors


def l2(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_whitening_layer_equals_faiss_transform_plus_l2():
    rng = np.random.default_rng(0)
    x = l2((rng.normal(size=(400, 12)) @ rng.normal(size=(12, 64))).astype(np.float32))
    weight, bias = fit_pca_whitening(x, 8)
    reference = faiss.PCAMatrix(64, 8, -0.5, False)
    reference.train(x)
    model = random_vgg_model(num_clusters=1)
    model.pool.num_clusters, model.pool.dim = 1, 64  # the layer only needs the input dim to match
    model.gem = None
    apply_whitening(model, weight, bias, output_dim=5)
    with torch.no_grad():
        got = model.whiten(torch.from_numpy(x)).numpy()
    whitened = reference.apply(x)
    np.testing.assert_allclose(got, l2(whitened[:, :5]), atol=1e-4)  # truncate, then L2
    covariance = np.cov(whitened.T)
    np.testing.assert_allclose(
        covariance / covariance[0, 0], np.eye(8), atol=0.05
    )  # equal variance per dim


def test_whitening_round_trips_through_a_checkpoint(tmp_path, photos):
    model = random_vgg_model(num_clusters=4)
    describer = Describer(model, DescriberConfig(device="cpu", max_side=64))
    images = [np.ascontiguousarray(p[::8, ::8]) for p in photos.values()] * 3
    pooled = pooled_descriptors(model, describer, images)
    assert pooled.shape == (12, model.pooled_dim)
    weight, bias = fit_pca_whitening(
        pooled + 1e-3 * np.random.default_rng(1).normal(size=pooled.shape), 6
    )
    apply_whitening(model, weight, bias)
    path = save(model, tmp_path / "white.pt")
    loaded = load(path)
    assert loaded.arch.whiten_dim == 6 and loaded.output_dim == 6
    np.testing.assert_allclose(
        Describer(loaded, DescriberConfig(device="cpu", max_side=64))(images),
        describer(images),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="needs at least 50 descriptors"):
        fit_pca_whitening(pooled, 50)


def test_fit_pca_cli_on_a_bag(tmp_path, capsys):
    from ros2_netvlad.demo import world
    from ros2_netvlad.tools import fit_pca

    world.write_traversal(tmp_path / "bag", world.places(4), seed=3)
    model = random_vgg_model(num_clusters=2)
    save(model, tmp_path / "model.pt")
    args = [
        "--weights",
        str(tmp_path / "model.pt"),
        "--out",
        str(tmp_path / "white.pt"),
        "--bag",
        str(tmp_path / "bag"),
        "--image-topic",
        "/camera/image_raw/compressed",
        "--dim",
        "8",
        "--output-dim",
        "4",
        "--max-side",
        "64",
        "--device",
        "cpu",
    ]
    assert fit_pca.main(args) == 0
    assert "fitted on 12 images" in capsys.readouterr().out
    white = load(tmp_path / "white.pt")
    assert (white.arch.whiten_dim, white.output_dim) == (8, 4)
    assert fit_pca.main([*args[:-6], "--dim", "100", "--max-side", "64", "--device", "cpu"]) == 2
    assert "needs at least 100 descriptors" in capsys.readouterr().err
