"""``p_correct``: a calibrated probability that a candidate is the same place, from its inlier
count and descriptor score by logistic regression. The coefficients are fitted by
``benchmarks/geometry.py --fit-p-correct`` on labelled real pairs (docs/slam.md says which) and
checked there for calibration on held-out pairs."""

from __future__ import annotations

import numpy as np

# logit = a + b·log(1 + inliers) + c·score
COEFFICIENTS = (-9.0, 2.5, 2.0)


def p_correct(inliers: int, score: float, coefficients=COEFFICIENTS) -> float:
    a, b, c = coefficients
    logit = a + b * np.log1p(max(inliers, 0)) + c * float(score)
    return float(1.0 / (1.0 + np.exp(-logit)))
