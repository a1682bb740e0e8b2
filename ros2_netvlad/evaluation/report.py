"""Evaluation reports: metrics.json, report.md and PNG plots a person reads in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ros2_netvlad.evaluation.metrics import PrecisionRecall  # noqa: E402


def write_report(
    out: Path,
    title: str,
    metrics: dict,
    per_query: dict,
    map_positions: np.ndarray,
    query_positions: np.ndarray,
    extra_sections: dict[str, dict | str] | None = None,
    failures: list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None]] | None = None,
    latencies_ms: np.ndarray | None = None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    plots = [
        _recall_curve(out, per_query["rank"]),
        _pr_curve(out, per_query["pr"]),
        _trajectory(out, map_positions, query_positions, per_query),
    ]
    if failures:
        plots.append(_failure_strip(out, failures))
    if latencies_ms is not None and len(latencies_ms):
        plots.append(_latency_histogram(out, latencies_ms))
    (out / "report.md").write_text(_markdown(title, metrics, extra_sections or {}, plots))
    return out


def summary_table(metrics: dict) -> str:
    keys = ["recall@1", "recall@5", "recall@10", "recall@20", "pr_auc", "recall_at_100_precision"]
    head = " | ".join(keys)
    return (
        f"| {head} |\n|{'---|' * len(keys)}\n| "
        + " | ".join(f"{metrics[k]:.3f}" for k in keys)
        + " |"
    )


def _markdown(title: str, metrics: dict, sections: dict[str, dict | str], plots: list[str]) -> str:
    lines = [
        f"# {title}",
        "",
        summary_table(metrics),
        "",
        f"{metrics['num_queries']} queries ({metrics['num_queries_with_true_match']} with a map "
        f"entry within "
        f"{metrics['threshold_m']:g} m), {metrics['num_map_entries']} map entries.",
        "",
    ]
    for name, values in sections.items():
        if isinstance(values, str):  # a ready markdown block
            lines += [f"## {name}", "", values, ""]
            continue
        lines += (
            [f"## {name}", "", "| | |", "|---|---|"]
            + [f"| {k} | {v} |" for k, v in values.items()]
            + [""]
        )
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def _recall_curve(out: Path, ranks: np.ndarray) -> str:
    ns = np.arange(1, 21)
    recall = [np.mean((ranks >= 0) & (ranks < n)) if len(ranks) else 0 for n in ns]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ns, recall, marker="o")
    ax.set(xlabel="N (top candidates)", ylabel="Recall@N", ylim=(0, 1.02), title="Recall@N")
    ax.grid(alpha=0.3)
    return _save(fig, out, "recall_at_n.png")


def _pr_curve(out: Path, pr: PrecisionRecall) -> str:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(pr.recall):
        ax.step(pr.recall, pr.precision, where="post")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
        title=f"Loop-closure precision-recall (AUC {pr.auc:.3f})",
    )
    ax.grid(alpha=0.3)
    return _save(fig, out, "precision_recall.png")


def _trajectory(
    out: Path, map_positions: np.ndarray, query_positions: np.ndarray, per_query: dict
) -> str:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(map_positions[:, 0], map_positions[:, 1], s=8, c="lightgray", label="map")
    ok = per_query["top1_correct"]
    none = ~np.isfinite(per_query["top1_score"])
    for mask, colour, label in (
        (ok, "tab:green", "correct"),
        (~ok & ~none, "tab:red", "wrong"),
        (none, "tab:gray", "no match"),
    ):
        if mask.any():
            ax.scatter(
                query_positions[mask, 0], query_positions[mask, 1], s=14, c=colour, label=label
            )
    ax.set(xlabel="x [m]", ylabel="y [m]", title="Query path, top-1 result")
    ax.axis("equal")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, out, "trajectory.png")


def _failure_strip(out: Path, failures: list) -> str:
    fig, axes = plt.subplots(len(failures), 3, figsize=(9, 2.6 * len(failures)), squeeze=False)
    for row, (caption, query, wrong, right) in zip(axes, failures):
        for ax, image, label in zip(
            row, (query, wrong, right), ("query", "wrong top-1", "true match")
        ):
            ax.axis("off")
            if image is not None:
                ax.imshow(image)
            else:
                ax.text(0.5, 0.5, "(no image stored)", ha="center", va="center")
            ax.set_title(f"{label}\n{caption}" if label == "query" else label, fontsize=8)
    return _save(fig, out, "worst_failures.png")


def _latency_histogram(out: Path, latencies_ms: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(latencies_ms, bins=30)
    ax.set(xlabel="latency image → candidates [ms]", ylabel="frames", title="Latency")
    return _save(fig, out, "latency.png")


def training_curves(out: Path, history: list[dict]) -> str:
    """Loss and validation Recall@1/5/10 per epoch (epoch 0 is the model before training)."""
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, recall_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    trained = [row for row in history if row["epoch"] > 0]
    loss_ax.plot([r["epoch"] for r in trained], [r["loss"] for r in trained], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="mean triplet loss per query", title="Training loss")
    for n in (1, 5, 10):
        recall_ax.plot(epochs, [row[f"recall@{n}"] for row in history], marker="o", label=f"R@{n}")
    recall_ax.set(
        xlabel="epoch", ylabel="validation recall", ylim=(0, 1.02), title="Validation Recall@N"
    )
    recall_ax.legend()
    for ax in (loss_ax, recall_ax):
        ax.grid(alpha=0.3)
    return _save(fig, out, "training.png")
