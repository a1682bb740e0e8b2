"""Inference backends behind the Describer, for real: ONNX export parity (ONNX Runtime), OpenVINO
fp32 parity, an NNCF int8 model that keeps the right neighbours on real-photo places, clear errors
for empty calibration and missing runtimes, precision auto by measurement, and the node running
with model.backend onnxruntime over real rclpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodeutil import PLACES, Client, query_view
from ros2_netvlad.config import ArchConfig, DescriberConfig
from ros2_netvlad.demo import world
from ros2_netvlad.errors import DeviceError, InputError
from ros2_netvlad.model.backends import (
    calibration_sample,
    onnxruntime_runner,
    openvino_precision_hint,
    torch_reference,
)
from ros2_netvlad.model.checkpoints import save
from ros2_netvlad.model.clustering import initialize_netvlad
from ros2_netvlad.model.describer import Describer
from ros2_netvlad.model.export import export_model
from ros2_netvlad.model.netvlad import build_model
from ros2_netvlad.model.precision import NATIVE_BF16_ENV
from ros2_netvlad.ros.conversions import cloud_to_candidates
from ros2_netvlad.tools import export_model as export_tool
from rosutil import ros_session, spin_until, start_node, stop

CPU = DescriberConfig(device="cpu", max_side=320, precision="fp32")  # the torch fp32 reference
OPENVINO = {"device": "cpu", "max_side": 320, "backend": "openvino"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(ArchConfig("efficientnet_lite0", 16), pretrained=True)
    images = [world.render_view(p, np.random.default_rng(p.index)) for p in world.places(8)]
    initialize_netvlad(Describer(net, CPU), images, progress=False)
    return net


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return export_model(model, tmp_path_factory.mktemp("export") / "model.onnx")


def test_onnx_export_matches_torch_at_any_batch_and_size(model, exported):
    assert exported.parity_max_diff <= 1e-4  # checked by the tool itself, on real photos
    run = onnxruntime_runner(exported.onnx, torch.device("cpu"))
    for size, count in (((320, 240), 3), ((200, 150), 1)):
        batch = calibration_sample(size)[:count]
        assert np.abs(run(batch) - torch_reference(model, batch)).max() <= 1e-4


def test_openvino_fp32_matches_torch(model, exported):
    reference = Describer(model, CPU)(list(calibration_sample()))
    config = DescriberConfig(
        device="cpu", max_side=320, backend="openvino", backend_model=str(exported.onnx)
    )
    openvino = Describer(model, config)
    assert openvino.backend_note.startswith("openvino fp32")
    assert np.abs(openvino(list(calibration_sample())) - reference).max() <= 1e-4


def test_int8_keeps_the_right_neighbours_on_real_photo_places(model, tmp_path):
    places = world.places(10)
    rng_map, rng_query = np.random.default_rng(1), np.random.default_rng(2)
    database = [world.render_view(p, rng_map) for p in places for _ in range(2)]
    queries = [world.render_view(p, rng_query, changed=True) for p in places]
    report = export_model(model, tmp_path / "m.onnx", iter(database))
    assert report.int8 is not None and report.int8_cosine >= 0.9 and report.calibration_images == 20
    fp32 = Describer(model, CPU)
    int8 = Describer(
        model,
        DescriberConfig(
            device="cpu", max_side=320, backend="openvino", backend_model=str(report.int8)
        ),
    )
    assert int8.backend_note.startswith("openvino int8")

    def top1(describer):
        return np.argmax(describer(queries) @ describer(database).T, axis=1) // 2  # place index

    truth = np.arange(len(places))
    fp32_top1, int8_top1 = top1(fp32), top1(int8)
    assert np.mean(int8_top1 == fp32_top1) >= 0.9
    assert np.mean(int8_top1 == truth) >= np.mean(fp32_top1 == truth) - 0.1


def test_calibration_refuses_an_empty_or_invalid_source(model, tmp_path, capsys):
    with pytest.raises(InputError, match="gave no images"):
        export_model(model, tmp_path / "m.onnx", iter([]))
    empty = tmp_path / "empty"
    empty.mkdir()
    save(model, tmp_path / "w.pt")
    for argv, expected in (
        (["--calibration", str(empty)], "no images"),
        (["--calibration", str(tmp_path / "missing")], "not found"),
    ):
        code = export_tool.main(
            [
                "--weights",
                str(tmp_path / "w.pt"),
                "--out",
                str(tmp_path / "x.onnx"),
                "--int8",
                *argv,
            ]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and expected in err[0], err


def test_backend_errors_name_what_is_missing(model):
    try:
        import tensorrt  # noqa: F401

        expected = "needs a CUDA GPU"  # installed: then it is the device that is missing
    except ImportError:
        expected = "tensorrt is not installed; TensorRT: on a Jetson it comes with JetPack"
    config = DescriberConfig(device="cpu", max_side=320, backend="tensorrt")
    if expected == "needs a CUDA GPU" and torch.cuda.is_available():
        pytest.skip("a CUDA GPU with TensorRT is here: the GPU script measures this backend")
    with pytest.raises(DeviceError, match=expected):
        Describer(model, config)
    with pytest.raises(InputError, match="model.backend_model: .* not found"):
        Describer(
            model, DescriberConfig(device="cpu", backend="onnxruntime", backend_model="/nope.onnx")
        )


def test_openvino_precision_is_asked_for_never_the_plugin_default(model, exported, monkeypatch):
    """OpenVINO's CPU plugin computes in bf16 by default where the CPU has it: fp32 is asked for
    explicitly (and read back from the compiled model); bf16 is its own choice, only where native.
    The capability is forced both ways, so this holds on every CPU."""
    onnx = str(exported.onnx)
    for native in ("0", "1"):
        monkeypatch.setenv(NATIVE_BF16_ENV, native)
        fp32 = Describer(model, DescriberConfig(**OPENVINO, backend_model=onnx, precision="fp32"))
        assert fp32.backend_note.startswith("openvino fp32 ("), fp32.backend_note
    assert openvino_precision_hint("fp32", native=True) == "f32"
    assert openvino_precision_hint("bf16", native=True) == "bf16"
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    with pytest.raises(DeviceError, match="needs a CPU with native bf16"):
        Describer(model, DescriberConfig(**OPENVINO, backend_model=onnx, precision="bf16"))
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")  # native, or at least asked for: labelled as run
    bf16 = Describer(model, DescriberConfig(**OPENVINO, backend_model=onnx, precision="bf16"))
    assert bf16.backend_note.startswith(("openvino bf16 (", "openvino fp32 (")), bf16.backend_note
    with pytest.raises(DeviceError, match="runs in fp32, not bf16"):
        onnxruntime = {**OPENVINO, "backend": "onnxruntime", "precision": "bf16"}
        Describer(model, DescriberConfig(**onnxruntime))


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    yield from ros_session(tmp_path_factory.mktemp("ros_log"), "netvlad_backend_client")


def test_node_runs_with_the_onnxruntime_backend(ros, small_map, tmp_path):
    process = start_node(
        {
            "node.map": small_map,
            "model.device": "cpu",
            "model.backend": "onnxruntime",
            "localizer.top_k": 3,
            "node.diagnostics_period": 0.5,
        },
        {"image": "/cam", "image/compressed": "/cam/compressed", "__ns": "/robot"},
        log=tmp_path / "node.log",
    )
    try:
        client = Client(ros)
        client.wait_ready(process)
        correct = 0
        for i, place in enumerate(PLACES):
            table = client.send(query_view(place, 300 + i), (i + 1) * 1_000_000_000)
            assert table.width >= 1 and len(table.data) == table.width * table.point_step
            best = cloud_to_candidates(table)[0]
            truth = world.place_position(place.index, len(PLACES))
            correct += np.hypot(best["x"] - truth[0], best["y"] - truth[1]) < 25
        assert correct >= 4, f"{correct}/5 places matched through onnxruntime"
        spin_until(client.executor, lambda: "backend" in client.latest_status(), 10, "diagnostics")
        assert client.latest_status()["backend"].startswith("onnxruntime fp32")
    finally:
        assert stop(process) == 0, (tmp_path / "node.log").read_text()[-2000:]


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA GPU on this machine: CUDA fp16 and TensorRT are measured by "
    "benchmarks/gpu.py where there is one",
)
def test_tensorrt_fp16_agrees_with_torch_on_a_gpu(model, exported):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed on this GPU machine")
    config = DescriberConfig(
        device="cuda", max_side=320, backend="tensorrt", backend_model=str(exported.onnx)
    )
    describer = Describer(model, config)  # refused below the fp16 agreement bound
    assert describer.backend_note.startswith("tensorrt fp16")
