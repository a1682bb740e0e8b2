"""Training settings (NetVLAD §4, defaults after the paper's Pittsburgh runs), with validation:
the ``train`` section of ``config/train.yaml`` and one ``train`` flag per field."""

from __future__ import annotations

from dataclasses import dataclass, field

from ros2_netvlad.config_rules import check, check_choice, check_ranges, param

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
        check_ranges(self, "train")
        check(
            self.positive_radius <= self.negative_radius,
            "train.positive_radius",
            f"{self.positive_radius} m exceeds train.negative_radius {self.negative_radius} m",
        )
        check_choice(self.optimizer, "train.optimizer", OPTIMIZERS)
        check_choice(self.schedule, "train.schedule", SCHEDULES)
