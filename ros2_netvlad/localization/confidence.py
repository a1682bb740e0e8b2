"""``p_correct``: a calibrated probability that a candidate is the same place, from its inlier
count and descriptor score by logistic regression. The coefficients are fitted by
``benchmarks/geometry.py --fit-p-correct`` on labelled real pairs (docs/slam.md says which) and
checked there for calibration on held-out pairs. A candidate with fewer than min_inliers mutual
matches counts 0 inliers (p 0.007); at the gate's floor (min_inliers, 20) p is 0.74, at 30 0.86.
Refitting it per map with the map's own look-alikes as further negatives was measured and is not
used: on the real sets' re-ranked candidates it was less well calibrated (docs/slam.md)."""

from __future__ import annotations

import numpy as np

# logit = a + b·log(1 + inliers) + c·score; fitted on half of the labelled pairs among
# ../shared/realset-hard's 26 places and 42 distractors, matched as the localizer does by default
# (SIFT; inliers 0 below min_inliers mutual matches, as the localizer counts them); the score is
# not used yet (c = 0): it needs a map's model
COEFFICIENTS = (-4.984, 1.985, 0.0)


def p_correct(inliers: int, score: float, coefficients=COEFFICIENTS) -> float:
    a, b, c = coefficients
    logit = a + b * np.log1p(max(inliers, 0)) + c * float(score)
    return float(1.0 / (1.0 + np.exp(-logit)))
