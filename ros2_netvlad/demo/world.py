"""A small deterministic place-recognition world made from real photographs.

Real photos shipped with scikit-image are the "places", laid along a route. A camera view of a
place is rendered by warping its photo (perspective shift, crop, scale); the second traversal adds
condition changes (brightness, colour cast, blur, noise, partial occlusion), as a revisit at
another time of day would. Everything is seeded, so the world is the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ros2_netvlad.demo import messages
from ros2_netvlad.demo.odometry import TRUTH_TOPIC, OdometryDrift, drifted
from ros2_netvlad.errors import InputError
from ros2_netvlad.geometry import Pose, yaw_quaternion
from ros2_netvlad.imaging import rgb_to_jpeg
from ros2_netvlad.sources.rosbag import BagWriter
from ros2_netvlad.training.placesets import PlaceSet

# (photo, window as fractions x0, y0, x1, y1): big photos give two places each.
PLACE_SOURCES: tuple[tuple[str, tuple[float, float, float, float]], ...] = (
    ("astronaut", (0, 0, 1, 1)),
    ("chelsea", (0, 0, 1, 1)),
    ("coffee", (0, 0, 1, 1)),
    ("rocket", (0, 0, 1, 1)),
    ("hubble_deep_field", (0, 0, 0.55, 1)),
    ("hubble_deep_field", (0.45, 0, 1, 1)),
    ("immunohistochemistry", (0, 0, 1, 1)),
    ("retina", (0, 0, 0.55, 1)),
    ("retina", (0.45, 0, 1, 1)),
    ("stereo_motorcycle", (0, 0, 0.55, 1)),
    ("stereo_motorcycle", (0.45, 0, 1, 1)),
    ("colorwheel", (0, 0, 1, 1)),
    ("camera", (0, 0, 1, 1)),
    ("brick", (0, 0, 1, 1)),
    ("grass", (0, 0, 1, 1)),
    ("gravel", (0, 0, 1, 1)),
    ("moon", (0, 0, 1, 1)),
    ("coins", (0, 0, 1, 1)),
    ("clock", (0, 0, 1, 1)),
    ("cell", (0, 0, 1, 1)),
)


@dataclass(frozen=True)
class Place:
    index: int
    photo: str
    window: tuple[float, float, float, float]


def places(count: int = len(PLACE_SOURCES)) -> list[Place]:
    if not 1 <= count <= len(PLACE_SOURCES):
        raise InputError(f"the demo world has 1..{len(PLACE_SOURCES)} places, asked for {count}")
    return [Place(i, *PLACE_SOURCES[i]) for i in range(count)]


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """An RGB uint8 photograph from scikit-image (grayscale ones expanded to RGB)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[:, :, :3])


def place_image(place: Place) -> np.ndarray:
    image = photo(place.photo)
    h, w = image.shape[:2]
    x0, y0, x1, y1 = place.window
    return image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]


def render_view(
    place: Place,
    rng: np.random.Generator,
    size: tuple[int, int] = (320, 240),
    changed: bool = False,
) -> np.ndarray:
    """One camera view of a place: a random perspective crop, plus condition changes if
    ``changed``."""
    view = _perspective_crop(place_image(place), rng, size)
    return _change_conditions(view, rng) if changed else view


def _perspective_crop(
    image: np.ndarray, rng: np.random.Generator, size: tuple[int, int]
) -> np.ndarray:
    h, w = image.shape[:2]
    scale = rng.uniform(0.7, 0.95)  # the camera sees most, never all, of the place
    cw, ch = w * scale, h * scale
    x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
    corners = np.float32([[x0, y0], [x0 + cw, y0], [x0 + cw, y0 + ch], [x0, y0 + ch]])
    corners += rng.uniform(-0.08, 0.08, size=(4, 2)).astype(np.float32) * np.float32([cw, ch])
    target = np.float32([[0, 0], [size[0], 0], [size[0], size[1]], [0, size[1]]])
    homography = cv2.getPerspectiveTransform(corners, target)
    return cv2.warpPerspective(
        image, homography, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT
    )


def _change_conditions(view: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = view.astype(np.float32)
    out *= rng.uniform(0.6, 1.3)  # brightness
    out *= rng.uniform(0.85, 1.15, size=3).astype(np.float32)  # colour cast
    sigma = rng.uniform(0.3, 1.5)
    out = cv2.GaussianBlur(out, (0, 0), sigma)
    out += rng.normal(0, 6, size=out.shape).astype(np.float32)  # sensor noise
    h, w = out.shape[:2]
    oh, ow = int(h * rng.uniform(0.15, 0.35)), int(w * rng.uniform(0.15, 0.35))
    oy, ox = rng.integers(0, h - oh), rng.integers(0, w - ow)
    out[oy : oy + oh, ox : ox + ow] = rng.uniform(0, 255, size=3)  # something parked in front
    return np.clip(out, 0, 255).astype(np.uint8)


# --- traversals as rosbag2 ------------------------------------------------------------------------

PLACE_SPACING = 40.0  # metres between places along the route
VIEW_OFFSETS = (-4.0, 0.0, 4.0)  # where along the route each place is photographed


def _route_angle(index: int, count: int) -> float:
    return 2.0 * np.pi * index / count


def place_position(index: int, count: int = len(PLACE_SOURCES)) -> np.ndarray:
    """Places lie on a closed loop (a circle with PLACE_SPACING between neighbours)."""
    radius = count * PLACE_SPACING / (2.0 * np.pi)
    angle = _route_angle(index, count)
    return np.array([radius * np.cos(angle), radius * np.sin(angle), 0.0])


def view_pose(index: int, count: int, offset: float):
    """Camera pose ``offset`` metres along the route from a place, looking along the route."""

    angle = _route_angle(index, count)
    tangent = np.array([-np.sin(angle), np.cos(angle), 0.0])
    return Pose(place_position(index, count) + offset * tangent, yaw_quaternion(angle + np.pi / 2))


def write_traversal(
    path,
    places_: list[Place],
    *,
    seed: int,
    changed: bool = False,
    storage: str = "mcap",
    compressed: bool = True,
    size: tuple[int, int] = (320, 240),
    rate_hz: float = 2.0,
    start_ns: int = 1_700_000_000_000_000_000,
    image_topic: str = "/camera/image_raw",
    odom_topic: str = "/odom",
    drift: OdometryDrift | None = None,
    truth_topic: str = TRUTH_TOPIC,
) -> list[tuple[int, int, np.ndarray]]:
    """Drives past every place once, photographing it from each of VIEW_OFFSETS, and writes the
    images (CompressedImage on ``image_topic + '/compressed'`` or raw Image) and nav_msgs/Odometry
    (twice the camera rate) into a new bag: the ground truth, or with ``drift`` wheel odometry
    that drifts, in an ``odom`` frame of its own (starting at its origin), and the ground truth on
    ``truth_topic``. Returns (stamp, place index, position)."""

    rng = np.random.default_rng(seed)
    period = int(1e9 / rate_hz)
    truth, count = [], len(places_)
    topic = image_topic + "/compressed" if compressed else image_topic
    # odometry at twice the camera rate: at each image, and halfway to the next view
    poses = [
        view_pose(place.index, count, offset + half)
        for place in places_
        for offset in VIEW_OFFSETS
        for half in (0.0, 2.0)
    ]
    wheels = np.random.default_rng(seed + 10_000)  # the views stay those of a drive without drift
    odometry = poses if drift is None else _in_odom_frame(drifted(poses, drift, wheels))
    frame = "map" if drift is None else "odom"
    with BagWriter(path, storage) as bag:
        stamp, samples = start_ns, iter(zip(poses, odometry))
        for place in places_:
            for _ in VIEW_OFFSETS:
                view = render_view(place, rng, size, changed)
                msg = (
                    messages.compressed(view, stamp) if compressed else messages.image(view, stamp)
                )
                bag.write(topic, msg, stamp)
                at_image = None
                for at in (stamp, stamp + period // 2):
                    true, odom = next(samples)
                    at_image = at_image or true
                    bag.write(odom_topic, messages.odometry(odom, at, frame_id=frame), at)
                    if drift is not None:
                        bag.write(truth_topic, messages.odometry(true, at), at)
                truth.append((stamp, place.index, at_image.position))
                stamp += period
    return truth


def _in_odom_frame(poses: list[Pose]) -> list[Pose]:
    """Odometry starts at its own origin, not where the map put the robot."""
    origin = poses[0].inverse()
    return [origin.compose(pose) for pose in poses]


def view_set(
    places_: list[Place], *, seed: int, changed: bool = False, size: tuple[int, int] = (320, 240)
):
    """One traversal as an in-memory PlaceSet (JPEG views and positions, no bag): what the training
    tests, the benchmark and quick experiments use."""

    rng = np.random.default_rng(seed)
    images, positions, names = [], [], []
    for place in places_:
        for offset in VIEW_OFFSETS:
            images.append(rgb_to_jpeg(render_view(place, rng, size, changed), 95))
            positions.append(view_pose(place.index, len(places_), offset).position)
            names.append(f"seed{seed}/place{place.index}/{offset:+.0f}m")
    return PlaceSet(images, np.array(positions), names)
