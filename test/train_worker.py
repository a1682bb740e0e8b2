"""Run by test_training under torchrun (and alone): trains on the demo world, saves this rank's
weights."""

import sys
from pathlib import Path

import torch

from ros2_netvlad.config import ArchConfig
from ros2_netvlad.demo import world
from ros2_netvlad.model.distributed import Distributed
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.training.config import TrainConfig
from ros2_netvlad.training.placesets import Split
from ros2_netvlad.training.trainer import Trainer

SIZE = (128, 96)


def main(out: str) -> None:
    distributed = Distributed.from_environment()
    places = world.places(6)
    train = Split(
        world.view_set(places, seed=1, size=SIZE),
        world.view_set(places, seed=2, changed=True, size=SIZE),
    )
    config = TrainConfig(
        epochs=2,
        batch_size=4,
        cache_refresh=8,
        width=SIZE[0],
        height=SIZE[1],
        lr=0.01,
        negative_samples=50,
        image_batch=8,
        trainable_stages=1,
        loader_threads=1,
    )
    model = build_model(ArchConfig("efficientnet_lite0", 8), pretrained=True)
    trainer = Trainer(
        model, train, train, config, Path(out) / "run", "cpu", distributed, progress=False
    )
    trainer.initialize_clusters()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    history = trainer.fit()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(
        {"initial": initial, "state": state, "history": history},
        Path(out) / f"rank{distributed.rank}.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1])
