"""Configuration: frozen dataclasses with defaults and validation.

One tree serves three surfaces: Python, YAML sections and the node's dotted ROS parameters. ROS
parameters cannot be None, so "auto"/"" and 0 stand for "choose for me". How fields declare and
check themselves (``param``, ``check_ranges``, ``from_dict``, ``ConfigError``): config_rules.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ros2_netvlad.config_rules import check, check_choice, check_ranges, param


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
    # additions (issue 20; ARCH_ADDED gives them as models before them were): the defaults were
    # measured on the real sets (docs/benchmarks.md, "The shortlist")
    gem_weight: float = field(
        default=1.0,
        metadata=param(
            "a GeM (p = 3) of the backbone's feature map concatenated to NetVLAD with this "
            "weight (cosine = (vlad + w² gem) / (1 + w²)); 0 = NetVLAD alone",
            min=0.0,
            max=10.0,
        ),
    )
    multiscale: bool = field(
        default=False,
        metadata=param(
            "describe at scales 1, 0.75 and 0.5 and sum (about 1.7x the cost; int8 export "
            "refuses it)"
        ),
    )

    def __post_init__(self) -> None:
        # the backbone's name is checked against the registry when the network is built
        check_ranges(self, "arch")
        check(
            self.output_dim == 0 or 0 < self.output_dim <= self.whiten_dim,
            "arch.output_dim",
            f"truncation to {self.output_dim} dims needs a whitening layer with at least as many "
            f"dims (whiten_dim={self.whiten_dim})",
        )


# fields added to ArchConfig later, at the values every model before them had: a checkpoint
# without them is read so, and at these values they are left out of the fingerprint
ARCH_ADDED = {"gem_weight": 0.0, "multiscale": False}

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
RESIZE_MODES = ("auto", "none", "max_side", "exact")


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
            "auto (the map's precision; without one fp16 on CUDA, and on a CPU bf16 only where "
            "it is native, measured faster and equal to fp32, else fp32), fp32, fp16 (CUDA) or "
            "bf16",
            read_only=True,
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
    backend: str = field(
        default="torch",
        metadata=param(
            "inference runtime: torch, onnxruntime (fp32), openvino (fp32; bf16 with precision "
            "bf16 on a CPU with native bf16; int8 with an int8 backend_model) or tensorrt (CUDA, "
            "fp16)",
            read_only=True,
        ),
    )
    backend_model: str = field(
        default="",
        metadata=param(
            "exported model for the backend (export_model): .onnx, or OpenVINO .xml; empty = "
            "export the weights to ONNX in the cache",
            read_only=True,
        ),
    )

    def __post_init__(self) -> None:
        check_ranges(self, "model")
        check_choice(self.backend, "model.backend", BACKENDS)
        check(
            self.device in DEVICES or self.device.startswith("cuda:"),
            "model.device",
            f"must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )
        check_choice(self.precision, "model.precision", PRECISIONS)
        check_choice(self.resize, "model.resize", RESIZE_MODES)
        for name in ("max_side", "width", "height"):
            check(
                getattr(self, name) == 0 or getattr(self, name) >= 32,
                f"model.{name}",
                f"must be 0 (the map's) or >= 32, got {getattr(self, name)}",
            )


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
        check(
            bool(self.index.strip()), "database.index", "must be a faiss factory string, e.g. Flat"
        )
        check(
            not (self.fp16 and "PQ" in self.index),
            "database.fp16",
            "PQ indexes are already compressed; fp16 applies to Flat and HNSW",
        )
        check_ranges(self, "database")
        check_choice(self.device, "database.device", ("auto", "cpu", "cuda"))

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
        check_ranges(self, "keyframes")


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
        default="auto",
        metadata=param(
            "re-rank and verify with local features stored in the map: auto (the map's, off "
            "for maps without any), none, or a verifier's name, e.g. sift or orb (must be the "
            "map's)",
            read_only=True,
        ),
    )
    rerank_top_n: int = field(
        default=10,
        metadata=param(
            "shortlist entries re-ranked by their local-feature inliers", min=1, max=100
        ),
    )
    lookalike_quantile: float = field(
        default=0.99,
        metadata=param(
            "the map's own look-alikes (its entries against their most similar other places, "
            "measured at build and save): a candidate needs this quantile of their inliers plus "
            "lookalike_margin, never fewer than min_inliers; 0 = off (min_inliers alone)",
            min=0.0,
            max=1.0,
        ),
    )
    lookalike_default: int = field(
        default=30,
        metadata=param(
            "inliers a candidate needs on a map without a look-alike measurement (built before "
            "it existed; re-save or rebuild to measure one)",
            min=8,
            max=10000,
        ),
    )
    lookalike_margin: int = field(
        default=6,
        metadata=param(
            "inliers above the look-alikes' quantile (see lookalike_quantile)", min=0, max=1000
        ),
    )
    lookalike_aliasing: bool = field(
        default=True,
        metadata=param(
            "entries whose measured look-alike at another place reaches min_inliers (the same "
            "scene at two places) are accepted over frames only (odometry tracking or a weak "
            "sequence), never on their own inliers"
        ),
    )
    sequence_frames: int = field(
        default=0,
        metadata=param(
            "sequence acceptance: this many consecutive frames whose best matches reach "
            "sequence_min_inliers and agree (within sequence_radius of each other in the map) "
            "accept a revisit no single frame verifies; 0 or 1 = off",
            min=0,
            max=50,
        ),
    )
    sequence_min_inliers: int = field(
        default=15,
        metadata=param(
            "inliers a frame's best match needs to support a sequence (never below the map's "
            "look-alikes' quantile)",
            min=8,
            max=10000,
        ),
    )
    sequence_radius: float = field(
        default=10.0,
        metadata=param(
            "metres a frame's match may lie from where the previous match (and the odometry "
            "between the frames) puts it, for the frames to agree",
            min=0.1,
            max=10000.0,
        ),
    )
    sequence_track_distance: float = field(
        default=50.0,
        metadata=param(
            "odometry tracking: for this many metres of odometry after an accepted closure, a "
            "frame's candidate (one of its first sequence_track_rank) where the odometry puts "
            "the robot in the map, "
            "within sequence_radius (+10 % of the distance), is accepted too; frames with "
            "odometry only; 0 = off",
            min=0.0,
            max=10000.0,
        ),
    )
    sequence_track_rank: int = field(
        default=5,
        metadata=param(
            "odometry tracking: the tracked candidate must be among the frame's first N by "
            "descriptor",
            min=1,
            max=100,
        ),
    )
    root_sift: bool = field(
        default=True,
        metadata=param(
            "match SIFT features as RootSIFT (Hellinger distance; the stored features are the "
            "same, so any SIFT map can)",
            read_only=True,
        ),
    )
    min_inliers: int = field(
        default=20,
        metadata=param(
            "epipolar inliers for a verified candidate (a trusted loop closure): the floor of "
            "the gate learned from the map's look-alikes (lookalike_quantile)",
            min=8,
            max=10000,
        ),
    )

    def __post_init__(self) -> None:
        # the verification method is checked against the verifier registry by the Localizer
        check_ranges(self, "localizer")
