"""Local features for verification: keypoints + descriptors of one image, found once per image (map
images by ``build_map`` or online growth, stored in the map; a query once per frame), and the codec
that stores them: float32 keypoints and descriptor rows of one dtype and width, both named in the
map's manifest so a map reads back without knowing which verifier made it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ros2_netvlad.camera import Camera, keypoint_depths, keypoints_to_pixels
from ros2_netvlad.errors import InputError

FORMAT_VERSION = 1  # of the stored blobs: float32 keypoints, descriptor rows of `Codec.dtype`
# version 2: the same blobs, keypoints found in images enlarged to a short side of `min_side`
# (older packages must refuse such maps: they would not enlarge their queries)
READ_VERSIONS = (1, 2)


@dataclass(frozen=True)
class LocalFeatures:
    keypoints: np.ndarray  # N×2 float32, pixels of the image shrunk to FeatureSettings.max_side
    descriptors: np.ndarray  # N×width, the verifier's dtype (SIFT: 128 uint8; ORB: 32 bytes)
    # N metres along the optical axis at each keypoint (an aligned depth image), NaN where the
    # depth is unknown; None without a depth image. Stored with map entries for metric poses.
    depths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def nbytes(self) -> int:
        depths = 0 if self.depths is None else self.depths.nbytes
        return self.keypoints.nbytes + self.descriptors.nbytes + depths

    def with_depths(
        self, depth: np.ndarray, camera: Camera, settings: "FeatureSettings"
    ) -> "LocalFeatures":
        """These features (found with ``settings``) with the depth at each keypoint, from an
        aligned depth image (metres)."""
        pixels = settings.pixels(self.keypoints, camera)
        return LocalFeatures(self.keypoints, self.descriptors, keypoint_depths(pixels, depth))

    @staticmethod
    def empty(codec: "Codec") -> "LocalFeatures":
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, codec.width), codec.dtype))


@dataclass(frozen=True)
class Codec:
    """How one verifier's features are stored: descriptor dtype and width."""

    dtype: str = "uint8"
    width: int = 128

    def encode(self, features: LocalFeatures) -> tuple[bytes, bytes, bytes | None]:
        descriptors = np.ascontiguousarray(
            features.descriptors, np.dtype(self.dtype).newbyteorder("<")
        )
        if descriptors.ndim != 2 or descriptors.shape[1] != self.width:
            raise InputError(
                f"local feature descriptors must be N x {self.width} {self.dtype}, got "
                f"{features.descriptors.shape} {features.descriptors.dtype}"
            )
        depths = None
        if features.depths is not None:
            if len(features.depths) != len(features.keypoints):
                raise InputError(
                    f"{len(features.depths)} keypoint depths for {len(features.keypoints)} "
                    "keypoints"
                )
            depths = np.asarray(features.depths, "<f4").tobytes()
        return features.keypoints.astype("<f4").tobytes(), descriptors.tobytes(), depths

    def decode(
        self, keypoints: bytes, descriptors: bytes, depths: bytes | None = None
    ) -> LocalFeatures:
        points = np.frombuffer(keypoints, "<f4").reshape(-1, 2)
        rows = np.frombuffer(descriptors, np.dtype(self.dtype).newbyteorder("<"))
        depth = None if depths is None else np.frombuffer(depths, "<f4")
        return LocalFeatures(points, rows.reshape(len(points), self.width), depth)


@dataclass(frozen=True)
class FeatureSettings:
    """What the stored features were made with; travels in the map manifest. ``method`` names a
    registered verifier (verification/registry.py); ``codec`` is filled in from it."""

    method: str = "sift"
    # the budget: 1024 features on frames shrunk to a 640 px longest side (a VGA frame whole);
    # measured on the real sets against 768 on 480 px (docs/benchmarks.md, issue 20)
    max_features: int = 1024
    max_side: int = 640  # images are shrunk to this longest side first (cost grows with pixels)
    codec: Codec | None = None
    min_side: int = 0  # …or enlarged to this short side (small frames have too few features)
    # how they are matched, not stored (not in the manifest): SIFT as RootSIFT (Arandjelović &
    # Zisserman 2012: L1-normalise, square root; L2 on it is the Hellinger distance)
    root: bool = False

    def __post_init__(self) -> None:
        if self.max_features < 8 or self.max_side < 64:
            raise InputError("local features need max_features >= 8 and max_side >= 64")
        if self.min_side and not 64 <= self.min_side <= 4096:
            raise InputError(f"local features min_side must be 0 or 64..4096, got {self.min_side}")

    def pixels(self, keypoints: np.ndarray, camera: Camera) -> np.ndarray:
        """Keypoints found with these settings → the camera's full-size pixels."""
        return keypoints_to_pixels(keypoints, camera, self.max_side, self.min_side)

    def manifest(self) -> dict:
        codec = self.codec or Codec()
        return {
            "method": self.method,
            "max_features": self.max_features,
            "max_side": self.max_side,
            "min_side": self.min_side,
            "version": 2 if self.min_side else FORMAT_VERSION,
            "dtype": codec.dtype,
            "width": codec.width,
        }

    @staticmethod
    def from_manifest(manifest: dict) -> "FeatureSettings":
        if manifest.get("version") not in READ_VERSIONS:
            raise InputError(
                f"stored local features are version {manifest.get('version')}, this package "
                f"reads {', '.join(map(str, READ_VERSIONS))}; rebuild the map with build_map"
            )
        # maps written before the codec was recorded hold SIFT (128) or ORB (32) uint8 rows
        legacy_width = 32 if manifest["method"] == "orb" else 128
        codec = Codec(manifest.get("dtype", "uint8"), int(manifest.get("width", legacy_width)))
        return FeatureSettings(
            manifest["method"],
            manifest["max_features"],
            manifest["max_side"],
            codec,
            min_side=int(manifest.get("min_side", 0)),
        )
