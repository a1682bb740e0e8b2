"""Weakly supervised triplet training (NetVLAD §4).

Each epoch walks the usable training queries in a seeded order, in subsets of ``cache_refresh``.
Before a subset, the database and the subset's queries are described with the current network
(the descriptor cache, fp16 on the GPU when it fits); for every query the best-matching potential
positive and the hard negatives are mined from the cache, and the network trains on those triplets.
After the epoch: validation Recall@1/5/10, checkpoints (``last.pt``, ``best.pt`` by R@5) and
metrics (CSV, JSON, plot).

Under ``torchrun`` every rank describes a shard of each cache and validation set (then gathered),
takes ``batch[rank::world]`` of each global batch, and DistributedDataParallel averages the
gradients; the loss is scaled so that this equals one process on the whole batch. Rank 0 writes.

BatchNorm statistics stay frozen (the model stays in eval mode): batches of a few triplets would
give noisy statistics, and it keeps the ranks' networks identical.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ros2_netvlad.config import DescriberConfig
from ros2_netvlad.evaluation.metrics import recall_at_n, within
from ros2_netvlad.model.clustering import initialize_netvlad
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.distributed import Distributed, rank_device
from ros2_netvlad.model.netvlad import PlaceNet
from ros2_netvlad.resize import RESIZE_DEFAULTS
from ros2_netvlad.sources.folders import DatasetError
from ros2_netvlad.training.config import TrainConfig
from ros2_netvlad.training.mining import best_positive, hard_negatives, triplet_loss
from ros2_netvlad.training.net import TrainingNet, describe_across_ranks, optimizer_and_schedule
from ros2_netvlad.training.placesets import ImageLoader, PlaceSet, Split
from ros2_netvlad.training.runs import TrainState, data_signature, save_epoch

log = logging.getLogger(__name__)

RECALL_NS = (1, 5, 10)


class Trainer:
    def __init__(
        self,
        model: PlaceNet,
        train: Split,
        val: Split,
        config: TrainConfig,
        out: str | Path,
        device: str = "auto",
        distributed: Distributed | None = None,
        progress: bool = True,
    ) -> None:
        self.config, self.out = config, Path(out)
        self.dist = distributed or Distributed()
        self.progress = progress and self.dist.rank == 0
        self.device = rank_device(device)
        self.amp = config.amp and self.device.type == "cuda"
        if not isinstance(model.whiten, nn.Identity):
            log.warning(
                "dropping the model's PCA whitening for training; fit it again afterwards (fit_pca)"
            )
            model.whiten = nn.Identity()
            model.arch = dataclasses.replace(model.arch, whiten_dim=0, output_dim=0)
        self.model, self.train_split, self.val_split = model, train, val
        self._data_signature = data_signature(train)  # names the training images, for resume
        self.sets = train.triplets(config.positive_radius, config.negative_radius)
        if not len(self.sets.queries):
            raise DatasetError(
                f"no training query has a database image within {config.positive_radius} m "
                f"(of {len(train.queries)} queries): check the poses and their units"
            )
        if self.sets.skipped:
            log.warning(
                "%d of %d training queries have no potential positive within %.0f m and are "
                "skipped",
                self.sets.skipped,
                len(train.queries),
                config.positive_radius,
            )
        self.val_correct = within(
            val.queries.positions, val.references.positions, config.val_threshold
        )
        self.size = (config.width, config.height)
        trained_at = {"resize": "exact", "width": config.width, "height": config.height}
        if model.resize_rule and model.resize_rule != trained_at:
            log.warning(
                "the start weights were trained at %s; this run trains at %s (train.width/height)",
                model.resize_rule,
                trained_at,
            )
        model.resize_rule = {**RESIZE_DEFAULTS, **trained_at}  # travels in every checkpoint
        self.loader = ImageLoader(self.size, config.loader_threads)
        self.describer = Describer(
            model,
            DescriberConfig(
                device=str(self.device),
                precision="auto" if self.amp else "fp32",
                resize="exact",
                width=config.width,
                height=config.height,
                batch_size=config.image_batch,
            ),
        )
        self.timings: Counter = Counter()
        self.state = TrainState()
        self._build_optimization()

    # --- set-up -----------------------------------------------------------------------------------

    def initialize_clusters(self) -> float | None:
        """k-means NetVLAD centroids on local features of sampled training database images (rank 0
        fits, then every rank takes its result)."""
        alpha = None
        if self.dist.rank == 0:
            database = self.train_split.references
            picks = np.linspace(
                0, len(database) - 1, min(self.config.kmeans_images, len(database))
            ).round()
            images = (database.load(int(i), self.size) for i in np.unique(picks))
            alpha = initialize_netvlad(
                self.describer, images, seed=self.config.seed, progress=self.progress
            )
        return self.dist.broadcast_module(self.model.pool, alpha)

    def _build_optimization(self) -> None:
        config = self.config
        self.net = TrainingNet(self.model, config.trainable_stages)
        self.ddp = self.net
        if self.dist.world_size > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer, self.scheduler = optimizer_and_schedule(params, config)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def resume(self, checkpoint: dict) -> None:
        """Continues the run saved in ``checkpoint`` (from ``last.pt``)."""
        saved = checkpoint["train_state"]
        if saved.get("data") != self._data_signature:
            raise DatasetError(
                "the checkpoint's run trained on other images (database / queries differ); "
                "resume with the same --db/--queries (or --mat), or start a new run with --weights"
            )
        for part in ("optimizer", "scheduler", "scaler"):
            getattr(self, part).load_state_dict(saved[part])
        self.state = TrainState.from_saved(saved)

    # --- the run ----------------------------------------------------------------------------------

    def fit(self) -> list[dict]:
        """Trains up to ``config.epochs``; returns the per-epoch history (epoch 0 = before
        training)."""
        torch.manual_seed(self.config.seed)
        if self.dist.rank == 0:  # a run killed while saving leaves its temporary file behind
            for stale in self.out.glob(".*.pt.*.tmp"):
                stale.unlink()
        if not self.state.history:
            self._finish_epoch(
                {
                    "epoch": 0,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "loss": None,
                    "triplet_queries": 0.0,
                    **self.validate(),
                    "seconds": 0.0,
                }
            )
        for epoch in range(self.state.epoch + 1, self.config.epochs + 1):
            start, self.timings = time.perf_counter(), Counter()
            lr = self.optimizer.param_groups[0]["lr"]
            loss, fraction = self.train_epoch(epoch)
            with (
                warnings.catch_warnings()
            ):  # an epoch where no query violated the margin took no step
                warnings.filterwarnings(
                    "ignore", "Detected call of `lr_scheduler.step", UserWarning
                )
                self.scheduler.step()
            row = {
                "epoch": epoch,
                "lr": lr,
                "loss": loss,
                "triplet_queries": fraction,
                **self.validate(),
            }
            row["seconds"] = time.perf_counter() - start
            row.update({f"seconds_{k}": round(v, 3) for k, v in sorted(self.timings.items())})
            self.state.epoch = epoch
            self._finish_epoch(row)
        return self.state.history

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the queries; returns the mean loss per query and the fraction of queries
        that
        had a violating negative."""
        config, sets = self.config, self.sets
        order = np.random.default_rng([config.seed, epoch]).permutation(len(sets.queries))
        subset_size = max(1, config.cache_refresh // config.batch_size) * config.batch_size
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, queries, queries with triplets
        bar = tqdm(
            total=len(order),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="query",
            disable=not self.progress,
        )
        for start in range(0, len(order), subset_size):
            subset = order[start : start + subset_size]
            database = self._describe(
                self.train_split.references,
                np.arange(len(self.train_split.references)),
                "caching database",
            )
            queries = self._describe(
                self.train_split.queries, sets.queries[subset], "caching queries"
            )
            row_of = {int(k): row for row, k in enumerate(subset)}
            learned: dict[int, list[int]] = {}
            for b in range(0, len(subset), config.batch_size):
                batch = subset[b : b + config.batch_size]
                mine = batch[self.dist.rank :: self.dist.world_size]
                triplets = [
                    self._mine(int(k), queries[row_of[int(k)]], database, epoch, learned)
                    for k in mine
                ]
                loss = self._step(triplets, len(batch))
                totals += torch.tensor(
                    [loss, len(mine), sum(t is not None for t in triplets)], dtype=torch.float64
                )
                bar.update(len(batch))
                bar.set_postfix(loss=f"{loss / max(1, len(mine)):.4f}")
            self._remember(learned)
        bar.close()
        totals = self.dist.all_sum(totals, self.device)
        return float(totals[0] / max(1.0, totals[1])), float(totals[2] / max(1.0, totals[1]))

    def _mine(
        self,
        k: int,
        query: torch.Tensor,
        database: torch.Tensor,
        epoch: int,
        learned: dict[int, list[int]],
    ) -> tuple[int, int, np.ndarray] | None:
        """(query index, best positive, hard negatives) for training query k, or None when no
        negative
        violates the margin (such a query has zero loss)."""
        started = time.perf_counter()
        q = int(self.sets.queries[k])
        positive = best_positive(query, database, self.sets.positives[k])
        rng = np.random.default_rng([self.config.seed, epoch, q])
        negatives = hard_negatives(
            query,
            database,
            self.sets.non_negatives[k],
            positive,
            rng,
            self.config.negative_samples,
            self.config.hard_negatives,
            self.config.margin,
            self.state.remembered.get(q, ()),
        )
        learned[q] = [int(n) for n in negatives]
        self.timings["mining"] += time.perf_counter() - started
        return (q, positive, negatives) if len(negatives) else None

    def _step(self, triplets: list, global_batch: int) -> float:
        """One optimizer step on this rank's triplets; returns their summed loss."""
        usable = [t for t in triplets if t is not None]
        if self.dist.all_sum(torch.tensor([float(len(usable))]), self.device)[0] == 0:
            return 0.0  # no rank has a violating negative: nothing to learn from this batch
        started = time.perf_counter()
        queries, database = self.train_split.queries, self.train_split.references
        items = [
            pair
            for q, positive, negatives in usable
            for pair in [
                (queries, q),
                (database, positive),
                *((database, int(n)) for n in negatives),
            ]
        ]
        # a rank without triplets still joins the gradient all-reduce, with a zero loss
        images = self.loader.pairs(items or [(queries, int(self.sets.queries[0]))])
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float()
        x = x.contiguous(memory_format=torch.channels_last)
        self.timings["loading"] += time.perf_counter() - started
        started = time.perf_counter()
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            descriptors = self.ddp(x).float()
        loss, offset = descriptors.sum() * 0.0, 0
        for _, _, negatives in usable:
            end = offset + 2 + len(negatives)
            loss = loss + triplet_loss(
                descriptors[offset],
                descriptors[offset + 1],
                descriptors[offset + 2 : end],
                self.config.margin,
            )
            offset = end
        # DDP averages gradients over ranks: scaling by world/batch makes that the mean over the
        # global batch.
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss * self.dist.world_size / global_batch).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.timings["model"] += time.perf_counter() - started
        return float(loss.detach())

    def validate(self) -> dict[str, float]:
        """Recall@1/5/10 of the validation queries against the validation database."""
        val = self.val_split
        database = self._describe(
            val.references, np.arange(len(val.references)), "validation database"
        ).float()
        queries = self._describe(
            val.queries, np.arange(len(val.queries)), "validation queries"
        ).float()
        k = min(max(RECALL_NS), len(val.references))
        top = (
            torch.cat(
                [
                    torch.topk(chunk @ database.T, k, dim=1).indices
                    for chunk in torch.split(queries, 1024)
                ]
            )
            .cpu()
            .numpy()
        )
        recall = recall_at_n(top, self.val_correct, RECALL_NS)
        return {f"recall@{n}": recall[n] for n in RECALL_NS}

    # --- descriptors, sharded over ranks ----------------------------------------------------------

    def _describe(self, place_set: PlaceSet, indices: np.ndarray, what: str) -> torch.Tensor:
        """Descriptors of ``place_set[indices]`` with the current weights, on every rank; fp16 on
        the GPU when they fit, else fp32 on the CPU."""
        started = time.perf_counter()
        descriptors = describe_across_ranks(
            self.describer,
            self.loader,
            place_set,
            indices,
            self.dist,
            self.device,
            batch=self.config.image_batch,
            what=what,
            progress=self.progress,
        )
        self.timings["describing"] += time.perf_counter() - started
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if descriptors.numel() * 2 < free // 4:
                return descriptors.to(self.device, torch.float16)
        return descriptors.cpu()

    def _remember(self, learned: dict[int, list[int]]) -> None:
        """Each query's hard negatives are tried again next epoch; ranks share what they mined."""
        for part in self.dist.all_gather(learned):
            self.state.remembered.update(part)

    # --- outputs ----------------------------------------------------------------------------------

    def _finish_epoch(self, row: dict) -> None:
        self.state.history.append(row)
        score = (row["recall@5"], row["recall@1"])  # best by Recall@5; Recall@1 breaks ties
        improved = score > self.state.best
        if improved:
            self.state.best = score
        log.info(
            "epoch %d: loss %s, val R@1 %.3f R@5 %.3f R@10 %.3f",
            row["epoch"],
            "-" if row["loss"] is None else f"{row['loss']:.4f}",
            row["recall@1"],
            row["recall@5"],
            row["recall@10"],
        )
        if self.dist.rank != 0:
            return
        parts = {k: getattr(self, k).state_dict() for k in ("optimizer", "scheduler", "scaler")}
        train_state = self.state.to_saved(self._data_signature, parts)
        save_epoch(self.out, self.model, self.config, train_state, row, improved)
