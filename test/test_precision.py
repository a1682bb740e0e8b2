"""Which precision the Describer computes in: explicit choices, the map's recorded precision, and
``auto`` on a CPU with native bf16 — decided from repeated timings with a margin. The CPU's bf16
capability is forced both ways here (ROS2_NETVLAD_NATIVE_BF16), so every assertion holds on every
CPU; timings are replaced by fixed numbers where the decision rule is what is tested."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_vgg_model
from ros2_netvlad.config import DatabaseConfig, DescriberConfig
from ros2_netvlad.errors import DeviceError
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.model import precision
from ros2_netvlad.model.backends import backend_precision, openvino_precision_hint
from ros2_netvlad.model.checkpoints import checkpoint_bytes, fingerprint
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.precision import NATIVE_BF16_ENV, choose_cpu, from_map, timed_speedup

CPU = torch.device("cpu")
AUTO = DescriberConfig(device="cpu", max_side=64)


@pytest.fixture(scope="module")
def model():
    return random_vgg_model(num_clusters=4)


def test_capability_detection_can_be_forced_both_ways(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    assert precision.native_bf16() is True
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    assert precision.native_bf16() is False


def test_the_rule_needs_agreement_and_a_clear_margin():
    never = lambda: pytest.fail("timed although the agreement already ruled bf16 out")  # noqa: E731
    assert choose_cpu(0.990, never).dtype == torch.float32
    assert choose_cpu(0.9995, lambda: 1.2).dtype == torch.float32  # faster, but inside the margin
    chosen = choose_cpu(0.9995, lambda: 2.0)
    assert chosen.dtype == torch.bfloat16 and "bf16 2.00x fp32 (median of 5)" in chosen.reason


def test_one_noisy_timing_does_not_flip_the_choice(monkeypatch):
    """The instability seen on a real CPU (one timing after one warm-up: 0.88x .. 27x): the median
    of interleaved repeats after two warm-ups each ignores a single outlier either way."""
    fp32 = iter([0.0] * 4 + [1.0, 1.0, 30.0, 1.0, 1.0])  # warm-ups, then one slow fp32 outlier
    bf16 = iter([0.0] * 4 + [1.0, 1.0, 1.0, 1.0, 0.01])  # and one fast bf16 outlier
    clock = {"now": 0.0}
    durations = {torch.float32: fp32, torch.bfloat16: bf16}

    def run(dtype):
        clock["now"] += next(durations[dtype])

    monkeypatch.setattr(precision.time, "perf_counter", lambda: clock["now"])
    assert timed_speedup(run) == pytest.approx(1.0)


def test_auto_on_a_cpu_without_native_bf16_is_fp32_without_measuring(model, monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    monkeypatch.setattr(precision, "timed_speedup", lambda run: pytest.fail("measured"))
    describer = Describer(model, AUTO)
    assert describer.dtype == torch.float32 and describer.precision.name == "fp32"
    assert describer.precision_note == "auto: no native bf16 on this CPU"


@pytest.mark.parametrize("speedup, chosen", [(2.5, torch.bfloat16), (1.05, torch.float32)])
def test_auto_on_a_cpu_with_native_bf16_measures(model, monkeypatch, speedup, chosen):
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    monkeypatch.setattr(precision, "BF16_AGREEMENT", 0.9)  # a random VGG agrees less than 0.999
    monkeypatch.setattr(precision, "timed_speedup", lambda run: speedup)
    describer = Describer(model, AUTO)
    assert describer.dtype == chosen, describer.precision_note
    assert describer.precision_note.startswith(f"{precision.NAMES[chosen]} by measurement")
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    reference = Describer(model, DescriberConfig(device="cpu", max_side=64, precision="fp32"))
    assert float(describer(image) @ reference(image)) > 0.95  # same descriptors, within bf16


@pytest.mark.parametrize("native", ["0", "1"])
def test_auto_follows_the_map_it_reads(monkeypatch, native):
    monkeypatch.setenv(NATIVE_BF16_ENV, native)
    assert from_map("fp32", CPU).dtype == torch.float32
    assert from_map("fp16", CPU).dtype == torch.float32  # fp16 needs CUDA: the nearest here
    bf16 = from_map("bf16", CPU)
    assert bf16.dtype == (torch.bfloat16 if native == "1" else torch.float32), bf16.reason
    assert from_map("fp16", torch.device("cuda")).dtype == torch.float16


def test_a_map_records_its_precision_and_readers_use_it(model, tmp_path, monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    database = MapDatabase.create(
        model.output_dim, DatabaseConfig(), fingerprint(model), checkpoint_bytes(model)
    )
    database.record(precision="bf16")
    loaded = MapDatabase.load(database.save(tmp_path / "map"), fingerprint(model))
    assert loaded.manifest.precision == "bf16"
    monkeypatch.setattr(precision, "timed_speedup", lambda run: pytest.fail("measured"))
    reader = Describer(
        model, AUTO, loaded.manifest.precision
    )  # auto: the map's, not a new measurement
    assert reader.dtype == torch.bfloat16 and reader.precision_note == "the map's"
    fp32 = DescriberConfig(device="cpu", max_side=64, precision="fp32")
    explicit = Describer(model, fp32, "bf16")
    assert explicit.dtype == torch.float32  # told otherwise: as configured, with a warning


def test_auto_with_a_backend_takes_the_nearest_precision_it_offers_and_names_refusals():
    assert backend_precision("onnxruntime", "bf16", explicit=False) == "fp32"  # a bf16 map
    assert backend_precision("openvino", "bf16", explicit=False) == "bf16"
    assert backend_precision("tensorrt", "fp32", explicit=False) == "fp16"
    with pytest.raises(DeviceError, match="onnxruntime runs in fp32, not bf16"):
        backend_precision("onnxruntime", "bf16", explicit=True)
    with pytest.raises(DeviceError, match="needs a CPU with native bf16"):
        openvino_precision_hint("bf16", native=False)
