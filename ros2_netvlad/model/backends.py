"""Inference backends behind the Describer: the same network exported to ONNX (preprocessing inside,
the L2-normalized descriptor out, dynamic batch and image size) and run by ONNX Runtime (fp32),
OpenVINO (fp32 asked for explicitly, bf16 where the CPU has it natively, or int8 quantized by NNCF)
or TensorRT (fp16).

Every backend takes what the torch path takes — a batch of N×H×W×3 uint8 RGB images, already
resized — and returns N×D float32 descriptors. The runtimes are imported only when chosen, so a
missing one is an error that names what to install, not an import failure at start-up.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from torch import nn

from ros2_netvlad.errors import DeviceError, InputError
from ros2_netvlad.model.checkpoints import fingerprint
from ros2_netvlad.model.netvlad import PlaceNet
from ros2_netvlad.model.precision import native_bf16

log = logging.getLogger(__name__)
OPSET = 18
PARITY_FP32 = 1e-4  # max |diff| of an fp32 export against torch (export_model checks it)
# minimum cosine between a backend's descriptors and torch fp32 on the calibration sample
AGREEMENT = {"fp32": 0.999, "fp16": 0.995, "bf16": 0.98, "int8": 0.9}
# OpenVINO's CPU plugin computes in bf16 by default wherever the CPU has it: always say which.
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}
Runner = Callable[[np.ndarray], np.ndarray]


class ExportedPlaceNet(nn.Module):
    """What the ONNX file computes: uint8 NHWC RGB → L2-normalized descriptors."""

    def __init__(self, net: PlaceNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(images.permute(0, 3, 1, 2).float()), p=2, dim=1)


def export_onnx(model: PlaceNet, path: str | Path, height: int = 480, width: int = 640) -> Path:
    """Writes the model as ONNX (opset 18; batch, height and width dynamic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportedPlaceNet(copy.deepcopy(model).float().cpu().eval())
    example = torch.zeros((1, height, width, 3), dtype=torch.uint8)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.onnx.export(  # the TorchScript exporter: dynamic H and W export cleanly with it
        wrapper,
        (example,),
        str(tmp),
        dynamo=False,
        input_names=["images"],
        output_names=["descriptors"],
        opset_version=OPSET,
        dynamic_axes={"images": {0: "batch", 1: "height", 2: "width"}, "descriptors": {0: "batch"}},
    )
    tmp.replace(path)
    return path


def torch_reference(model: PlaceNet, images: np.ndarray) -> np.ndarray:
    """fp32 torch descriptors (on the model's device): what every backend is compared with."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        return ExportedPlaceNet(model.eval())(x).float().cpu().numpy()


def calibration_photos() -> list[np.ndarray]:
    """Real photographs (shipped with scikit-image) for the agreement checks."""
    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]


def calibration_sample(size: tuple[int, int] = (320, 240)) -> np.ndarray:
    return np.stack(
        [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in calibration_photos()]
    )


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ros2_netvlad" / "exported"


def build_runner(
    model: PlaceNet, config, device: torch.device, precision: str = "fp32"
) -> tuple[Runner, str]:
    """The backend ``config.backend`` on ``config.backend_model`` (or the weights exported to an
    ONNX file in the cache, keyed by their fingerprint) at ``precision`` (fp32, fp16, bf16: what
    the Describer resolved), refused when its descriptors drift from torch fp32 on real photos
    beyond the bound for its precision. Returns (runner, description)."""
    kind = backend_precision(config.backend, precision, explicit=config.precision != "auto")
    if config.backend_model:
        path = Path(config.backend_model)
        if not path.is_file():
            raise InputError(f"model.backend_model: {path} not found")
    else:
        path = cache_dir() / f"{fingerprint(model)}.onnx"
        if not path.is_file():
            log.info("exporting the weights to %s", path)
            export_onnx(model, path)
    if config.backend == "openvino":
        raw, computed = openvino_runner(path, device, kind)
    else:
        make = {"onnxruntime": onnxruntime_runner, "tensorrt": tensorrt_runner}
        raw, computed = make[config.backend](path, device), kind
    label = "int8" if is_int8(path) else kind
    runner, sample = normalized(raw), calibration_sample()
    cosine = check_agreement(
        torch_reference(model, sample),
        runner(sample),
        AGREEMENT[label],
        f"model.backend {config.backend} {label} ({path.name})",
    )
    note = f"{config.backend} {label}"
    if label == "int8":
        note += f" (float parts in {computed})"
    return runner, f"{note} ({path.name}, cosine {cosine:.4f} to torch fp32)"


def backend_precision(backend: str, precision: str, explicit: bool = True) -> str:
    """The precision a backend computes in for the one the Describer resolved: the nearest one it
    offers when that came from auto (e.g. a bf16 map read by onnxruntime runs fp32), refused when
    it was asked for by name (DeviceError naming the choices)."""
    offered = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16"), "tensorrt": ("fp16",)}
    if backend == "tensorrt" and precision == "fp32":
        return "fp16"  # TensorRT builds fp16 engines; auto on CUDA also resolves to fp16
    if precision not in offered[backend] and not explicit:
        return offered[backend][0]
    if precision not in offered[backend]:
        raise DeviceError(
            f"model.backend {backend} runs in {' or '.join(offered[backend])}, not "
            f"{precision}; set model.precision to auto or {offered[backend][0]}"
        )
    return precision


def openvino_precision_hint(precision: str, native: bool) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for fp32 or bf16; bf16 only where it is native."""
    if precision == "bf16" and not native:
        raise DeviceError(
            "model.backend openvino bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); "
            "this one has none: use model.precision fp32"
        )
    return OPENVINO_PRECISION[precision]


def normalized(runner: Runner) -> Runner:
    """Rows L2-normalized in fp32 again (reduced-precision math leaves norms off 1)."""

    def run(batch: np.ndarray) -> np.ndarray:
        out = np.asarray(runner(batch), np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    return run


def is_int8(path: Path) -> bool:
    """An OpenVINO IR with quantize/fake-quantize operations (what export_model --int8 writes)."""
    if path.suffix != ".xml":
        return False
    text = path.read_text(errors="ignore")
    return (
        'type="FakeQuantize"' in text or 'element_type="i8"' in text or 'element_type="u8"' in text
    )


# --- runtimes -----------------------------------------------------------------------------------
def onnxruntime_runner(onnx_path: Path, device: torch.device) -> Runner:
    ort = _require("onnxruntime", "pip install onnxruntime (onnxruntime-gpu for CUDA)")
    available = ort.get_available_providers()
    wanted = ["CPUExecutionProvider"]
    if device.type == "cuda":
        wanted = [
            p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available
        ]
        wanted.append("CPUExecutionProvider")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=wanted)
    log.info("onnxruntime on %s", ", ".join(session.get_providers()))
    return lambda batch: session.run(None, {"images": batch})[0]


def openvino_runner(model_path: Path, device: torch.device, precision: str) -> tuple[Runner, str]:
    """OpenVINO on the CPU at an explicit inference precision; returns the runner and the
    precision the compiled model reports."""
    ov = _require("openvino", "pip install openvino")
    if device.type == "cuda":
        raise DeviceError("model.backend openvino runs on Intel CPUs/GPUs/NPUs; use device cpu")
    hint = openvino_precision_hint(precision, native_bf16())
    core = ov.Core()
    options = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
    compiled = core.compile_model(str(model_path), "CPU", options)
    request = compiled.create_infer_request()
    computed = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    names = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16"}

    def run(batch: np.ndarray) -> np.ndarray:
        return np.array(request.infer({0: batch})[compiled.output(0)])

    return run, names.get(computed, computed)


def tensorrt_runner(onnx_path: Path, device: torch.device, cache: Path | None = None) -> Runner:
    """fp16 engine built from the ONNX and cached beside it, keyed by GPU and TensorRT version."""
    trt = _require(
        "tensorrt",
        "TensorRT: on a Jetson it comes with JetPack (python3-libnvinfer); elsewhere pip install "
        "tensorrt (CUDA GPU needed)",
    )
    if device.type != "cuda" or not torch.cuda.is_available():
        raise DeviceError("model.backend tensorrt needs a CUDA GPU (model.device cuda)")
    engine_path = engine_cache_path(onnx_path, trt.__version__, cache)
    engine = _load_or_build_engine(trt, onnx_path, engine_path)
    context = engine.create_execution_context()
    return lambda batch: _tensorrt_infer(engine, context, batch, device)


def engine_cache_path(onnx_path: Path, trt_version: str, cache: Path | None = None) -> Path:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "nogpu"
    key = hashlib.sha256(f"{gpu}|{trt_version}|{onnx_path.stat().st_size}".encode()).hexdigest()
    return (cache or onnx_path.parent) / f"{onnx_path.stem}.{key[:12]}.engine"


def _load_or_build_engine(trt, onnx_path: Path, engine_path: Path):
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    if engine_path.is_file():
        return runtime.deserialize_cuda_engine(engine_path.read_bytes())
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InputError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (1, 120, 160, 3), (1, 480, 640, 3), (32, 1080, 1920, 3))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise InputError(f"{onnx_path}: TensorRT could not build an engine")
    engine_path.write_bytes(bytes(serialized))
    log.info("TensorRT engine cached at %s", engine_path)
    return runtime.deserialize_cuda_engine(bytes(serialized))


def _tensorrt_infer(engine, context, batch: np.ndarray, device: torch.device) -> np.ndarray:
    images = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
    context.set_input_shape("images", tuple(images.shape))
    out = torch.empty(tuple(context.get_tensor_shape("descriptors")), device=device)
    context.set_tensor_address("images", images.data_ptr())
    context.set_tensor_address("descriptors", out.data_ptr())
    context.execute_async_v3(torch.cuda.current_stream(device).cuda_stream)
    torch.cuda.current_stream(device).synchronize()
    return out.float().cpu().numpy()


# --- int8 ---------------------------------------------------------------------------------------
def quantize_int8(onnx_path: Path, calibration: Iterable[np.ndarray], out: Path) -> Path:
    """OpenVINO IR (out: .xml + .bin) quantized to int8 by NNCF post-training quantization on
    ``calibration`` images (uint8 RGB, already resized like the map's)."""
    ov = _require("openvino", "pip install openvino")
    nncf = _require("nncf", "pip install nncf")
    samples = [np.ascontiguousarray(image[None]) for image in calibration]
    if not samples:
        raise InputError("int8 calibration: the calibration source gave no images")
    model = ov.Core().read_model(str(onnx_path))
    dataset = nncf.Dataset(samples)
    # Kept in float: NetVLAD and whitening (the soft assignment is a softmax over 2α·c·x with a
    # large α: int8 logits flip assignments, cosine to fp32 fell to 0.06) and the stem, whose
    # input is raw pixels (quantizing it cost most of what remained: cosine 0.92 → 0.96).
    float_parts = [".*/pool/.*", ".*/whiten/.*", ".*/normalize/.*", ".*stem.*", ".*backbone\\.0/.*"]
    keep_float = nncf.IgnoredScope(patterns=float_parts, validate=False)
    quantized = nncf.quantize(model, dataset, subset_size=len(samples), ignored_scope=keep_float)
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out))
    return out


# --- agreement ----------------------------------------------------------------------------------
def agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The lowest cosine similarity between matching rows (both L2-normalized)."""
    return float(np.min(np.sum(reference * candidate, axis=1)))


def check_agreement(reference: np.ndarray, candidate: np.ndarray, bound: float, what: str) -> float:
    cosine = agreement(reference, candidate)
    if not cosine >= bound:
        raise DeviceError(
            f"{what}: descriptors drift from the reference (cosine {cosine:.4f} < {bound} on the "
            f"calibration sample); refusing it (maps would not match)"
        )
    return cosine


def _require(module: str, how: str):
    try:
        return __import__(module)
    except ImportError:
        raise DeviceError(f"{module} is not installed; {how}") from None
