"""Describer: uint8 RGB images → float32 L2-normalized descriptors, on the best device."""

from __future__ import annotations

import contextlib
import logging
import platform
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ros2_netvlad.config import DescriberConfig
from ros2_netvlad.errors import DeviceError, InputError
from ros2_netvlad.imaging import resize
from ros2_netvlad.model import precision
from ros2_netvlad.model.backends import build_runner, calibration_photos, calibration_sample
from ros2_netvlad.model.netvlad import PlaceNet
from ros2_netvlad.model.precision import Precision, native_bf16  # noqa: F401 (public here too)
from ros2_netvlad.resize import resolve_resize

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"model.device is {name!r} but CUDA is not available here; use 'auto' or 'cpu'"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(
            f"model.device is {name!r} but this machine has {torch.cuda.device_count()} "
            f"CUDA device(s)"
        )
    return device


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; the platform's word elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def validate_image(image: object, index: int = 0) -> np.ndarray:
    """Returns the image as a contiguous H×W×3 uint8 array or raises ValueError naming the
    problem."""
    where = f"image {index}" if index else "image"
    if not isinstance(image, np.ndarray):
        raise InputError(f"{where}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"{where}: expected dtype uint8 (0..255 RGB), got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise InputError(
            f"{where}: grayscale {image.shape}; convert to 3-channel RGB first "
            f"(e.g. cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))"
        )
    if image.ndim != 3:
        raise InputError(f"{where}: expected shape H×W×3, got {image.shape}")
    if image.shape[2] == 4:
        raise InputError(f"{where}: has 4 channels (alpha); convert RGBA to RGB first")
    if image.shape[2] != 3:
        raise InputError(f"{where}: expected 3 channels (RGB), got {image.shape[2]}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{where}: empty image of shape {image.shape}")
    return np.ascontiguousarray(image)


class Describer:
    """Computes descriptors with a PlaceNet: resize, batch, device, precision.

    ``describer(image)`` → (D,) for one H×W×3 image; ``describer(images)`` → (N, D) for an N×H×W×3
    array or a list of images (sizes may differ).
    """

    def __init__(
        self,
        model: PlaceNet,
        config: DescriberConfig = DescriberConfig(),
        map_precision: str = "",
    ) -> None:
        """``map_precision``: what the map's descriptors were computed at (its manifest); with
        model.precision auto the queries use it too, so map and queries stay comparable."""
        self.config, _ = resolve_resize(config)  # auto / 0 → the defaults (callers with a map
        config = self.config  # resolve against the map's recorded settings first)
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=memory_format)
        self.precision = self._resolve_precision(map_precision)
        self.runner, self.backend_note = None, "torch"
        if config.backend != "torch":
            self.runner, self.backend_note = build_runner(
                self.model, config, self.device, self.precision.name
            )
        log.info("describer %s", self.summary)

    @property
    def hardware(self) -> str:
        """The device in words (diagnostics' hardware_id): 'cuda:0 NVIDIA ...', 'cpu AMD EPYC'."""
        if self.device.type == "cuda":
            return f"{self.device} {torch.cuda.get_device_name(self.device)}"
        return f"cpu {cpu_name()}"

    @property
    def dtype(self) -> torch.dtype:
        return self.precision.dtype

    @property
    def precision_note(self) -> str:
        return self.precision.reason

    @property
    def output_dim(self) -> int:
        return self.model.output_dim

    @property
    def summary(self) -> str:
        """Where and how descriptors are computed, with the reasons (logs, reports, diagnostics)."""
        name, reason = self.precision.name, self.precision.reason
        return (
            f"on {self.device} ({name}: {reason}; backend {self.backend_note}), "
            f"{self.output_dim}-D descriptors"
        )

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        if isinstance(images, np.ndarray) and images.ndim < 4:  # one image (validated below)
            return self.describe([images])[0]
        return self.describe(images)

    def describe(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32 descriptors, in input order."""
        checked = self._checked(images)
        out = np.empty((len(checked), self.output_dim), dtype=np.float32)
        for indices, batch in self._batches(checked):
            if self.runner is not None:
                out[indices] = self.runner(batch)
            else:
                out[indices] = self._forward(batch, self.model.forward)
        return out

    def dense_features(self, image: np.ndarray) -> np.ndarray:
        """The backbone's local features of one image, (h*w, D) float32, before NetVLAD."""
        image = self.resize(validate_image(image))
        features = self._forward(image[None], self.model.features, normalize=False)
        return features.reshape(features.shape[1], -1).T.copy()

    def warmup(self, height: int = 480, width: int = 640) -> None:
        """One inference so the first real frame does not pay for kernel selection and
        allocation."""
        self.describe([np.zeros((height, width, 3), np.uint8)])

    def resize(self, image: np.ndarray) -> np.ndarray:
        config, (h, w) = self.config, image.shape[:2]
        if config.resize == "exact":
            size = (config.width, config.height)
        elif config.resize == "max_side" and max(h, w) > config.max_side:
            scale = config.max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
        else:
            return image
        return resize(image, size)

    def _checked(self, images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise InputError(
                f"expected one H×W×3 image or an N×H×W×3 batch, got shape {images.shape}"
            )
        items = list(images)
        if not items:
            raise InputError("no images to describe")
        return [
            self.resize(validate_image(image, i + 1 if len(items) > 1 else 0))
            for i, image in enumerate(items)
        ]

    def _batches(self, images: list[np.ndarray]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Batches of equally sized images, at most batch_size each."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(index)
        size = self.config.batch_size
        for indices in by_shape.values():
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                yield chunk, np.stack([images[i] for i in chunk])

    def _forward(
        self, batch: np.ndarray, function, normalize: bool = True, dtype: torch.dtype | None = None
    ) -> np.ndarray:
        """``dtype``: compute at this precision instead of the resolved one (measuring)."""
        # NHWC uint8 → an NCHW view whose memory is already channels_last.
        x = torch.from_numpy(batch).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        if not self.config.channels_last:
            x = x.contiguous()
        with torch.inference_mode(), self._autocast(dtype or self.dtype):
            y = function(x).float()
        if normalize:  # re-normalize in fp32 after reduced-precision math
            y = F.normalize(y, p=2, dim=1)
        return y.cpu().numpy()

    def _resolve_precision(self, map_precision: str) -> Precision:
        """Explicit wins; auto takes the map's, else the device's default, and on a CPU with
        native bf16 running torch, a repeated measurement (precision.choose_cpu)."""
        name, device = self.config.precision, self.device
        if name != "auto":
            if map_precision and map_precision != name:
                log.warning(
                    "model.precision %s, but the map was described at %s: its descriptors and "
                    "these differ slightly (leave precision at auto to use the map's)",
                    name,
                    map_precision,
                )
            return precision.explicit(name, device)
        if map_precision:
            return precision.from_map(map_precision, device)
        if device.type != "cpu" or not native_bf16() or self.config.backend != "torch":
            return precision.default(device)
        return self._measure_cpu_precision()

    def _measure_cpu_precision(self) -> Precision:
        height, width = self.resize(calibration_photos()[0]).shape[:2]
        sample = calibration_sample((width, height))  # three real photos at the map's size
        fp32, bf16 = (self._forward(sample, self.model.forward, dtype=d) for d in precision.CPU)
        cosine = float(np.min(np.sum(fp32 * bf16, axis=1)))

        def run(dtype: torch.dtype) -> None:
            self._forward(sample[:1], self.model.forward, dtype=dtype)

        return precision.choose_cpu(cosine, lambda: precision.timed_speedup(run))

    def _autocast(self, dtype: torch.dtype) -> contextlib.AbstractContextManager:
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def describe_all(describer: Describer, images: Iterable[np.ndarray]) -> np.ndarray:
    """Describes an iterable of images in batches of the describer's batch size."""
    chunks, batch = [], []
    for image in images:
        batch.append(image)
        if len(batch) == describer.config.batch_size:
            chunks.append(describer.describe(batch))
            batch = []
    if batch:
        chunks.append(describer.describe(batch))
    return np.concatenate(chunks) if chunks else np.empty((0, describer.output_dim), np.float32)
