"""What a training run keeps on disk: its state in checkpoints, its metrics, and the rule for
resuming it (only running longer is the same run)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ros2_netvlad.config_files import write_resolved_config
from ros2_netvlad.config_rules import ConfigError, from_dict
from ros2_netvlad.evaluation.report import training_curves
from ros2_netvlad.model.checkpoints import (
    WeightsError,
    model_from_checkpoint,
    read_checkpoint,
    save,
)
from ros2_netvlad.model.netvlad import PlaceNet
from ros2_netvlad.training.config import TrainConfig

# Settings a resumed run may change; anything else would make it a different run.
RESUMABLE_CHANGES = {"epochs", "image_batch", "loader_threads"}


@dataclass
class TrainState:
    """What a checkpoint carries to continue a run exactly: epoch, history, remembered negatives."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    remembered: dict[int, list[int]] = field(default_factory=dict)
    best: tuple[float, float] = (-1.0, -1.0)  # (Recall@5, Recall@1) of best.pt

    def to_saved(self, data_signature: str, optimization: dict) -> dict:
        """The checkpoint's ``train_state``: this state, the data it trained on, the optimizer,
        scheduler and scaler states."""
        saved = {"epoch": self.epoch, "history": self.history, "data": data_signature}
        return {**saved, "remembered": self.remembered, "best": list(self.best), **optimization}

    @classmethod
    def from_saved(cls, saved: dict) -> "TrainState":
        remembered = {int(k): list(v) for k, v in saved["remembered"].items()}
        return cls(saved["epoch"], list(saved["history"]), remembered, tuple(saved["best"]))


def write_metrics(out: Path, history: list[dict]) -> None:
    (out / "metrics.json").write_text(json.dumps(history, indent=2))
    columns = list(dict.fromkeys(key for row in history for key in row))
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(history)
    training_curves(out, history)


# --- checkpoints ----------------------------------------------------------------------------------


def read_training_checkpoint(path: str | Path) -> tuple[PlaceNet, TrainConfig, dict]:
    """The model, training config and full checkpoint of a run to resume (``last.pt``)."""
    checkpoint = read_checkpoint(path)
    if "train_state" not in checkpoint or "train_config" not in checkpoint:
        raise WeightsError(
            f"{path}: not a training checkpoint (no optimizer state); resume from the run's "
            f"last.pt, or start a new run from these weights with --weights"
        )
    return (
        model_from_checkpoint(checkpoint, path),
        from_dict(TrainConfig, checkpoint["train_config"], "train"),
        checkpoint,
    )


def check_resumable(saved: TrainConfig, requested: TrainConfig) -> None:
    """A resumed run may only run longer (or decode differently); anything else is a new run."""
    changed = [
        f"train.{f.name}: {getattr(saved, f.name)!r} → {getattr(requested, f.name)!r}"
        for f in dataclasses.fields(TrainConfig)
        if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(requested, f.name)
    ]
    if changed:
        raise ConfigError(
            f"the checkpoint's run used other settings ({'; '.join(changed)}); a resumed run "
            f"continues the same run — start a new one from its weights with --weights instead"
        )


def data_signature(split) -> str:
    """Identifies the training images, so a resume cannot silently mix runs (remembered negatives
    are reference-set indices)."""
    digest = hashlib.sha256()
    for place_set in (split.references, split.queries):
        digest.update(f"{len(place_set)}\n".encode())
        for name in place_set.names:
            digest.update(name.encode() + b"\n")
    return digest.hexdigest()[:16]


def save_epoch(
    out: Path, model: PlaceNet, config: TrainConfig, train_state: dict, row: dict, improved: bool
) -> None:
    """last.pt (everything a resume needs), best.pt when the epoch improved, the metrics files and
    the resolved config."""
    out.mkdir(parents=True, exist_ok=True)
    write_resolved_config(out, train=config, arch=model.arch)
    settings = dataclasses.asdict(config)
    save(model, out / "last.pt", train_config=settings, train_state=train_state, metrics=row)
    if improved:
        save(model, out / "best.pt", train_config=settings, metrics=row)
    write_metrics(out, train_state["history"])
