"""Poses: quaternions (x, y, z, w), interpolation, averaging, transforms, GNSS → local metric
frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from ros2_netvlad.errors import InputError


@dataclass(frozen=True)
class Pose:
    """A 3-D pose: position (x, y, z) in metres and orientation quaternion (qx, qy, qz, qw)."""

    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    orientation: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", np.asarray(self.position, dtype=np.float64).reshape(3))
        q = np.asarray(self.orientation, dtype=np.float64).reshape(4)
        norm = np.linalg.norm(q)
        if not np.isfinite(norm) or norm < 1e-9:
            raise InputError(f"orientation {q} is not a valid quaternion")
        object.__setattr__(self, "orientation", q / norm)

    def inverse(self) -> "Pose":
        conjugate = self.orientation * np.array([-1.0, -1.0, -1.0, 1.0])
        return Pose(-rotate(conjugate, self.position), conjugate)

    def matrix(self) -> np.ndarray:
        """The 4×4 homogeneous transform."""
        out = np.eye(4)
        out[:3, :3] = Rotation.from_quat(self.orientation).as_matrix()
        out[:3, 3] = self.position
        return out

    @staticmethod
    def from_matrix(matrix: np.ndarray) -> "Pose":
        return Pose(matrix[:3, 3], Rotation.from_matrix(matrix[:3, :3]).as_quat())

    def compose(self, other: "Pose") -> "Pose":
        """self ∘ other: ``other`` expressed in self's parent frame."""
        return Pose(
            self.position + rotate(self.orientation, other.position),
            quat_multiply(self.orientation, other.orientation),
        )


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    u, w = np.asarray(q[:3]), q[3]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    dot = float(np.dot(a, b))
    if dot < 0.0:  # take the short way round
        b, dot = -b, -dot
    if dot > 0.9995:
        q = a + t * (b - a)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Rotation angle (radians) between two orientations."""
    return float(2.0 * np.arccos(np.clip(abs(np.dot(a, b)), 0.0, 1.0)))


def vector_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (radians) between two directions (0 when either is zero)."""
    cosine = np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
    return float(np.arccos(np.clip(cosine, -1.0, 1.0)))


def average_quaternions(quaternions: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean orientation (Markley et al. 2007): the principal eigenvector of Σ wᵢ qᵢqᵢᵀ,
    which ignores the q/−q sign ambiguity."""
    q = np.asarray(quaternions, float).reshape(-1, 4)
    w = np.ones(len(q)) if weights is None else np.asarray(weights, float)
    matrix = (q * w[:, None]).T @ q
    mean = np.linalg.eigh(matrix)[1][:, -1]
    return mean if mean[3] >= 0 else -mean


def perpendicular_basis(direction: np.ndarray) -> np.ndarray:
    """3×2 orthonormal basis of the plane perpendicular to a unit vector (a bearing's tangent)."""
    helper = np.eye(3)[np.argmin(np.abs(direction))]
    first = np.cross(direction, helper)
    first /= np.linalg.norm(first)
    return np.c_[first, np.cross(direction, first)]


def yaw_quaternion(yaw: float) -> np.ndarray:
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


# --- GNSS -----------------------------------------------------------------------------------------
_A, _F = 6378137.0, 1 / 298.257223563  # WGS-84
_E2 = _F * (2 - _F)


def geodetic_to_ecef(lat_deg: np.ndarray, lon_deg: np.ndarray, alt: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    n = _A / np.sqrt(1 - _E2 * np.sin(lat) ** 2)
    return np.stack(
        [
            (n + alt) * np.cos(lat) * np.cos(lon),
            (n + alt) * np.cos(lat) * np.sin(lon),
            (n * (1 - _E2) + alt) * np.sin(lat),
        ],
        axis=-1,
    )


def geodetic_to_enu(
    lat: np.ndarray, lon: np.ndarray, alt: np.ndarray, origin: tuple[float, float, float]
) -> np.ndarray:
    """East-north-up metres relative to ``origin`` (lat, lon, alt)."""
    lat0, lon0 = np.radians(origin[0]), np.radians(origin[1])
    delta = geodetic_to_ecef(np.asarray(lat), np.asarray(lon), np.asarray(alt)) - geodetic_to_ecef(
        *origin
    )
    rotation = np.array(
        [
            [-np.sin(lon0), np.cos(lon0), 0.0],
            [-np.sin(lat0) * np.cos(lon0), -np.sin(lat0) * np.sin(lon0), np.cos(lat0)],
            [np.cos(lat0) * np.cos(lon0), np.cos(lat0) * np.sin(lon0), np.sin(lat0)],
        ]
    )
    return delta @ rotation.T


# --- trajectories -------------------------------------------------------------------------------


class Trajectory:
    """Time-stamped poses, interpolated at arbitrary stamps (linear position, slerp orientation)."""

    def __init__(
        self,
        stamps_ns: np.ndarray,
        positions: np.ndarray,
        orientations: np.ndarray,
        covariances: np.ndarray | None = None,
    ) -> None:
        order = np.argsort(stamps_ns, kind="stable")
        self.stamps = np.asarray(stamps_ns, dtype=np.int64)[order]
        self.positions = np.asarray(positions, float).reshape(-1, 3)[order]
        self.orientations = np.asarray(orientations, float).reshape(-1, 4)[order]
        self.covariances = None if covariances is None else np.asarray(covariances, float)[order]

    def __len__(self) -> int:
        return len(self.stamps)

    def at(self, stamp_ns: int, tolerance_ns: int) -> Pose | None:
        """The pose at ``stamp_ns``; None when no pose lies within ``tolerance_ns`` of it on both
        sides (or on one side, at the ends of the trajectory)."""
        if not len(self.stamps):
            return None
        i = int(np.searchsorted(self.stamps, stamp_ns))
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            return Pose(self.positions[i], self.orientations[i])
        if i == 0 or i == len(self.stamps):
            j = 0 if i == 0 else i - 1
            near = abs(int(self.stamps[j]) - stamp_ns) <= tolerance_ns
            return Pose(self.positions[j], self.orientations[j]) if near else None
        before, after = int(self.stamps[i - 1]), int(self.stamps[i])
        if min(stamp_ns - before, after - stamp_ns) > tolerance_ns:
            return None
        t = (stamp_ns - before) / (after - before)
        return Pose(
            (1 - t) * self.positions[i - 1] + t * self.positions[i],
            slerp(self.orientations[i - 1], self.orientations[i], t),
        )

    def covariance_at(self, stamp_ns: int) -> np.ndarray | None:
        if self.covariances is None or not len(self.stamps):
            return None
        i = int(np.clip(np.searchsorted(self.stamps, stamp_ns), 0, len(self.stamps) - 1))
        return self.covariances[i]
