"""export_model's library call: a checkpoint → ONNX with its parity checked against torch, and
optionally an OpenVINO int8 model calibrated on real images from the robot's own data."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ros2_netvlad.errors import InputError, NetVLADError
from ros2_netvlad.model.backends import (
    AGREEMENT,
    PARITY_FP32,
    calibration_sample,
    check_agreement,
    export_onnx,
    normalized,
    onnxruntime_runner,
    openvino_runner,
    quantize_int8,
    torch_reference,
)
from ros2_netvlad.model.netvlad import PlaceNet

log = logging.getLogger(__name__)
CPU = torch.device("cpu")


@dataclass(frozen=True)
class ExportReport:
    onnx: Path
    parity_max_diff: float  # ONNX Runtime vs torch fp32 on real photos
    int8: Path | None = None
    int8_cosine: float | None = None  # lowest cosine int8 vs torch fp32 on real photos
    calibration_images: int = 0

    def summary(self) -> str:
        lines = [
            f"wrote {self.onnx} (ONNX Runtime vs torch: max |diff| {self.parity_max_diff:.2e})"
        ]
        if self.int8:
            lines.append(
                f"wrote {self.int8} (OpenVINO int8, calibrated on {self.calibration_images} "
                f"images; cosine to torch fp32 >= {self.int8_cosine:.4f})"
            )
        return "\n".join(lines)


def export_model(
    model: PlaceNet,
    out: str | Path,
    calibration: Iterable[np.ndarray] | None = None,
    max_calibration: int = 300,
    size: tuple[int, int] = (640, 480),
) -> ExportReport:
    """Writes ``out`` (.onnx) and, given ``calibration`` images (uint8 RGB, resized as the map's),
    ``<out>_int8.xml`` beside it. Raises when the export does not match torch."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise InputError(f"--out must end in .onnx, got {out.name}")
    export_onnx(model, out, height=size[1], width=size[0])
    sample = calibration_sample()
    reference = torch_reference(model, sample)
    diff = float(np.abs(onnxruntime_runner(out, CPU)(sample) - reference).max())
    if diff > PARITY_FP32:
        raise NetVLADError(f"{out}: ONNX Runtime differs from torch by {diff:.2e} > {PARITY_FP32}")
    if calibration is None:
        return ExportReport(out, diff)
    images = list(itertools.islice(calibration, max_calibration))
    if not images:
        raise InputError("int8 calibration: the calibration source gave no images")
    int8 = quantize_int8(out, images, out.with_name(f"{out.stem}_int8.xml"))
    runner = normalized(openvino_runner(int8, CPU, "fp32")[0])
    cosine = check_agreement(reference, runner(sample), AGREEMENT["int8"], f"{int8.name}")
    return ExportReport(out, diff, int8, cosine, len(images))
