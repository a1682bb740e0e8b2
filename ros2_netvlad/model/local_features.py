"""Local features for re-ranking: keypoints + binary/uint8 descriptors, found once per image (map
images by ``build_map`` or online growth, stored in the map; a query once per frame)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ros2_netvlad.errors import InputError

METHODS = ("sift", "orb")
FORMAT_VERSION = 1  # of the stored blobs: float32 keypoints, uint8 descriptors


@dataclass(frozen=True)
class LocalFeatures:
    keypoints: np.ndarray  # N×2 float32, pixels of the image shrunk to FeatureSettings.max_side
    descriptors: np.ndarray  # N×D uint8 (SIFT: D=128, values 0..255; ORB: D=32 bytes)

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def nbytes(self) -> int:
        return self.keypoints.nbytes + self.descriptors.nbytes

    def blobs(self) -> tuple[bytes, bytes]:
        return self.keypoints.astype("<f4").tobytes(), self.descriptors.tobytes()

    @staticmethod
    def from_blobs(keypoints: bytes, descriptors: bytes, width: int) -> "LocalFeatures":
        points = np.frombuffer(keypoints, "<f4").reshape(-1, 2)
        return LocalFeatures(
            points, np.frombuffer(descriptors, np.uint8).reshape(len(points), width)
        )


@dataclass(frozen=True)
class FeatureSettings:
    """What the stored features were made with; travels in the map manifest."""

    method: str = "sift"
    max_features: int = 768
    max_side: int = 480  # images are shrunk to this longest side first (cost grows with pixels)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(
                f"local feature method must be one of {', '.join(METHODS)}, got {self.method!r}"
            )
        if self.max_features < 8 or self.max_side < 64:
            raise InputError("local features need max_features >= 8 and max_side >= 64")

    @property
    def descriptor_width(self) -> int:
        return 128 if self.method == "sift" else 32

    def manifest(self) -> dict:
        return {
            "method": self.method,
            "max_features": self.max_features,
            "max_side": self.max_side,
            "version": FORMAT_VERSION,
        }

    @staticmethod
    def from_manifest(manifest: dict) -> "FeatureSettings":
        if manifest.get("version") != FORMAT_VERSION:
            raise InputError(
                f"stored local features are version {manifest.get('version')}, this package "
                f"reads {FORMAT_VERSION}; rebuild the map with build_map"
            )
        return FeatureSettings(manifest["method"], manifest["max_features"], manifest["max_side"])


class FeatureExtractor:
    """One image → LocalFeatures. OpenCV detectors are not thread-safe: one per worker."""

    def __init__(self, settings: FeatureSettings = FeatureSettings()) -> None:
        self.settings = settings
        if settings.method == "sift":
            self._detector = cv2.SIFT_create(nfeatures=settings.max_features)
        else:
            self._detector = cv2.ORB_create(nfeatures=settings.max_features)

    def __call__(self, rgb: np.ndarray) -> LocalFeatures:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        scale = min(1.0, self.settings.max_side / max(gray.shape[:2]))
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        keypoints, descriptors = self._detector.detectAndCompute(gray, None)
        width = self.settings.descriptor_width
        if descriptors is None or not keypoints:
            return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, width), np.uint8))
        points = np.float32([k.pt for k in keypoints])
        # OpenCV's SIFT values are integers 0..255 held in float32: uint8 storage is lossless
        return LocalFeatures(points, np.clip(descriptors, 0, 255).astype(np.uint8))
