"""Map search: per-query latency, memory and top-1 agreement with exact search.

For each map size and descriptor dim: exact (faiss Flat inner product), IVF-PQ and HNSW through
MapDatabase, plus in the same run numpy brute force (one matmul) and the memory-bandwidth floor of
an exact scan (bytes scanned / measured copy bandwidth). Descriptors have a low-dimensional
structure like real NetVLAD maps and queries are noisy revisits of map entries.

Run: `.venv/bin/python benchmarks/search.py` (add --full for 1M x 4096-D, which needs ~20 GB).
"""

from __future__ import annotations

import argparse
import gc
import time

import faiss
import numpy as np
import psutil

from ros2_netvlad.config import DatabaseConfig
from ros2_netvlad.maps.database import Entry, MapDatabase

QUERIES = 200
LATENT = 96


def copy_bandwidth() -> float:
    """Bytes per second moved by a large memcpy, counted as read + write (STREAM convention). The
    floor derived from it is strict: a scan only reads, and one memcpy stream does not saturate
    the memory system."""
    src = np.ones(256 * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_time(lambda: np.copyto(dst, src)) for _ in range(5))
    return 2 * src.nbytes / best


def _time(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def descriptors(n: int, dim: int, seed: int, basis: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 50_000):
        stop = min(n, start + 50_000)
        x = rng.standard_normal((stop - start, LATENT), dtype=np.float32) @ basis
        x += 0.3 * rng.standard_normal(x.shape, dtype=np.float32)
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def revisits(data: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.choice(len(data), QUERIES, replace=False)
    # revisit noise: a query's cosine similarity to its true map entry is about 0.85
    noise = np.float32(0.6 / np.sqrt(data.shape[1]))
    q = data[truth] + noise * rng.standard_normal((QUERIES, data.shape[1]), dtype=np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32), truth


def per_query_ms(search, queries: np.ndarray) -> float:
    search(queries[:5])  # warm caches
    start = time.perf_counter()
    for q in queries:
        search(q[None])
    return 1000 * (time.perf_counter() - start) / len(queries)


def factory_for(kind: str, n: int, dim: int) -> str:
    if kind == "IVF-PQ":  # 4-bit fast-scan PQ, 16-D sub-vectors; nlist ~ 4 sqrt(N)
        nlist = min(1024, max(64, int(4 * np.sqrt(n)) // 64 * 64))  # k-means cost on 2 cores
        return f"IVF{nlist},PQ{dim // 16}x4fs"
    return {"exact": "Flat", "HNSW": "HNSW32"}[kind]


def bench(n: int, dim: int, bandwidth: float, kinds: list[str]) -> None:
    rng = np.random.default_rng(n + dim)
    basis = rng.standard_normal((LATENT, dim), dtype=np.float32)
    data = descriptors(n, dim, seed=1, basis=basis)
    queries, _ = revisits(data, rng)
    entries = [Entry(0, "map", (0.0, 0.0, 0.0))] * n
    exact_ids = None
    floor_ms = 1000 * data.nbytes / bandwidth
    numpy_ms = per_query_ms(lambda q, data=data: np.argmax(q @ data.T), queries[:50])
    print(
        f"\n{n:>9,} x {dim}-D  ({data.nbytes / 2**20:,.0f} MiB)   bandwidth floor {floor_ms:.2f} "
        f"ms/query,"
        f" numpy q @ X.T {numpy_ms:.2f} ms/query",
        flush=True,
    )
    print(
        f"  "
        f"{'index':<8}{'factory':<16}{'build s':>9}{'ms/query':>10}{'vs floor':>10}"
        f"{'memory MiB':>12}"
        f"{'top-1 = exact':>15}"
    )
    for kind in kinds:
        spec = factory_for(kind, n, dim)
        gc.collect()
        rss = psutil.Process().memory_info().rss
        start = time.perf_counter()
        db = MapDatabase.create(dim, DatabaseConfig(index=spec, nprobe=32, ef_search=128))
        db.add(data, entries)
        db.search(queries[:1], 1)  # trains IVF on the map's own descriptors
        build = time.perf_counter() - start
        memory = faiss.serialize_index(db.index).nbytes / 2**20
        ms = per_query_ms(lambda q, db=db: db.search(q, 1), queries)
        ids = db.search(queries, 1)[1][:, 0]
        exact_ids = ids if kind == "exact" else exact_ids
        agreement = np.mean(ids == exact_ids)
        grew = (psutil.Process().memory_info().rss - rss) / 2**20
        print(
            f"  {kind:<8}{spec:<16}{build:>9.1f}{ms:>10.3f}{ms / floor_ms:>9.2f}x{memory:>12,.0f}"
            f"{agreement:>14.1%}   (RSS +{grew:,.0f} MiB)",
            flush=True,
        )
        del db
    del data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also 1M x 4096-D (~20 GB of RAM)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 4096])
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=["exact", "IVF-PQ", "HNSW"],
        choices=["exact", "IVF-PQ", "HNSW"],
    )
    args = parser.parse_args()
    faiss.omp_set_num_threads(psutil.cpu_count(logical=True))
    bandwidth = copy_bandwidth()
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, copy bandwidth "
        f"{bandwidth / 1e9:.1f} GB/s (read + write)"
    )
    for n in args.sizes:
        for dim in args.dims:
            if n * dim * 4 > 8 * 2**30 and not args.full:
                print(
                    f"\n{n:>9,} x {dim}-D skipped ({n * dim * 4 / 2**30:.0f} GiB of vectors; run "
                    f"with --full)"
                )
                continue
            bench(n, dim, bandwidth, args.kinds)


if __name__ == "__main__":
    main()
