"""Configuration: frozen dataclasses with defaults and validation.

One tree serves three surfaces: Python, YAML sections and the node's dotted ROS parameters. ROS
parameters cannot be None, so "auto"/"" and 0 stand for "choose for me".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from ros2_netvlad.errors import InputError

T = TypeVar("T")


class ConfigError(InputError):
    """A configuration value is invalid; the message names the field."""


def _check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{name}: {message}")


def _check_choice(value: str, name: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, name, f"must be one of {', '.join(choices)}, got {value!r}")


def param(description: str, **meta: Any) -> Any:
    """Field metadata: a description (and optional min/max/read_only) for the ROS parameter."""
    return {"description": description, **meta}


BACKBONES = ("vgg16", "resnet18", "resnet50", "mobilenet_v3_large", "efficientnet_lite0")


@dataclass(frozen=True)
class ArchConfig:
    """Network architecture. Travels inside every checkpoint so `load()` rebuilds the same model."""

    backbone: str = field(
        default="vgg16", metadata=param("CNN backbone, cut at its last conv block")
    )
    num_clusters: int = field(default=64, metadata=param("NetVLAD clusters K", min=1, max=1024))
    whiten_dim: int = field(
        default=0, metadata=param("PCA-whitening output dims; 0 = no whitening", min=0)
    )
    output_dim: int = field(
        default=0, metadata=param("keep the first N whitened dims; 0 = all", min=0)
    )

    def __post_init__(self) -> None:
        _check_choice(self.backbone, "arch.backbone", BACKBONES)
        _check(
            self.num_clusters >= 1, "arch.num_clusters", f"must be >= 1, got {self.num_clusters}"
        )
        _check(self.whiten_dim >= 0, "arch.whiten_dim", f"must be >= 0, got {self.whiten_dim}")
        _check(self.output_dim >= 0, "arch.output_dim", f"must be >= 0, got {self.output_dim}")
        _check(
            self.output_dim == 0 or 0 < self.output_dim <= self.whiten_dim,
            "arch.output_dim",
            f"truncation to {self.output_dim} dims needs a whitening layer with at least as many "
            f"dims (whiten_dim={self.whiten_dim})",
        )


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
RESIZE_MODES = ("auto", "none", "max_side", "exact")
# What `auto` / 0 become when neither the caller nor a map says otherwise.
RESIZE_DEFAULTS = {"resize": "max_side", "max_side": 640, "width": 640, "height": 480}


@dataclass(frozen=True)
class DescriberConfig:
    """How the Describer computes descriptors (which weights, where, at what size): the ``model``
    section of YAML files and the node's ``model.*`` parameters."""

    weights: str = field(
        default="",
        metadata=param(
            "checkpoint or public weight file; empty = the map's own model.pt", read_only=True
        ),
    )
    device: str = field(
        default="auto",
        metadata=param("auto (CUDA when available), cpu, cuda or cuda:N", read_only=True),
    )
    precision: str = field(
        default="auto",
        metadata=param(
            "auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 (CUDA) or bf16", read_only=True
        ),
    )
    resize: str = field(
        default="auto",
        metadata=param(
            "auto (the map's setting), none, max_side (keep aspect, longest side = max_side) or "
            "exact (width x height)",
            read_only=True,
        ),
    )
    max_side: int = field(
        default=0,
        metadata=param(
            "longest image side for resize=max_side; 0 = the map's (640 without a map)",
            min=0,
            max=8192,
            read_only=True,
        ),
    )
    width: int = field(
        default=0,
        metadata=param(
            "width for resize=exact; 0 = the map's (640)", min=0, max=8192, read_only=True
        ),
    )
    height: int = field(
        default=0,
        metadata=param(
            "height for resize=exact; 0 = the map's (480)", min=0, max=8192, read_only=True
        ),
    )
    batch_size: int = field(
        default=8,
        metadata=param("images per forward pass in offline tools", min=1, max=1024, read_only=True),
    )
    threads: int = field(
        default=0,
        metadata=param("torch CPU threads; 0 = torch default", min=0, max=256, read_only=True),
    )
    channels_last: bool = field(
        default=True, metadata=param("NHWC memory format (faster convs)", read_only=True)
    )

    def __post_init__(self) -> None:
        _check(
            self.device in DEVICES or self.device.startswith("cuda:"),
            "model.device",
            f"must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )
        _check_choice(self.precision, "model.precision", PRECISIONS)
        _check_choice(self.resize, "model.resize", RESIZE_MODES)
        for name in ("max_side", "width", "height"):
            _check(
                getattr(self, name) == 0 or getattr(self, name) >= 32,
                f"model.{name}",
                f"must be 0 (the map's) or >= 32, got {getattr(self, name)}",
            )
        _check(self.batch_size >= 1, "model.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.threads >= 0, "model.threads", f"must be >= 0, got {self.threads}")


def explicit_resize(config: DescriberConfig) -> dict[str, Any]:
    """The resize rule a config asks for explicitly: only the fields it sets (not auto / 0)."""
    return {k: getattr(config, k) for k in RESIZE_DEFAULTS if getattr(config, k) not in ("auto", 0)}


def resize_rule_text(settings: DescriberConfig | Mapping[str, Any]) -> str:
    """The resize rule in words, e.g. 'max_side 320' or 'exact 640 480'."""
    values = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
    return " ".join(map(str, _resize_rule({**RESIZE_DEFAULTS, **values})))


def _resize_rule(settings: Mapping[str, Any]) -> tuple:
    """What actually shapes the network input: the fields the resize mode uses, nothing else."""
    mode = settings["resize"]
    return {"none": (mode,), "max_side": (mode, settings["max_side"])}.get(
        mode, (mode, settings["width"], settings["height"])
    )


def resolve_resize(
    config: DescriberConfig, recorded: Mapping[str, Any] | None = None, force: bool = False
) -> tuple[DescriberConfig, str]:
    """Concrete describe settings for describing images against a map whose build recorded
    ``recorded`` (None for a new map or one built before maps carried them): explicit settings win,
    auto / 0 take the map's, then RESIZE_DEFAULTS. An explicit rule that differs from the map's
    makes descriptors incomparable: refused with ConfigError, or with ``force`` allowed and
    described in the returned warning (empty when there is nothing to say)."""
    base = {**RESIZE_DEFAULTS, **(recorded or {})}
    resolved = {**base, **explicit_resize(config)}
    warning = ""
    if recorded and _resize_rule(resolved) != _resize_rule(base):
        wanted, built = _resize_rule(resolved), _resize_rule(base)
        message = (
            f"model resize {' '.join(map(str, wanted))} differs from the map's "
            f"{' '.join(map(str, built))}: descriptors would not be comparable"
        )
        if not force:
            raise ConfigError(
                f"{message}; leave model.resize/max_side/width/height at auto/0 to "
                f"use the map's, or force it"
            )
        warning = message + " (forced)"
    return dataclasses.replace(config, **resolved), warning


@dataclass(frozen=True)
class DatabaseConfig:
    """How the map's descriptors are indexed."""

    index: str = field(
        default="Flat",
        metadata=param(
            "faiss factory string: Flat (exact), IVF<nlist>,PQ<m> or HNSW<M>", read_only=True
        ),
    )
    fp16: bool = field(
        default=False, metadata=param("store Flat/HNSW vectors as fp16", read_only=True)
    )
    nprobe: int = field(
        default=16, metadata=param("IVF lists searched per query", min=1, max=65536)
    )
    ef_search: int = field(default=64, metadata=param("HNSW search breadth", min=1, max=65536))
    device: str = field(
        default="auto", metadata=param("auto (GPU faiss when present) or cpu", read_only=True)
    )

    def __post_init__(self) -> None:
        _check(
            bool(self.index.strip()), "database.index", "must be a faiss factory string, e.g. Flat"
        )
        _check(
            not (self.fp16 and "PQ" in self.index),
            "database.fp16",
            "PQ indexes are already compressed; fp16 applies to Flat and HNSW",
        )
        _check(self.nprobe >= 1, "database.nprobe", f"must be >= 1, got {self.nprobe}")
        _check(self.ef_search >= 1, "database.ef_search", f"must be >= 1, got {self.ef_search}")
        _check_choice(self.device, "database.device", ("auto", "cpu", "cuda"))

    def factory_string(self) -> str:
        if not self.fp16:
            return self.index
        return "SQfp16" if self.index == "Flat" else f"{self.index},SQfp16"


@dataclass(frozen=True)
class KeyframeConfig:
    """When a frame becomes a map entry: moved, turned, or enough time passed since the last one."""

    min_distance: float = field(
        default=1.0, metadata=param("metres moved since the last keyframe", min=0.0, max=1000.0)
    )
    min_angle: float = field(
        default=15.0,
        metadata=param("degrees turned since the last keyframe", min=0.0, max=360.0),
    )
    max_interval: float = field(
        default=0.0,
        metadata=param(
            "seconds after which a frame is taken anyway; 0 = never", min=0.0, max=3600.0
        ),
    )

    def __post_init__(self) -> None:
        for name in ("min_distance", "min_angle", "max_interval"):
            _check(
                getattr(self, name) >= 0,
                f"keyframes.{name}",
                f"must be >= 0, got {getattr(self, name)}",
            )


VERIFICATION = ("none", "orb", "sift")


@dataclass(frozen=True)
class LocalizerConfig:
    """Turning nearest neighbours into loop-closure candidates and a pose prior."""

    top_k: int = field(default=5, metadata=param("candidates reported per frame", min=1, max=100))
    min_score: float = field(
        default=0.0,
        metadata=param("minimum cosine similarity of a candidate", min=-1.0, max=1.0),
    )
    exclusion_window: float = field(
        default=0.0,
        metadata=param(
            "ignore map entries closer in time than this many seconds (online mode); 0 = off",
            min=0.0,
            max=1e6,
        ),
    )
    nms_radius: float = field(
        default=1.0,
        metadata=param(
            "drop candidates within this many metres of a better one; 0 = off", min=0.0, max=1000.0
        ),
    )
    consistency: int = field(
        default=1,
        metadata=param(
            "consecutive frames that must agree on a place before it is reported; 1 = off",
            min=1,
            max=100,
        ),
    )
    consistency_radius: float = field(
        default=10.0,
        metadata=param(
            "metres within which consecutive best matches count as the same place", min=0.0, max=1e4
        ),
    )
    prior_radius: float = field(
        default=10.0,
        metadata=param(
            "candidates within this many metres of the best one form the pose prior",
            min=0.0,
            max=1e4,
        ),
    )
    position_variance_floor: float = field(
        default=1.0,
        metadata=param("minimum position variance of the pose prior (m^2)", min=0.0, max=1e6),
    )
    orientation_variance_floor: float = field(
        default=0.05,
        metadata=param("minimum orientation variance of the pose prior (rad^2)", min=0.0, max=10.0),
    )
    verification: str = field(
        default="none",
        metadata=param(
            "geometric check against stored map images: none, orb or sift", read_only=True
        ),
    )
    min_inliers: int = field(
        default=15, metadata=param("RANSAC inliers for a verified candidate", min=4, max=10000)
    )

    def __post_init__(self) -> None:
        _check(self.top_k >= 1, "localizer.top_k", f"must be >= 1, got {self.top_k}")
        _check(
            -1.0 <= self.min_score <= 1.0,
            "localizer.min_score",
            f"must be in [-1, 1], got {self.min_score}",
        )
        _check(
            self.consistency >= 1, "localizer.consistency", f"must be >= 1, got {self.consistency}"
        )
        for name in (
            "exclusion_window",
            "nms_radius",
            "consistency_radius",
            "prior_radius",
            "position_variance_floor",
            "orientation_variance_floor",
        ):
            _check(
                getattr(self, name) >= 0,
                f"localizer.{name}",
                f"must be >= 0, got {getattr(self, name)}",
            )
        _check_choice(self.verification, "localizer.verification", VERIFICATION)
        _check(
            self.min_inliers >= 4, "localizer.min_inliers", f"must be >= 4, got {self.min_inliers}"
        )


OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("step", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Weakly supervised triplet training (NetVLAD §4), defaults after the paper's Pittsburgh
    runs."""

    epochs: int = field(default=30, metadata=param("passes over the training queries", min=1))
    batch_size: int = field(
        default=4, metadata=param("queries per optimizer step, over all ranks", min=1)
    )
    cache_refresh: int = field(
        default=1000,
        metadata=param("queries between refreshes of the descriptor cache used for mining", min=1),
    )
    positive_radius: float = field(
        default=10.0, metadata=param("metres: potential positives", min=0.0)
    )
    negative_radius: float = field(
        default=25.0, metadata=param("metres: beyond it, definite negatives", min=0.0)
    )
    negative_samples: int = field(
        default=1000, metadata=param("definite negatives drawn per query", min=1)
    )
    hard_negatives: int = field(
        default=10, metadata=param("hardest violating negatives kept per query", min=1)
    )
    margin: float = field(
        default=0.1, metadata=param("triplet margin on squared distances", min=0.0)
    )
    trainable_stages: int = field(
        default=1,
        metadata=param(
            "last backbone stages trained with NetVLAD: 0 = NetVLAD only, 1 = conv5 (paper), 5 = "
            "all",
            min=0,
            max=5,
        ),
    )
    optimizer: str = field(default="sgd", metadata=param("sgd or adam"))
    lr: float = field(default=0.0001, metadata=param("learning rate", min=0.0))
    momentum: float = field(default=0.9, metadata=param("SGD momentum", min=0.0, max=1.0))
    weight_decay: float = field(default=0.001, metadata=param("L2 weight decay", min=0.0))
    schedule: str = field(default="step", metadata=param("step, cosine or constant learning rate"))
    lr_step: int = field(default=5, metadata=param("step schedule: epochs between decays", min=1))
    lr_gamma: float = field(
        default=0.5, metadata=param("step schedule: decay factor", min=0.0, max=1.0)
    )
    grad_clip: float = field(
        default=0.0, metadata=param("max gradient norm; 0 = no clipping", min=0.0)
    )
    amp: bool = field(default=True, metadata=param("mixed precision (fp16 autocast) on CUDA"))
    seed: int = field(
        default=0, metadata=param("seed for sampling, mining and initialization", min=0)
    )
    width: int = field(
        default=640, metadata=param("training image width (images are resized)", min=32)
    )
    height: int = field(default=480, metadata=param("training image height", min=32))
    image_batch: int = field(
        default=16, metadata=param("images per forward pass when describing", min=1)
    )
    kmeans_images: int = field(
        default=500, metadata=param("images sampled for NetVLAD k-means", min=1)
    )
    val_threshold: float = field(
        default=25.0, metadata=param("metres for a correct validation match", min=0.0)
    )
    loader_threads: int = field(default=4, metadata=param("threads decoding images", min=1))

    def __post_init__(self) -> None:
        for name in (
            "epochs",
            "batch_size",
            "cache_refresh",
            "negative_samples",
            "hard_negatives",
            "lr_step",
            "width",
            "height",
            "image_batch",
            "kmeans_images",
            "loader_threads",
        ):
            _check(
                getattr(self, name) >= 1,
                f"train.{name}",
                f"must be >= 1, got {getattr(self, name)}",
            )
        for name in (
            "positive_radius",
            "negative_radius",
            "margin",
            "lr",
            "weight_decay",
            "grad_clip",
            "val_threshold",
        ):
            _check(
                getattr(self, name) >= 0,
                f"train.{name}",
                f"must be >= 0, got {getattr(self, name)}",
            )
        _check(
            self.positive_radius <= self.negative_radius,
            "train.positive_radius",
            f"{self.positive_radius} m exceeds train.negative_radius {self.negative_radius} m",
        )
        _check(
            0 <= self.trainable_stages <= 5,
            "train.trainable_stages",
            f"must be in 0..5, got {self.trainable_stages}",
        )
        _check(0 <= self.momentum <= 1, "train.momentum", f"must be in [0, 1], got {self.momentum}")
        _check(0 <= self.lr_gamma <= 1, "train.lr_gamma", f"must be in [0, 1], got {self.lr_gamma}")
        _check_choice(self.optimizer, "train.optimizer", OPTIMIZERS)
        _check_choice(self.schedule, "train.schedule", SCHEDULES)


MODES = ("localize", "loop_closure")


@dataclass(frozen=True)
class NodeConfig:
    """The localization node itself."""

    map: str = field(
        default="",
        metadata=param(
            "map directory; in loop_closure mode it is created if missing and saved there",
            read_only=True,
        ),
    )
    mode: str = field(
        default="localize",
        metadata=param(
            "localize (prebuilt map, read-only) or loop_closure (keyframes added online)",
            read_only=True,
        ),
    )
    map_frame: str = field(
        default="map", metadata=param("frame of published poses", read_only=True)
    )
    force_map: bool = field(
        default=False,
        metadata=param(
            "use a map built by another model (descriptors will not be comparable)", read_only=True
        ),
    )
    odom_tolerance: float = field(
        default=0.2,
        metadata=param(
            "loop_closure mode: seconds between an image and the odometry that places it",
            min=0.0,
            max=10.0,
        ),
    )
    image_reliability: str = field(
        default="best_effort",
        metadata=param(
            "image QoS: best_effort (sensor data) or reliable (large raw images between processes)",
            read_only=True,
        ),
    )
    diagnostics_period: float = field(
        default=1.0,
        metadata=param("seconds between /diagnostics messages", min=0.1, max=60.0, read_only=True),
    )
    warning_period: float = field(
        default=5.0,
        metadata=param("seconds between repeated warnings about bad input", min=0.0, max=3600.0),
    )
    image_timeout: float = field(
        default=10.0,
        metadata=param(
            "warn when no image has arrived for this many seconds, naming the topics; 0 = never",
            min=0.0,
            max=3600.0,
        ),
    )
    autosave_period: float = field(
        default=60.0,
        metadata=param(
            "loop_closure mode: seconds between saves of a grown map (atomic); 0 = only on "
            "shutdown",
            min=0.0,
            max=86400.0,
        ),
    )

    def __post_init__(self) -> None:
        _check_choice(self.mode, "node.mode", MODES)
        _check_choice(self.image_reliability, "node.image_reliability", ("best_effort", "reliable"))
        _check(bool(self.map_frame), "node.map_frame", "must not be empty")
        _check(
            self.mode == "loop_closure" or bool(self.map),
            "node.map",
            "a map directory is required in localize mode",
        )
        _check(
            self.odom_tolerance >= 0,
            "node.odom_tolerance",
            f"must be >= 0, got {self.odom_tolerance}",
        )
        _check(self.diagnostics_period > 0, "node.diagnostics_period", "must be > 0")
        for name in ("warning_period", "image_timeout", "autosave_period"):
            _check(
                getattr(self, name) >= 0, f"node.{name}", f"must be >= 0, got {getattr(self, name)}"
            )


def from_dict(cls: type[T], values: Mapping[str, Any] | None, section: str = "") -> T:
    """Build a config dataclass from a mapping, refusing unknown keys by name."""
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    prefix = f"{section}." if section else ""
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(prefix + u for u in unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    coerced = {name: _coerce(known[name], value, prefix + name) for name, value in values.items()}
    return cls(**coerced)


def _coerce(f: dataclasses.Field, value: Any, name: str) -> Any:
    kind = type(f.default)
    if kind is bool:
        _check(isinstance(value, bool), name, f"must be true or false, got {value!r}")
        return value
    if kind is int:
        _check(
            isinstance(value, int) and not isinstance(value, bool),
            name,
            f"must be an integer, got {value!r}",
        )
        return value
    if kind is float:
        _check(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            name,
            f"must be a number, got {value!r}",
        )
        return float(value)
    if kind is str:
        _check(isinstance(value, str), name, f"must be a string, got {value!r}")
    return value


def load_yaml_section(path: str | Path, section: str, cls: type[T]) -> T:
    """Read one section of a YAML file (plain, or a ROS params file) into a config."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    return from_dict(cls, params_block(data).get(section, {}), section)


def params_block(data: dict[str, Any]) -> dict[str, Any]:
    """The ``ros__parameters`` block of a ROS params file, or the mapping itself."""
    for value in data.values():
        if isinstance(value, dict) and "ros__parameters" in value:
            return value["ros__parameters"]
    return data


RESOLVED_CONFIG = "config.yaml"


def resolved(**sections: Any) -> dict[str, Any]:
    """Config sections as plain data (dataclasses → dicts, paths → strings), in the given order."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return dataclasses.asdict(value)
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {name: plain(value) for name, value in sections.items()}


def write_resolved_config(folder: str | Path, **sections: Any) -> Path:
    """Writes what a tool ran with, every default filled in, as ``config.yaml`` in its output
    folder: a run can be read back or repeated without guessing which defaults applied."""
    path = Path(folder) / RESOLVED_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resolved(**sections), sort_keys=False))
    return path
