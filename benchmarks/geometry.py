"""Relative poses of verified loop closures: accuracy, covariance consistency, p_correct
calibration and cost.

    python benchmarks/geometry.py [--queries 90] [--fit-p-correct]

1. The 3-D world (demo/world3d.py): revisit views (other light, up to 0.6 m over, turned up to
   5°) against the first lap's three nearest frames, verified by SIFT and solved by the
   localizer's own code, RGB-D (metric) and monocular: rotation / direction / translation
   errors, NEES over the verified pairs, and the share inside the 95 % ellipsoid.
2. Cost: the geometry per verified candidate, against the verification it follows (same run).
3. A real stereo pair (scikit-image's Middlebury motorcycle, published calibration): rotation
   error and the baseline's direction.
4. ``p_correct`` on labelled real pairs (../shared/realset-hard: pairs of one place are
   positives, a place against every other place and the distractors negatives): expected
   calibration error on the held-out half; ``--fit-p-correct`` fits the logistic regression on
   the other half and prints coefficients for localization/confidence.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from ros2_netvlad.camera import Camera
from ros2_netvlad.config import LocalizerConfig
from ros2_netvlad.demo.world_pairs import world_pairs
from ros2_netvlad.evaluation.geometry import (
    accuracy,
    consistency,
    expected_calibration_error,
    pose_error,
    true_relative,
)
from ros2_netvlad.localization.confidence import COEFFICIENTS, p_correct
from ros2_netvlad.localization.relative_pose import verified_pair_pose
from ros2_netvlad.verification.features import FeatureSettings
from ros2_netvlad.verification.registry import make_verifier

HARD = Path(__file__).resolve().parents[1].parent / "shared" / "realset-hard"


def world(queries: int) -> None:
    for name, depth, dof in (("RGB-D (metric)", True, 6), ("monocular", False, 3)):
        started = time.perf_counter()
        pairs = world_pairs(queries, seed=11, depth=depth)
        solved = [p for p in pairs if p.estimate is not None]
        errors = [pose_error(p.estimate, true_relative(p.map_pose, p.query_pose)) for p in solved]
        figures, nees = accuracy(errors), consistency(errors, dof)
        print(
            f"\n3-D world, {name}: {len(pairs)} verified pairs, {len(solved)} with a pose "
            f"({time.perf_counter() - started:.0f} s)"
        )
        print(
            f"  rotation error median {figures['rotation_deg_median']:.2f}°, "
            f"p90 {figures['rotation_deg_p90']:.2f}°; translation direction median "
            f"{figures['direction_deg_median']:.2f}°"
        )
        if depth:
            print(
                f"  translation error median {100 * figures['translation_m_median']:.1f} cm "
                f"(baseline median {figures['baseline_m_median']:.2f} m); error / (3 % "
                f"baseline + 2 cm) median {figures['translation_budget_ratio_median']:.2f}"
            )
        print(
            f"  NEES ({dof} DoF{'' if depth else ', rotation'}) mean {nees['nees_mean']:.2f}, "
            f"median {nees['nees_median']:.2f}; inside the 95 % ellipsoid "
            f"{100 * nees['inside_95']:.1f} %"
        )


def cost() -> None:
    """ms per verified candidate: the verification (matching + MAGSAC++ F) and then the pose."""
    from ros2_netvlad.demo.world3d import render, route_pose, world_camera

    camera, settings = world_camera(), FeatureSettings(root=LocalizerConfig.root_sift)
    verifier = make_verifier(settings)
    query = verifier.extract(render(route_pose(20.3, 0.4, 0.03), camera)[0])
    rgb, depth = render(route_pose(20.0), camera)
    found = verifier.extract(rgb).with_depths(depth, camera, settings)
    prepared_query, prepared_found = verifier.prepare(query), verifier.prepare(found)
    timings = {"verification": [], "metric pose": [], "monocular pose": []}
    mono = type(found)(found.keypoints, found.descriptors, None)
    for _ in range(20):
        started = time.perf_counter()
        evidence = verifier.evidence(prepared_query, prepared_found, 30)
        timings["verification"].append(time.perf_counter() - started)
        for key, stored in (("metric pose", found), ("monocular pose", mono)):
            started = time.perf_counter()
            verified_pair_pose(evidence, query, stored, camera, camera, settings)
            timings[key].append(time.perf_counter() - started)
    print(
        f"\ncost per verified candidate ({evidence.inliers} inliers, "
        f"{cv2.getNumThreads()} OpenCV threads):"
    )
    base = np.median(timings["verification"])
    for key, values in timings.items():
        ms = 1000 * np.median(values)
        print(f"  {key:<15} {ms:6.2f} ms  ({np.median(values) / base:.2f} x verification)")


def stereo() -> None:
    left, right, _ = skimage.data.stereo_motorcycle()
    scale = left.shape[1] / 2964
    settings = FeatureSettings(max_features=2048)
    verifier = make_verifier(settings)

    def camera(cx: float) -> Camera:
        f = 3997.684 * scale
        k = (f, 0, cx * scale, 0, f, 1011.728 * scale, 0, 0, 1)
        return Camera(left.shape[1], left.shape[0], k, (), "plumb_bob", (0, 0, 0, 0, 0, 0, 1))

    a, b = verifier.extract(left), verifier.extract(right)
    evidence = verifier.evidence(verifier.prepare(b), verifier.prepare(a), 30)
    estimate = verified_pair_pose(evidence, b, a, camera(1307.839), camera(1176.728), settings)
    rotation = np.degrees(Rotation.from_quat(estimate.pose.orientation).magnitude())
    direction = np.degrees(np.arccos(np.clip(estimate.pose.position[0], -1, 1)))
    print(
        f"\nreal stereo pair (Middlebury motorcycle): {evidence.inliers} inliers, geometry "
        f"{estimate.geometry}, rotation error {rotation:.2f}°, baseline direction error "
        f"{direction:.2f}° (truth: identity, +x)"
    )


def labelled_pairs() -> tuple[np.ndarray, np.ndarray]:
    """(inliers, same place) of every pair among ../shared/realset-hard's images, matched as the
    localizer matches by default (RootSIFT)."""
    settings = FeatureSettings(root=LocalizerConfig.root_sift)
    verifier = make_verifier(settings)
    images = []
    for path in sorted((HARD / "pairs").glob("*/*.jpg")) + sorted(HARD.glob("distractors/*")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        place = path.parent.name if path.parent.parent.name == "pairs" else f"x{path.name}"
        images.append((place, verifier.prepare(verifier.extract(rgb))))
    inliers, labels = [], []
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            (pi, a), (pj, b) = images[i], images[j]
            if pi.startswith("x") and pj.startswith("x"):
                continue  # two distractors: no place between them is labelled
            inliers.append(verifier.evidence(a, b, 30).inliers)
            labels.append(pi == pj)
    return np.array(inliers), np.array(labels, float)


def calibration(fit: bool) -> None:
    if not HARD.is_dir():
        print(f"\np_correct: {HARD} not found; skipped")
        return
    inliers, labels = labelled_pairs()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    train, held = order[::2], order[1::2]
    coefficients = COEFFICIENTS
    if fit:
        coefficients = _fit(inliers[train], labels[train])
        print(f"\nfitted COEFFICIENTS = ({coefficients[0]:.3f}, {coefficients[1]:.3f}, 0.0)")
    # the fit is on inliers (the score needs a map's model; it enters with coefficient 0)
    probabilities = np.array([p_correct(n, 0.0, coefficients) for n in inliers[held]])
    ece = expected_calibration_error(probabilities, labels[held])
    print(
        f"\np_correct on {len(held)} held-out labelled real pairs ({int(labels[held].sum())} "
        f"same place): expected calibration error {ece:.3f}"
    )
    edges = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    for low, high in zip(edges, edges[1:]):
        inside = (probabilities >= low) & ((probabilities < high) | (high == 1.0))
        if inside.any():
            print(
                f"  p_correct {low:.1f}-{high:.1f}: {inside.sum():5d} pairs, mean "
                f"{probabilities[inside].mean():.3f}, same place {labels[held][inside].mean():.3f}"
            )


def _fit(inliers: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    x = np.log1p(inliers)

    def loss(w):
        logit = w[0] + w[1] * x
        return np.sum(np.logaddexp(0, logit) - labels * logit) + 1e-3 * w @ w

    w = minimize(loss, np.zeros(2), method="BFGS").x
    return float(w[0]), float(w[1]), 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=90, help="revisit views (≥ 200 pairs)")
    parser.add_argument("--fit-p-correct", action="store_true")
    args = parser.parse_args()
    world(args.queries)
    cost()
    stereo()
    calibration(args.fit_p_correct)


if __name__ == "__main__":
    main()
