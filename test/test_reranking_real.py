"""Re-ranking and verification on real photographs: the development set assembled from registry
packages (evaluation/realset.py: image-matching pairs under viewpoint, illumination and day/dusk
change, unrelated distractors, and queries that have no true match)."""

import numpy as np
import pytest
import torch

from ros2_netvlad.config import ArchConfig, DescriberConfig, LocalizerConfig
from ros2_netvlad.evaluation.offline import evaluate
from ros2_netvlad.evaluation.realset import PAIRS, assemble
from ros2_netvlad.maps.building import BuildOptions, build_map
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.sources.source import FolderSource


@pytest.fixture(scope="module")
def realset():
    return assemble()


def _map(realset, out, pretrained: bool):
    torch.manual_seed(0)
    model = build_model(ArchConfig("efficientnet_lite0", 16), pretrained=pretrained)
    options = BuildOptions(model=DescriberConfig(max_side=320), fit_clusters=True, progress=False)
    build_map(out, [FolderSource(realset.map_folder, realset.map_poses)], model, options)
    return out


def _decisions(realset, map_dir, out, rerank_top_n):
    queries = [FolderSource(realset.query_folder, realset.query_poses)]
    config = LocalizerConfig(rerank_top_n=rerank_top_n)
    return evaluate(map_dir, queries, out, 10.0, progress=False, localizer=config)["decisions"]


def test_reranking_recovers_the_order_a_weak_descriptor_gets_wrong(realset, tmp_path):
    """With a random (untrained) backbone the descriptor order on real pairs is poor; the same
    shortlist re-ranked by stored local features puts the true place first far more often, and
    what it verifies is never wrong."""
    map_dir = _map(realset, tmp_path / "map", pretrained=False)
    decisions = _decisions(realset, map_dir, tmp_path / "eval", rerank_top_n=50)
    raw, reranked, verified = decisions["raw"], decisions["reranked"], decisions["verified"]
    assert reranked["recall@1"] >= raw["recall@1"] + 0.2, decisions
    assert verified["false_loop_closures"] == 0 and verified["accepted"] >= len(PAIRS), decisions


def test_verification_accepts_no_false_loop_closure_on_real_photos(realset, tmp_path):
    map_dir = _map(realset, tmp_path / "map", pretrained=True)
    decisions = _decisions(realset, map_dir, tmp_path / "eval", rerank_top_n=10)
    raw, verified = decisions["raw"], decisions["verified"]
    # every query without a true match gets a (wrong) raw top-1; verification refuses them all
    assert raw["false_loop_closures"] >= 7 and verified["false_loop_closures"] == 0, decisions
    assert verified["recall"] >= 0.5, decisions  # of the queries that have a true match
    assert verified["recall_at_100_precision"] >= 0.5, decisions
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "## Loop-closure decisions" in report and "| verified |" in report
    assert np.isfinite(decisions["reranked"]["pr_auc"])
