"""Image message payloads → RGB uint8 arrays, with errors that name what is wrong.

Works on any object with the sensor_msgs fields (rosbags' dataclasses or rclpy messages), so the
core stays ROS-free.
"""

from __future__ import annotations

import cv2
import numpy as np

from ros2_netvlad.errors import InputError

# encoding → (channels, dtype, conversion to RGB or None)
RAW_ENCODINGS: dict[str, tuple[int, np.dtype, int | None]] = {
    "rgb8": (3, np.dtype(np.uint8), None),
    "bgr8": (3, np.dtype(np.uint8), cv2.COLOR_BGR2RGB),
    "rgba8": (4, np.dtype(np.uint8), cv2.COLOR_RGBA2RGB),
    "bgra8": (4, np.dtype(np.uint8), cv2.COLOR_BGRA2RGB),
    "mono8": (1, np.dtype(np.uint8), cv2.COLOR_GRAY2RGB),
    "mono16": (1, np.dtype(np.uint16), cv2.COLOR_GRAY2RGB),
}


class ImageDecodeError(InputError):
    """An image message cannot be turned into pixels; the message says why."""


def raw_to_rgb(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: bytes | np.ndarray,
    is_bigendian: bool = False,
) -> np.ndarray:
    """A sensor_msgs/Image payload as an H×W×3 uint8 RGB array."""
    if encoding not in RAW_ENCODINGS:
        raise ImageDecodeError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(RAW_ENCODINGS)}"
        )
    channels, dtype, conversion = RAW_ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"zero-size image {width}x{height}")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is smaller than width*channels*bytes = {row_bytes} for {encoding}"
        )
    buffer = (
        np.frombuffer(memoryview(data), dtype=np.uint8)
        if not isinstance(data, np.ndarray)
        else data.view(np.uint8)
    )
    if buffer.size < step * (height - 1) + row_bytes:
        raise ImageDecodeError(
            f"data holds {buffer.size} bytes, expected {step * height} for "
            f"{height} rows of step {step}"
        )
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes), strides=(step, 1))
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if is_bigendian else "<"))
    pixels = pixels.reshape(height, width, channels).astype(dtype, copy=False)
    if dtype == np.uint16:  # 16-bit mono (depth-like or HDR): scale the used range into 8 bits
        pixels = _to_uint8(pixels)
    image = pixels[:, :, 0] if channels == 1 else pixels
    return np.ascontiguousarray(image if conversion is None else cv2.cvtColor(image, conversion))


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    top = float(pixels.max())
    return (pixels.astype(np.float32) * (255.0 / top) if top > 0 else pixels * 0).astype(np.uint8)


def compressed_to_rgb(data: bytes | np.ndarray, format: str = "") -> np.ndarray:
    """A sensor_msgs/CompressedImage payload (jpeg or png) as an H×W×3 uint8 RGB array."""
    buffer = (
        np.frombuffer(memoryview(data), dtype=np.uint8)
        if not isinstance(data, np.ndarray)
        else data.view(np.uint8)
    )
    if buffer.size == 0:
        raise ImageDecodeError(f"empty compressed image (format {format!r})")
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageDecodeError(
            f"cannot decode compressed image (format {format!r}, {buffer.size} bytes): "
            f"corrupt or not jpeg/png"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def message_to_rgb(msg: object) -> np.ndarray:
    """Image or CompressedImage message (any implementation with the standard fields) → RGB."""
    if hasattr(msg, "format"):
        return compressed_to_rgb(msg.data, msg.format)
    return raw_to_rgb(
        msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian)
    )


def rgb_to_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ImageDecodeError("JPEG encoding failed")
    return encoded.tobytes()


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size`` (width, height): area averaging when shrinking (no aliasing), bilinear
    when enlarging; the image itself when it already has that size."""
    if image.shape[1::-1] == tuple(size):
        return image
    shrinking = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


DEPTH_ENCODINGS = {"16UC1": ("u2", 0.001), "mono16": ("u2", 0.001), "32FC1": ("f4", 1.0)}


def message_to_depth(msg: object) -> np.ndarray:
    """An aligned depth image (sensor_msgs/Image, the depth/image_rect_raw convention: 16UC1 in
    millimetres, 0 = unknown, or 32FC1 in metres, NaN = unknown) → H×W float32 metres, NaN where
    unknown."""
    encoding = getattr(msg, "encoding", "")
    if encoding not in DEPTH_ENCODINGS:
        raise ImageDecodeError(
            f"depth encoding {encoding!r} is not supported; use 16UC1 (mm) or 32FC1 (m)"
        )
    kind, scale = DEPTH_ENCODINGS[encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data), np.uint8)
    if step < w * dtype.itemsize or len(data) < h * step:
        raise ImageDecodeError(f"depth image {w}x{h} {encoding}: {len(data)} bytes, step {step}")
    rows = data[: h * step].reshape(h, step)[:, : w * dtype.itemsize]
    depth = rows.copy().view(dtype).reshape(h, w).astype(np.float32) * np.float32(scale)
    depth[~(depth > 0)] = np.nan  # 0 and NaN are "no return"
    return depth
