"""Searching a faiss index: exact inner product through BLAS, and leaving ids out of a search
(the exclusion window) without starving it."""

from __future__ import annotations

import faiss
import numpy as np

from ros2_netvlad.config import DatabaseConfig


def search_excluding(
    index: faiss.Index, queries: np.ndarray, k: int, excluded: np.ndarray, config: DatabaseConfig
) -> tuple[np.ndarray, np.ndarray]:
    """faiss ID selectors where the index takes them (CPU indexes); elsewhere (GPU) a search
    that widens until k allowed results survive."""
    try:
        batch = faiss.IDSelectorBatch(excluded)  # kept referenced: the Not holds a raw pointer
        selector = faiss.IDSelectorNot(batch)
        return index.search(queries, k, params=_search_parameters(index, selector, config))
    except (RuntimeError, TypeError, AttributeError):
        pass
    wide = k
    while True:
        wide = min(index.ntotal, wide + len(excluded))
        scores, ids = index.search(queries, wide)
        ids = np.where(np.isin(ids, excluded), -1, ids)
        order = np.argsort(ids < 0, axis=1, kind="stable")[:, :k]  # kept results first
        scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        if wide == index.ntotal or np.all(ids >= 0):
            return scores, ids


def _search_parameters(
    index: faiss.Index, selector, config: DatabaseConfig
) -> faiss.SearchParameters:
    if faiss.try_extract_index_ivf(index) is not None:
        return faiss.SearchParametersIVF(sel=selector, nprobe=config.nprobe)
    if hasattr(faiss.downcast_index(index), "hnsw"):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=config.ef_search)
    return faiss.SearchParameters(sel=selector)


def exact_search(
    index: faiss.IndexFlat,
    queries: np.ndarray,
    k: int,
    excluded: np.ndarray | None = None,
    chunk: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k through one BLAS matmul per query chunk. faiss scans one query at a
    time on one thread below 20 queries; the live node asks one at a time, and a multi-threaded
    GEMV over the stored vectors (a view, no copy) runs at memory bandwidth."""
    vectors = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(
        index.ntotal, index.d
    )
    allowed = index.ntotal - (0 if excluded is None else len(excluded))
    k_out, k = k, min(k, index.ntotal)
    all_scores, all_ids = [], []
    for start in range(0, len(queries), chunk):
        similarity = queries[start : start + chunk] @ vectors.T
        if excluded is not None and len(excluded):
            similarity[:, excluded] = -np.inf
        if k == 1:  # the live node's case: one pass, no partition
            top = similarity.argmax(axis=1)[:, None]
        elif k < index.ntotal:
            top = np.argpartition(similarity, index.ntotal - k, axis=1)[:, index.ntotal - k :]
        else:
            top = np.broadcast_to(np.arange(index.ntotal), similarity.shape)
        scores = np.take_along_axis(similarity, top, axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")
        all_scores.append(np.take_along_axis(scores, order, axis=1))
        all_ids.append(np.take_along_axis(top, order, axis=1).astype(np.int64))
    scores, ids = np.concatenate(all_scores), np.concatenate(all_ids)
    ids[:, allowed:] = -1  # past the allowed entries only excluded ones are left
    return _pad(scores, ids, k_out)


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Q×k, the columns past the map's size filled as missing (id -1, score -inf)."""
    scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
    if ids.shape[1] >= k:
        return scores, ids
    extra = k - ids.shape[1]
    return (
        np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf),
        np.pad(ids, ((0, 0), (0, extra)), constant_values=-1),
    )
