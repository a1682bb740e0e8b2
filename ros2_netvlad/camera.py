"""A camera: intrinsics with lens distortion (what sensor_msgs/CameraInfo says) and where the
camera's optical frame sits on the robot. Pixels become undistorted normalized rays here, for
relative poses; the map stores one camera, the node takes its own from ``camera_info``.

Distortion models are those of CameraInfo, handled by OpenCV: plumb_bob (k1 k2 p1 p2 k3),
rational_polynomial (8 coefficients) and equidistant (fisheye k1..k4)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from ros2_netvlad.errors import InputError

FORMAT_VERSION = 1  # of the camera record in a map's manifest
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
# REP 103: the optical frame (z forward, x right, y down) in the body frame (x forward, y left,
# z up), no offset: a camera looking straight ahead from the robot's origin
OPTICAL_IN_BODY = (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    k: tuple[float, ...]  # 3×3 row-major, as CameraInfo.k
    d: tuple[float, ...] = ()
    distortion: str = "plumb_bob"
    # the optical frame in the frame the poses are of (x y z qx qy qz qw)
    to_base: tuple[float, ...] = OPTICAL_IN_BODY

    def __post_init__(self) -> None:
        if self.distortion not in DISTORTION_MODELS:
            raise InputError(
                f"camera distortion model {self.distortion!r} is not supported; use one of "
                f"{', '.join(DISTORTION_MODELS)}"
            )
        k = np.asarray(self.k, float)
        if k.shape != (9,) or k[0] <= 0 or k[4] <= 0 or not np.all(np.isfinite(k)):
            raise InputError(f"camera matrix must be 9 finite values with fx, fy > 0, got {self.k}")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"camera image size must be positive, got {self.width}x{self.height}")
        if len(self.to_base) != 7:
            raise InputError("camera to_base must be x y z qx qy qz qw")
        object.__setattr__(self, "k", tuple(map(float, self.k)))
        object.__setattr__(self, "d", tuple(map(float, self.d)))
        object.__setattr__(self, "to_base", tuple(map(float, self.to_base)))

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.k, float).reshape(3, 3)

    @property
    def focal(self) -> float:
        """Mean focal length in pixels: what turns a pixel threshold into a normalized one."""
        return float((self.k[0] + self.k[4]) / 2)

    def normalized(self, pixels: np.ndarray) -> np.ndarray:
        """N×2 pixels of the distorted image → N×2 undistorted normalized coordinates (x/z, y/z)."""
        points = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
        if not len(points):
            return np.zeros((0, 2))
        if self.distortion == "equidistant":
            out = cv2.fisheye.undistortPoints(points, self.matrix, np.asarray(self.d[:4]))
        else:
            # iterated until the fit is tight: the default 5 iterations leave ~0.1 px at the edges
            criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)
            out = cv2.undistortPoints(
                points, self.matrix, np.asarray(self.d), None, None, None, criteria
            )
        return out.reshape(-1, 2)

    def project(self, normalized: np.ndarray) -> np.ndarray:
        """N×2 undistorted normalized coordinates → N×2 pixels of the distorted image."""
        rays = np.c_[np.asarray(normalized, np.float64).reshape(-1, 2), np.ones(len(normalized))]
        zero = np.zeros(3)
        if self.distortion == "equidistant":
            pixels = cv2.fisheye.projectPoints(
                rays.reshape(-1, 1, 3), zero, zero, self.matrix, np.asarray(self.d[:4])
            )[0]
        else:
            pixels = cv2.projectPoints(rays, zero, zero, self.matrix, np.asarray(self.d))[0]
        return pixels.reshape(-1, 2)

    def to_json(self) -> dict:
        return {
            "version": FORMAT_VERSION,
            "width": self.width,
            "height": self.height,
            "k": list(self.k),
            "d": list(self.d),
            "distortion": self.distortion,
            "to_base": list(self.to_base),
        }

    @staticmethod
    def from_json(values: dict) -> "Camera":
        if values.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise InputError(
                f"the map's camera record is version {values.get('version')}; this package reads "
                f"{FORMAT_VERSION}: update ros2_netvlad, or rebuild the map"
            )
        try:
            return Camera(
                int(values["width"]),
                int(values["height"]),
                tuple(values["k"]),
                tuple(values.get("d", ())),
                values.get("distortion", "plumb_bob"),
                tuple(values.get("to_base", OPTICAL_IN_BODY)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"camera record {values!r} is incomplete: {error}") from None


def camera_from_info(msg, to_base: tuple[float, ...] = OPTICAL_IN_BODY) -> Camera | None:
    """A sensor_msgs/CameraInfo (rclpy's or one read from a bag) → Camera; None for an
    uncalibrated camera (all-zero K, as drivers publish before calibration)."""
    k = tuple(float(v) for v in msg.k)
    if not any(k):
        return None
    model = msg.distortion_model or "plumb_bob"
    return Camera(int(msg.width), int(msg.height), k, tuple(msg.d), model, to_base)


def camera_from_yaml(path: str | Path, to_base: tuple[float, ...] = OPTICAL_IN_BODY) -> Camera:
    """The ROS camera_calibration YAML (image_width, image_height, camera_matrix,
    distortion_model, distortion_coefficients), as ``camera_calibration`` writes it."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
        matrix = values["camera_matrix"]["data"]
        coefficients = values.get("distortion_coefficients", {}).get("data", [])
        size = int(values["image_width"]), int(values["image_height"])
        model = values.get("distortion_model", "plumb_bob")
    except FileNotFoundError:
        raise InputError(f"camera calibration file not found: {path}") from None
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as error:
        raise InputError(
            f"{path}: not a camera_calibration YAML (needs image_width, image_height, "
            f"camera_matrix.data, distortion_model, distortion_coefficients.data): {error}"
        ) from None
    return Camera(*size, tuple(matrix), tuple(coefficients), model, to_base)


def camera_info_topic(image_topic: str) -> str:
    """The image_transport sibling: /camera/image_raw(/compressed) → /camera/camera_info."""
    topic = image_topic.removesuffix("/compressed")
    return topic.rsplit("/", 1)[0] + "/camera_info" if "/" in topic.strip("/") else "camera_info"


def image_scale(width: int, height: int, max_side: int, min_side: int = 0) -> float:
    """How verifiers resize an image before finding its features: shrunk to ``max_side`` on its
    longest side, or enlarged until its short side reaches ``min_side`` (which wins)."""
    scale = min(1.0, max_side / max(width, height))
    if min_side and min(width, height) * scale < min_side:
        scale = min_side / min(width, height)
    return scale


def feature_scale(camera: Camera, max_side: int, min_side: int = 0) -> tuple[float, float]:
    """(sx, sy): how local-feature keypoints (found in the image resized as the verifiers do)
    relate to the camera's pixels."""
    scale = image_scale(camera.width, camera.height, max_side, min_side)
    if scale == 1.0:
        return 1.0, 1.0
    return round(camera.width * scale) / camera.width, round(camera.height * scale) / camera.height


def keypoints_to_pixels(
    keypoints: np.ndarray, camera: Camera, max_side: int, min_side: int = 0
) -> np.ndarray:
    sx, sy = feature_scale(camera, max_side, min_side)
    # pixel centres: x_small = (x + 0.5) * s - 0.5
    return (np.asarray(keypoints, np.float64) + 0.5) / np.array([sx, sy]) - 0.5


def keypoint_depths(pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Depth (m) at each pixel of an aligned depth image (H×W metres, NaN or 0 = unknown),
    interpolated bilinearly (on a slanted wall the depth changes fast from pixel to pixel); NaN
    where unknown or where the 3×3 neighbourhood spans an edge (> 5 %): a keypoint on a
    silhouette belongs to neither surface."""
    h, w = depth.shape
    pixels = np.asarray(pixels, np.float64).reshape(-1, 2)
    u, v = np.round(pixels[:, 0]).astype(int), np.round(pixels[:, 1]).astype(int)
    inside = (u >= 1) & (v >= 1) & (u < w - 1) & (v < h - 1)
    out = np.full(len(u), np.nan, np.float32)
    if not inside.any():
        return out
    clean = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)
    ui, vi = u[inside], v[inside]
    window = np.stack([clean[vi + dv, ui + du] for dv in (-1, 0, 1) for du in (-1, 0, 1)])
    with np.errstate(invalid="ignore"):
        low, high = np.min(window, axis=0), np.max(window, axis=0)
        smooth = (high - low) <= 0.05 * clean[vi, ui]
    x, y = pixels[inside, 0], pixels[inside, 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    value = (
        clean[y0, x0] * (1 - fx) * (1 - fy)
        + clean[y0, x0 + 1] * fx * (1 - fy)
        + clean[y0 + 1, x0] * (1 - fx) * fy
        + clean[y0 + 1, x0 + 1] * fx * fy
    )
    out[inside] = np.where(smooth, value, np.nan)
    return out
