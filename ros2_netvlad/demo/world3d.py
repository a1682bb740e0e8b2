"""A 3-D world with exact ground truth: a block of streets whose facades are real photographs
(the demo world's places) on vertical planes, seen by a pinhole camera with lens distortion.

A view is rendered per plane: the photo's homography into an ideal pinhole image (a margin wider
than the camera, so that distortion has pixels to pull in), a z-buffer from each plane's depth,
then one remap into the distorted image, the depth image remapped with it (aligned, as an RGB-D
camera's). Everything is deterministic."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ros2_netvlad.camera import OPTICAL_IN_BODY, Camera
from ros2_netvlad.demo.world import place_image, places
from ros2_netvlad.geometry import Pose

SIDE = 24.0  # m, the square route around the block
STREET = 3.5  # m from the route to the facades on either side
HEIGHT = 3.2  # m, facade height
SEGMENT = 6.0  # m, width of one photograph on a facade
NEAR = 0.2  # m, planes closer than this are clipped
SETBACKS = (0.0, 1.0, 0.4, 1.4, 0.2, 0.8)  # m, behind the street line, segment by segment
SKY, GROUND = (150, 170, 200), (95, 90, 85)
# the camera on the robot: 1.2 m up, 0.2 m forward of the base, looking along x (REP 103)
MOUNT = (0.2, 0.0, 1.2, *OPTICAL_IN_BODY[3:])


@dataclass(frozen=True)
class Facade:
    corner: np.ndarray  # bottom-left corner, seen from the street
    across: np.ndarray  # bottom-left → bottom-right (m)
    up: np.ndarray  # bottom-left → top-left (m)
    texture: np.ndarray  # RGB photograph


def world_camera(width: int = 320, height: int = 240, distortion: str = "plumb_bob") -> Camera:
    """The demo robot's camera: ~80° horizontal field of view, barrel distortion."""
    f = 0.6 * width
    k = (f, 0.0, width / 2 - 0.5 + 1.3, 0.0, f, height / 2 - 0.5 - 0.8, 0.0, 0.0, 1.0)
    d = {
        "plumb_bob": (-0.12, 0.03, 0.0004, -0.0003, 0.0),
        "rational_polynomial": (-0.12, 0.03, 0.0004, -0.0003, 0.0, 0.01, 0.0, 0.0),
        "equidistant": (0.02, -0.01, 0.002, 0.0),
    }[distortion]
    return Camera(width, height, k, d, distortion, MOUNT)


@lru_cache(maxsize=1)
def facades() -> tuple[Facade, ...]:
    """Outer and inner facades along the four sides of the square, each segment its own photo
    (halves of the demo places' photographs: 40 textures)."""
    textures = []
    for place in places():
        image = place_image(place)
        half = image.shape[1] // 2
        textures += [image[:, :half], image[:, half:]]
    out, n = [], 0
    h = SIDE / 2
    # the route runs anticlockwise: side k goes from corner k to corner k+1
    corners = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    for k in range(4):
        start, end = corners[k], corners[(k + 1) % 4]
        along = (end - start) / SIDE
        left = np.array([-along[1], along[0]])  # towards the block (inside)
        for offset, length, facing in (
            (-STREET, SIDE + 2 * STREET, 1),
            (STREET, SIDE - 2 * STREET, -1),
        ):
            # outer facades (right of the route) face left; inner ones (left) face right
            base = start + offset * left - (STREET if offset < 0 else -STREET) * along
            count = max(1, int(round(length / SEGMENT)))
            width = length / count
            for i in range(count):
                # facades step back and forth (setbacks): a view spans several planes, as a
                # street does, not one
                setback = SETBACKS[n % len(SETBACKS)] * (1 if offset < 0 else -1)
                a = base + along * width * i - setback * left
                b = a + along * width
                first, second = (b, a) if facing > 0 else (a, b)
                corner = np.r_[first, 0.0]
                across = np.r_[second - first, 0.0]
                out.append(
                    Facade(corner, across, np.array([0, 0, HEIGHT]), textures[n % len(textures)])
                )
                n += 1
    return tuple(out)


def route_pose(
    distance: float, lateral: float = 0.0, yaw_offset: float = 0.0, radius: float = 3.0
) -> Pose:
    """The robot (base) ``distance`` metres along the square route (rounded corners of
    ``radius``), ``lateral`` metres to its left, looking along it."""
    h, straight = SIDE / 2, SIDE - 2 * radius
    arc = np.pi / 2 * radius
    lap = 4 * (straight + arc)
    s = distance % lap
    side, s = int(s // (straight + arc)), s % (straight + arc)
    if s < straight:
        local, heading = np.array([-h + radius + s, -h]), 0.0
    else:
        angle = (s - straight) / radius
        centre = np.array([h - radius, -h + radius])
        local = centre + radius * np.array([np.sin(angle), -np.cos(angle)])
        heading = angle
    turn = side * np.pi / 2
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    position = rotation @ local
    heading += turn
    left = np.array([-np.sin(heading), np.cos(heading)])
    position = position + lateral * left
    yaw = heading + yaw_offset
    return Pose(np.r_[position, 0.0], [0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def route_length(radius: float = 3.0) -> float:
    return 4 * (SIDE - 2 * radius + np.pi / 2 * radius)


def camera_pose(base: Pose, camera: Camera) -> np.ndarray:
    """4×4 optical frame in the world."""
    return base.matrix() @ Pose(camera.to_base[:3], camera.to_base[3:]).matrix()


def render(base: Pose, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 H×W×3, depth float32 H×W in metres along the optical axis, NaN for sky)."""
    world_to_camera = np.linalg.inv(camera_pose(base, camera))
    ideal, margin = _ideal_camera(camera)
    h, w = camera.height + 2 * margin[1], camera.width + 2 * margin[0]
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[: h // 2], rgb[h // 2 :] = SKY, GROUND
    depth = np.full((h, w), np.inf, np.float32)
    rays = _rays(ideal, w, h)
    for facade in facades():
        _draw(facade, world_to_camera, ideal, rays, rgb, depth)
    map_x, map_y = _distortion_maps(camera)
    out = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out_depth = cv2.remap(depth, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    out_depth[~np.isfinite(out_depth)] = np.nan
    return out, out_depth


def _draw(facade: Facade, world_to_camera, ideal, rays, rgb, depth) -> None:
    r, t = world_to_camera[:3, :3], world_to_camera[:3, 3]
    corners = np.array(
        [
            facade.corner,
            facade.corner + facade.across,
            facade.corner + facade.across + facade.up,
            facade.corner + facade.up,
        ]
    )
    in_camera = corners @ r.T + t
    polygon = _clip_near(in_camera)
    if len(polygon) < 3:
        return
    normal = np.cross(r @ facade.across, r @ facade.up)
    if normal @ in_camera[0] >= 0:  # seen from behind
        return
    pixels = polygon[:, :2] / polygon[:, 2:3] * [ideal[0, 0], ideal[1, 1]] + ideal[:2, 2]
    h, w = depth.shape
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(pixels * 8).astype(np.int32)], 1, cv2.LINE_8, shift=3)
    if not mask.any():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        plane_depth = (normal @ in_camera[0]) / (rays @ normal)
    nearer = (mask > 0) & (plane_depth < depth) & (plane_depth > NEAR)
    if not nearer.any():
        return
    tex = facade.texture
    th, tw = tex.shape[:2]
    # texture pixel (a, b) ↦ corner + a/tw·across + (1 − b/th)·up, then into the ideal image
    columns = np.c_[
        r @ facade.across / tw, -r @ facade.up / th, r @ (facade.corner + facade.up) + t
    ]
    homography = ideal @ columns
    warped = cv2.warpPerspective(
        tex, homography, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    rgb[nearer] = warped[nearer]
    depth[nearer] = plane_depth[nearer]


def _clip_near(polygon: np.ndarray) -> np.ndarray:
    """Sutherland–Hodgman against z ≥ NEAR."""
    out = []
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
        if a[2] >= NEAR:
            out.append(a)
        if (a[2] >= NEAR) != (b[2] >= NEAR):
            s = (NEAR - a[2]) / (b[2] - a[2])
            out.append(a + s * (b - a))
    return np.array(out)


@lru_cache(maxsize=8)
def _ideal_camera(camera: Camera) -> tuple[np.ndarray, tuple[int, int]]:
    """The undistorted pinhole camera rendered first, with a margin that covers every pixel the
    distorted image pulls from."""
    grid = _pixel_grid(camera.width, camera.height, step=4)
    rays = camera.normalized(grid)
    k = camera.matrix
    ideal = rays * [k[0, 0], k[1, 1]] + k[:2, 2]
    mx = int(np.ceil(max(0.0, -ideal[:, 0].min(), ideal[:, 0].max() - camera.width))) + 2
    my = int(np.ceil(max(0.0, -ideal[:, 1].min(), ideal[:, 1].max() - camera.height))) + 2
    shifted = k.copy()
    shifted[0, 2] += mx
    shifted[1, 2] += my
    return shifted, (mx, my)


@lru_cache(maxsize=8)
def _distortion_maps(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    ideal, _ = _ideal_camera(camera)
    grid = _pixel_grid(camera.width, camera.height)
    rays = camera.normalized(grid)
    source = rays * [ideal[0, 0], ideal[1, 1]] + ideal[:2, 2]
    shape = (camera.height, camera.width)
    return source[:, 0].reshape(shape).astype(np.float32), source[:, 1].reshape(shape).astype(
        np.float32
    )


@lru_cache(maxsize=8)
def _rays_cached(fx, fy, cx, cy, w, h) -> np.ndarray:
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)


def _rays(ideal: np.ndarray, w: int, h: int) -> np.ndarray:
    return _rays_cached(ideal[0, 0], ideal[1, 1], ideal[0, 2], ideal[1, 2], w, h)


def _pixel_grid(width: int, height: int, step: int = 1) -> np.ndarray:
    v, u = np.mgrid[0:height:step, 0:width:step]
    if step > 1:  # include the last row and column: the extremes of the distortion
        u = np.c_[u, np.full((u.shape[0], 1), width - 1)]
        v = np.c_[v, v[:, :1]]
        u = np.r_[u, u[:1]]
        v = np.r_[v, np.full((1, v.shape[1]), height - 1)]
    return np.c_[u.ravel(), v.ravel()].astype(np.float64)
