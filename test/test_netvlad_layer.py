"""NetVLAD layer, normalization and whitening against brute-force references."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ros2_netvlad.model.netvlad import NetVLAD, Whitening
from ros2_netvlad.model.preprocessing import Normalize, Preprocessing


def vlad_reference(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, centroids: np.ndarray
) -> np.ndarray:
    """The paper's formula, one feature and one cluster at a time (float64)."""
    n, d = x.shape[:2]
    out = []
    for sample in x.reshape(n, d, -1).astype(np.float64):
        feats = sample.T / np.linalg.norm(sample.T, axis=1, keepdims=True)
        logits = feats @ weight.T + bias
        a = np.exp(logits - logits.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
        v = np.zeros_like(centroids, dtype=np.float64)
        for k in range(len(centroids)):
            for i in range(len(feats)):
                v[k] += a[i, k] * (feats[i] - centroids[k])
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        v = v.reshape(-1)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_netvlad_matches_brute_force():
    torch.manual_seed(1)
    layer = NetVLAD(num_clusters=5, dim=7)
    with torch.no_grad():
        layer.conv.weight.normal_()
        layer.conv.bias.normal_()
    x = torch.randn(3, 7, 4, 6)
    got = layer(x).detach().numpy()
    want = vlad_reference(
        x.numpy(),
        layer.conv.weight[:, :, 0, 0].detach().numpy(),
        layer.conv.bias.detach().numpy(),
        layer.centroids.detach().numpy(),
    )
    assert got.shape == (3, 35)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_init_from_centroids_is_softmax_of_negative_squared_distance():
    torch.manual_seed(2)
    centroids = F.normalize(torch.randn(6, 16), dim=1)
    layer = NetVLAD(6, 16)
    layer.init_from_centroids(centroids, alpha=7.5)
    x = F.normalize(torch.randn(1, 16, 3, 3), dim=1)
    logits = layer.conv(x).flatten(2)[0].T  # HW × K
    distances = torch.cdist(x.flatten(2)[0].T, centroids) ** 2
    np.testing.assert_allclose(
        F.softmax(logits, 1).detach(), F.softmax(-7.5 * distances, 1), atol=1e-5
    )
    np.testing.assert_allclose(layer.conv.bias.detach(), -7.5 * centroids.pow(2).sum(1), rtol=1e-6)


def test_init_rejects_wrong_centroid_shape():
    with pytest.raises(ValueError, match="centroids must be 6x16"):
        NetVLAD(6, 16).init_from_centroids(np.zeros((5, 16)), 1.0)


def test_intra_normalization_gives_every_cluster_equal_weight():
    layer = NetVLAD(4, 8)
    v = layer(torch.randn(2, 8, 5, 5)).detach().reshape(2, 4, 8)
    np.testing.assert_allclose(v.norm(dim=2), 0.5, atol=1e-5)


def test_whitening_truncation_uses_the_first_dims():
    torch.manual_seed(3)
    full, cut = Whitening(20, 10), Whitening(20, 10, keep_dims=4)
    cut.load_state_dict(full.state_dict())
    x = torch.randn(5, 20)
    raw = full.linear(x)
    np.testing.assert_allclose(cut(x).detach(), F.normalize(raw[:, :4], dim=1).detach(), atol=1e-6)
    assert cut.output_dim == 4 and full(x).shape == (5, 10)


def test_normalize_implements_preprocessing_formula():
    rgb = torch.tensor([[[[10.0]], [[128.0]], [[250.0]]]])
    for p in (
        Preprocessing(),
        Preprocessing(mean=(123.7, 116.8, 103.9), std=(1, 1, 1), pixel_scale=255),
    ):
        want = (rgb[0, :, 0, 0] / 255 * p.pixel_scale - torch.tensor(p.mean)) / torch.tensor(p.std)
        np.testing.assert_allclose(Normalize(p)(rgb)[0, :, 0, 0], want, rtol=1e-5)
