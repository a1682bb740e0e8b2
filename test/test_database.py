"""MapDatabase: search against brute force, index types, persistence, and every load error."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pytest

from ros2_netvlad.config import DatabaseConfig
from ros2_netvlad.config_rules import ConfigError
from ros2_netvlad.maps.database import ENTRIES, INDEX, MANIFEST, Entry, MapDatabase, MapError


def unit_vectors(n, dim, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def entries(n, offset=0):
    return [
        Entry(
            1_000 * (i + offset),
            "map",
            (float(i + offset), 2.0 * i, 0.0),
            (0, 0, 0, 1),
            tuple(np.eye(6).reshape(-1) * i) if i % 2 else None,
            (47.0, 8.0 + i * 1e-4, 400.0) if i % 3 == 0 else None,
            f"bag:/cam#{i}",
        )
        for i in range(n)
    ]


@pytest.fixture
def database():
    db = MapDatabase.create(32, fingerprint="abc")
    db.add(unit_vectors(200, 32), entries(200))
    return db


def test_exact_search_matches_brute_force(database):
    queries = unit_vectors(10, 32, seed=1)
    scores, ids = database.search(queries, 5)
    brute = queries @ unit_vectors(200, 32).T
    np.testing.assert_array_equal(ids, np.argsort(-brute, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :5], atol=1e-5)


def test_entries_round_trip_every_field(database, tmp_path):
    database.save(tmp_path / "map")
    loaded = MapDatabase.load(tmp_path / "map", fingerprint="abc")
    assert loaded.entries([0, 1, 3, 199]) == database.entries([0, 1, 3, 199])
    assert loaded.entries([3])[0].covariance[7] == 3.0 and loaded.entries([3])[0].geo == (
        47.0,
        8.0003,
        400.0,
    )
    np.testing.assert_allclose(loaded.positions()[5], (5, 10, 0))
    np.testing.assert_array_equal(loaded.descriptors(), unit_vectors(200, 32))
    manifest = json.loads((tmp_path / "map" / MANIFEST).read_text())
    assert (
        manifest["count"] == 200
        and manifest["descriptor_dim"] == 32
        and manifest["metric"] == "inner_product"
    )


@pytest.mark.parametrize(
    "index, fp16, min_agreement",
    [("IVF16,PQ8", False, 0.6), ("HNSW16", False, 0.95), ("Flat", True, 0.99)],
)
def test_approximate_indexes_agree_with_exact(tmp_path, index, fp16, min_agreement):
    data = unit_vectors(2000, 32)
    exact, approx = (
        MapDatabase.create(32),
        MapDatabase.create(32, DatabaseConfig(index=index, fp16=fp16)),
    )
    exact.add(data, entries(2000))
    approx.add(data, entries(2000))
    queries = data[:200] + 0.05 * unit_vectors(200, 32, seed=3)
    agreement = np.mean(exact.search(queries, 1)[1][:, 0] == approx.search(queries, 1)[1][:, 0])
    assert agreement >= min_agreement
    approx.save(tmp_path / "m")
    assert MapDatabase.load(tmp_path / "m").search(queries[:5], 1)[1].shape == (5, 1)


def test_ivf_needs_enough_training_data():
    db = MapDatabase.create(16, DatabaseConfig(index="IVF64,Flat"))
    db.add(unit_vectors(10, 16), entries(10))
    with pytest.raises(MapError, match="needs at least 64 descriptors to train"):
        db.search(unit_vectors(1, 16), 1)


def test_bad_configuration_and_input_are_named():
    with pytest.raises(MapError, match="not a valid faiss factory string"):
        MapDatabase.create(16, DatabaseConfig(index="Nonsense42"))
    with pytest.raises(ConfigError, match="database.fp16"):
        DatabaseConfig(index="IVF16,PQ4", fp16=True)
    db = MapDatabase.create(16)
    with pytest.raises(MapError, match="must be N x 16"):
        db.add(np.zeros((2, 8), np.float32), entries(2))
    with pytest.raises(MapError, match="2 descriptors for 3 entries"):
        db.add(unit_vectors(2, 16), entries(3))
    with pytest.raises(MapError, match="NaN"):
        db.add(np.full((1, 16), np.nan, np.float32), entries(1))
    assert len(db) == 0, "a failed add must not leave rows behind"
    with pytest.raises(MapError, match=r"no map entries with ids \[7\]"):
        db.entries([7])


def test_load_errors_name_the_problem(database, tmp_path):
    path = database.save(tmp_path / "map")
    with pytest.raises(MapError, match="built with model abc, but the current model is xyz"):
        MapDatabase.load(path, fingerprint="xyz")
    assert len(MapDatabase.load(path, fingerprint="xyz", force=True)) == 200
    with pytest.raises(MapError, match="map directory not found"):
        MapDatabase.load(tmp_path / "nowhere")

    extra = MapDatabase.load(path)
    extra.add(unit_vectors(1, 32), entries(1, offset=500))
    faiss.write_index(extra.index, str(path / INDEX))
    with pytest.raises(
        MapError, match="entry counts disagree: index.faiss has 201, entries.sqlite has 200"
    ):
        MapDatabase.load(path)

    (path / INDEX).write_bytes(b"garbage")
    with pytest.raises(MapError, match="index.faiss: corrupt faiss index"):
        MapDatabase.load(path)
    (path / INDEX).unlink()
    with pytest.raises(MapError, match="missing .*index.faiss"):
        MapDatabase.load(path)

    path = database.save(tmp_path / "map2")
    (path / ENTRIES).write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(MapError, match="entries.sqlite: corrupt entries database"):
        MapDatabase.load(path)
    (path / MANIFEST).write_text("{broken")
    with pytest.raises(MapError, match="manifest.json: corrupt JSON"):
        MapDatabase.load(path)
    (path / MANIFEST).write_text(json.dumps({"format_version": 7}))
    with pytest.raises(MapError, match="format_version 7 is not supported"):
        MapDatabase.load(path)


def test_save_killed_midway_leaves_the_previous_map(database, tmp_path):
    path = database.save(tmp_path / "map")
    script = textwrap.dedent(f"""
        import sys, time, numpy as np
        from ros2_netvlad.maps import database as d
        db = d.MapDatabase.load({str(path)!r})
        db.add(np.eye(32, dtype=np.float32)[:5], [d.Entry(1, "map", (0, 0, 0))] * 5)
        real = d.fsync_dir
        def stall(p):
            real(p)
            print("written", flush=True)
            time.sleep(60)
        d.fsync_dir = stall
        db.save({str(path)!r})
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "written"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert len(MapDatabase.load(path)) == 200


def test_interrupted_fallback_swap_is_recovered(database, tmp_path):
    path = database.save(tmp_path / "map")
    os.rename(path, tmp_path / ".map.previous")  # died between the two renames of the fallback swap
    assert len(MapDatabase.load(path)) == 200


def test_resave_replaces_in_place(database, tmp_path):
    path = database.save(tmp_path / "map")
    grown = MapDatabase.load(path)
    grown.add(unit_vectors(3, 32, seed=9), entries(3, offset=200))
    grown.save(path)
    assert len(MapDatabase.load(path)) == 203
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_maps_and_checkpoints_honour_the_umask(database, tmp_path, umask):
    """Another user, or a container under another uid, must be able to read a map (not 0700)."""
    from conftest import random_vgg_model
    from ros2_netvlad.model.checkpoints import save

    previous = os.umask(umask)
    try:
        path = database.save(tmp_path / "map")
        checkpoint = save(random_vgg_model(num_clusters=2), tmp_path / "model.pt")
    finally:
        os.umask(previous)
    assert (path.stat().st_mode & 0o777) == 0o777 & ~umask
    for item in [*path.iterdir(), checkpoint]:
        assert (item.stat().st_mode & 0o777) == 0o666 & ~umask, (
            f"{item.name}: {oct(item.stat().st_mode)}"
        )


def test_search_settings_change_at_run_time():
    data = unit_vectors(600, 32)
    ivf = MapDatabase.create(32, DatabaseConfig(index="IVF8,Flat", nprobe=1))
    ivf.add(data, entries(600))
    ivf.search(data[:1], 1)  # trains the index
    ivf.reconfigure(DatabaseConfig(index="IVF8,Flat", nprobe=8))
    assert faiss.extract_index_ivf(ivf.index).nprobe == 8
    exact_ids = np.argsort(-(data[:50] @ data.T), axis=1)[:, :1]
    np.testing.assert_array_equal(ivf.search(data[:50], 1)[1], exact_ids)  # all lists probed: exact
    hnsw = MapDatabase.create(32, DatabaseConfig(index="HNSW16", ef_search=16))
    hnsw.reconfigure(DatabaseConfig(index="HNSW16", ef_search=200))
    assert faiss.downcast_index(hnsw.index).hnsw.efSearch == 200
