"""The node's life at its edges, over real rclpy and real signals: start failures, shutdown that
never
loses a grown map, autosave, parameters files under a namespace, run-time parameters, silent
topics."""

from __future__ import annotations

import dataclasses
import signal
import time

import faiss
import pytest
import yaml
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage

from nodeutil import PLACES, Client, grow, query_view
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.ros import params
from ros2_netvlad.ros import shutdown as shutdown_module
from ros2_netvlad.ros.conversions import ns_to_stamp, rgb_to_compressed
from ros2_netvlad.ros.node import LocalizerNode
from ros2_netvlad.ros.shutdown import ShutdownSignals
from rosutil import PARAMS, ros_session, spin_until, start_node, stop

REMAPS = {"image": "/cam", "image/compressed": "/cam/compressed", "odom": "/odom", "__ns": "/robot"}


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    yield from ros_session(tmp_path_factory.mktemp("ros_log"), "lifecycle_test_client")


def loop_closure_node(small_map, new_map, log, **extra):
    return start_node(
        {
            "node.mode": "loop_closure",
            "node.map": new_map,
            "model.weights": small_map / "model.pt",
            "model.device": "cpu",
            "model.max_side": 320,
            **extra,
        },
        REMAPS,
        log=log,
    )


def assert_quiet(log_text: str) -> None:
    assert "Traceback" not in log_text, log_text[-3000:]
    assert "Failed to publish log message" not in log_text, "logged after the ROS context was gone"


@pytest.mark.parametrize(
    "signals, gap",
    [
        ((signal.SIGINT,), 0.0),
        ((signal.SIGINT, signal.SIGINT), 0.1),
        ((signal.SIGINT, signal.SIGINT), 0.0),
        ((signal.SIGINT, signal.SIGINT), 1.0),
        ((signal.SIGTERM,), 0.0),
        ((signal.SIGHUP,), 0.0),
    ],
    ids=[
        "sigint",
        "double-sigint-0.1s",
        "double-sigint-at-once",
        "double-sigint-1s",
        "sigterm",
        "sighup",
    ],
)
def test_signals_never_lose_a_grown_map(ros, small_map, tmp_path, signals, gap):
    new_map, log = tmp_path / "online_map", tmp_path / "node.log"
    process = loop_closure_node(small_map, new_map, log, **{"node.autosave_period": 0.0})
    try:
        grow(ros, process)
        for n, number in enumerate(signals):
            if n:
                time.sleep(gap)  # the scenario itself: a second Ctrl-C this long after the first
            process.send_signal(number)
        assert process.wait(60) == 0
    finally:
        stop(process)
    assert len(MapDatabase.load(new_map)) == 3
    text = log.read_text()
    assert_quiet(text)
    assert "map saved to" in text


def test_autosave_bounds_what_sigkill_loses(ros, small_map, tmp_path):
    new_map = tmp_path / "online_map"
    process = loop_closure_node(
        small_map, new_map, tmp_path / "node.log", **{"node.autosave_period": 1.0}
    )
    try:
        client = grow(ros, process)

        def saved_entries():
            return new_map.is_dir() and len(MapDatabase.load(new_map)) == 3

        spin_until(client.executor, saved_entries, 20, "the autosave of all three keyframes")
        process.kill()  # SIGKILL: no handler runs, only what autosave wrote survives
        process.wait(20)
    finally:
        stop(process)
    assert len(MapDatabase.load(new_map)) == 3


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_sigint_while_starting_is_quiet(small_map, tmp_path, delay):
    log = tmp_path / "node.log"
    process = start_node({"node.map": small_map, "model.device": "cpu"}, {}, log=log)
    time.sleep(
        delay
    )  # lands in the imports, the model load or the warm-up, depending on the machine
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    assert_quiet(log.read_text())


@pytest.mark.parametrize(
    "parameters, problem",
    [
        ({"model.device": "cuda:99"}, "model.device is 'cuda:99'"),
        (
            {"model.device": "cpu", "model.precision": "fp16"},
            "model.precision fp16 needs a CUDA device",
        ),
        ({"localizer.top_k": 0}, "localizer.top_k"),
        ({"node.image_reliability": "sometimes"}, "node.image_reliability"),
        ({"node.mode": "localize", "node.map": "/nonexistent/map"}, "map directory not found"),
        ({"model.max_side": 640}, "max_side 640 differs from the map's max_side 320"),
    ],
)
def test_start_failures_are_one_line_and_exit_2(small_map, tmp_path, parameters, problem):
    log = tmp_path / "refused.log"
    process = start_node({"node.map": small_map, **parameters}, {}, log=log)
    assert process.wait(90) == 2
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    refusals = [line for line in lines if line.startswith("netvlad_localizer: refusing to start:")]
    assert len(refusals) == 1 and problem in refusals[0], lines
    assert_quiet(log.read_text())


def test_params_file_applies_under_a_namespace_and_unknown_keys_warn(ros, small_map, tmp_path):
    shipped = yaml.safe_load(PARAMS.read_text())
    assert list(shipped) == ["/**"], "the shipped params file must apply under any namespace"
    shipped["/**"]["ros__parameters"]["localizer"]["top_k"] = 2
    shipped["/**"]["ros__parameters"]["localizer"]["topk"] = (
        3  # a typo that used to vanish silently
    )
    shipped["/**"]["ros__parameters"]["node"]["map"] = str(small_map)
    shipped["/**"]["ros__parameters"]["model"]["device"] = "cpu"
    edited = tmp_path / "localize.yaml"
    edited.write_text(yaml.safe_dump(shipped))
    log = tmp_path / "node.log"
    process = start_node(
        {},
        {"__ns": "/robot1", "image": "/cam", "image/compressed": "/cam/compressed"},
        extra_params_file=edited,
        log=log,
    )
    try:
        client = Client(ros, namespace="/robot1/netvlad_localizer")
        client.wait_ready(process)
        service = client.node.create_client(
            GetParameters, "/robot1/netvlad_localizer/get_parameters"
        )
        assert service.wait_for_service(timeout_sec=10)
        future = service.call_async(GetParameters.Request(names=["localizer.top_k", "node.map"]))
        spin_until(client.executor, future.done, 10, "get_parameters")
        top_k, map_path = future.result().values
        assert top_k.integer_value == 2 and map_path.string_value == str(small_map)
        spin_until(
            client.executor,
            lambda: "ignoring unknown parameter" in log.read_text(),
            10,
            "the warning",
        )
        assert "localizer.topk (did you mean localizer.top_k?)" in log.read_text()
    finally:
        assert stop(process) == 0


def test_silence_names_the_topics_and_the_type_mixup(ros, small_map, tmp_path):
    # The likely mistake: image_topic given as the compressed topic, so `image` (Image) listens on a
    # CompressedImage topic and `image/compressed` on .../compressed/compressed.
    log = tmp_path / "node.log"
    process = start_node(
        {
            "node.map": small_map,
            "model.device": "cpu",
            "model.max_side": 320,
            "node.image_timeout": 1.0,
        },
        {
            "image": "/camera/image_raw/compressed",
            "image/compressed": "/camera/image_raw/compressed/compressed",
        },
        log=log,
    )
    try:
        client = Client(ros, namespace="/netvlad_localizer")
        publisher = client.node.create_publisher(
            CompressedImage, "/camera/image_raw/compressed", 10
        )
        spin_until(
            client.executor,
            lambda: client.node.count_subscribers("/camera/image_raw/compressed") > 0,
            90,
            "the node to subscribe",
        )
        frame = rgb_to_compressed(query_view(PLACES[0], 1), ns_to_stamp(1))

        def warned():
            publisher.publish(frame)
            return "carries sensor_msgs/msg/CompressedImage" in log.read_text()

        spin_until(client.executor, warned, 30, "the no-image warning")
        text = log.read_text()
        assert "no image received for" in text
        assert (
            "/camera/image_raw/compressed [sensor_msgs/msg/Image]: but "
            "/camera/image_raw/compressed carries "
            "sensor_msgs/msg/CompressedImage (give the raw topic /camera/image_raw" in text
        )
        assert (
            "/camera/image_raw/compressed/compressed [sensor_msgs/msg/CompressedImage]: no "
            "publisher" in text
        )
    finally:
        assert stop(process) == 0


# --- every writable parameter takes effect (the node in this process, set over its real service)
# ------
def _new_value(name: str):
    """A valid value other than the default, from the field's own metadata."""
    section, field_name = name.split(".", 1)
    field = next(f for f in dataclasses.fields(params.SECTIONS[section]) if f.name == field_name)
    default, meta = field.default, field.metadata
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1 if default + 1 <= meta.get("max", default + 1) else default - 1
    if isinstance(default, float):
        upper = meta.get("max", default + 1.0)
        return default + 0.5 if default + 0.5 <= upper else default - 0.5
    raise AssertionError(f"{name}: no rule for writable {type(default).__name__} parameters")


def test_every_writable_parameter_takes_effect(ros, small_map, tmp_path):
    client_node, executor = ros
    node = LocalizerNode(
        parameter_overrides=[
            Parameter("node.mode", value="loop_closure"),
            Parameter("node.map", value=str(tmp_path / "ivf_map")),
            Parameter("model.weights", value=str(small_map / "model.pt")),
            Parameter("model.device", value="cpu"),
            Parameter("model.max_side", value=64),
            Parameter("database.index", value="IVF4,Flat"),
        ]
    )
    executor.add_node(node)
    try:
        live = {
            "node": lambda: node.node_config,
            "localizer": lambda: node.localizer.config,
            "keyframes": lambda: node.localizer.keyframes,
            "database": lambda: node.database.config,
        }
        names = [name for section in params.SECTIONS for name in params.writable(section)]
        assert {name.split(".")[0] for name in names} <= set(live), (
            "a writable section nobody applies"
        )
        service = client_node.create_client(SetParameters, "/netvlad_localizer/set_parameters")
        assert service.wait_for_service(timeout_sec=10)
        for name in names:
            value = _new_value(name)
            request = SetParameters.Request(
                parameters=[
                    ParameterMsg(
                        name=name, value=Parameter(name, value=value).get_parameter_value()
                    )
                ]
            )
            future = service.call_async(request)
            spin_until(executor, future.done, 10, f"set {name}")
            assert future.result().results[0].successful, (name, future.result().results[0].reason)
            section, field_name = name.split(".", 1)
            assert getattr(live[section](), field_name) == value, (
                f"{name} was accepted but not applied"
            )
        assert (
            faiss.extract_index_ivf(node.database.index).nprobe == node.database.config.nprobe != 16
        )
    finally:
        executor.remove_node(node)
        node.close()
        node.destroy_node()


def test_a_signal_while_starting_is_remembered_even_if_its_interrupt_is_swallowed():
    signals = ShutdownSignals("test")  # the handler itself, called as Python would call it
    with pytest.raises(KeyboardInterrupt):
        signals._on_signal(signal.SIGINT, None)
    signals.running()
    signals.wait(alive=lambda: True)  # returns at once: the node shuts down as soon as it is up
    signals._on_signal(signal.SIGINT, None)  # once running: acknowledged, never raised
    assert signals.requested


def test_a_signal_inside_the_signal_handler_finishes(monkeypatch):
    """Two Ctrl-C at once: the second handler runs inside the first. The handlers take no lock
    (an Event.set there once deadlocked the node), so both finish and the shutdown proceeds."""
    signals = ShutdownSignals("test")
    signals.running()
    written = []

    def write(fd, data):  # the second SIGINT lands while the first handler is still running
        written.append(data)
        if len(written) == 1:
            signals._on_signal(signal.SIGINT, None)
        return len(data)

    monkeypatch.setattr(shutdown_module.os, "write", write)
    signals._on_signal(signal.SIGINT, None)
    assert signals.requested and len(written) == 2
