"""The netvlad_localizer node over real rclpy (Fast DDS), started as a subprocess like the launch
file."""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from nodeutil import NS, PLACES, Client, drive, publish_odometry, query_view
from ros2_netvlad.demo import world
from ros2_netvlad.maps.database import MapDatabase
from ros2_netvlad.ros.conversions import cloud_to_candidates, ns_to_stamp, rgb_to_image
from ros2_netvlad.ros.mailbox import LatestFrame
from rosutil import ros_session, spin_until, start_node, stop


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    yield from ros_session(tmp_path_factory.mktemp("ros_log"), "netvlad_test_client")


def test_localize_publishes_table_prior_and_diagnostics(ros, small_map, tmp_path):
    process = start_node(
        {
            "node.map": small_map,
            "model.device": "cpu",
            "localizer.top_k": 3,
            "localizer.nms_radius": 5.0,
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
            stamp = (i + 1) * 1_000_000_000 + 123
            cloud = client.send(query_view(place, 100 + i), stamp, compressed=bool(i % 2))
            assert [f.name for f in cloud.fields] == [
                "x",
                "y",
                "z",
                "qx",
                "qy",
                "qz",
                "qw",
                "score",
                "map_id",
                "map_stamp_sec",
                "map_stamp_nanosec",
                "verified",
                "inliers",
                "rerank_score",
                *("rel_x", "rel_y", "rel_z", "rel_qx", "rel_qy", "rel_qz", "rel_qw"),
                *("rel_cov", "geometry", "p_correct", "acceptance"),
            ]
            assert cloud.header.frame_id == "map" and cloud.height == 1 and 1 <= cloud.width <= 3
            table = cloud_to_candidates(cloud)
            assert np.all(np.diff(table["rerank_score"]) <= 0), "candidates must be best first"
            truth = world.place_position(place.index, len(PLACES))
            correct += np.hypot(table["x"][0] - truth[0], table["y"][0] - truth[1]) < 25
        assert correct >= 4, f"{correct}/5 revisits matched the right place"
        spin_until(client.executor, lambda: len(client.priors) >= 3, 10, "pose priors")
        prior = next(iter(client.priors.values()))
        covariance = np.array(prior.pose.covariance).reshape(6, 6)
        assert (
            prior.header.frame_id == "map" and covariance[0, 0] >= 1.0 and covariance[5, 5] >= 0.05
        )
        spin_until(
            client.executor,
            lambda: client.latest_status().get("processed") == "5",
            10,
            "diagnostics",
        )
        status = client.latest_status()
        assert (
            status["map_size"] == str(len(MapDatabase.load(small_map)))
            and status["device"] == "cpu"
        )
        assert float(status["latency_p95_ms"]) > 0 and status["rejected"] == "0"
        assert "efficientnet_lite0 K=8" in status["model"]
        assert status["resize"] == "max_side 320"  # the map's rule: model.max_side was not given
        _set_and_check_parameters(client)
    finally:
        assert stop(process) == 0


def _set_and_check_parameters(client):
    service = client.node.create_client(SetParameters, f"{NS}/set_parameters")
    assert service.wait_for_service(timeout_sec=10)

    def set_param(name, value, kind):
        field = {
            ParameterType.PARAMETER_INTEGER: "integer_value",
            ParameterType.PARAMETER_STRING: "string_value",
        }[kind]
        value_msg = ParameterValue(type=kind, **{field: value})
        future = service.call_async(
            SetParameters.Request(parameters=[Parameter(name=name, value=value_msg)])
        )
        spin_until(client.executor, future.done, 10, "set_parameters")
        return future.result().results[0]

    assert set_param("localizer.top_k", 1, ParameterType.PARAMETER_INTEGER).successful
    assert (
        client.send(query_view(PLACES[0], 7), 99_000_000_000).width == 1
    )  # applied without restart
    assert not set_param("localizer.top_k", 0, ParameterType.PARAMETER_INTEGER).successful
    assert not set_param(
        "model.device", "cuda", ParameterType.PARAMETER_STRING
    ).successful  # read-only


def test_bad_input_never_kills_the_node(ros, small_map, tmp_path):
    log = tmp_path / "node.log"
    process = start_node(
        {
            "node.map": small_map,
            "model.device": "cpu",
            "model.max_side": 320,
            "node.diagnostics_period": 0.2,
        },
        {"image": "/cam", "image/compressed": "/cam/compressed", "__ns": "/robot"},
        log=log,
    )
    try:
        client = Client(ros)
        client.wait_ready(process)
        good = rgb_to_image(np.zeros((8, 8, 3), np.uint8), ns_to_stamp(1))
        bad = [
            Image(
                header=good.header, height=8, width=8, encoding="yuv422", step=16, data=bytes(128)
            ),
            Image(header=good.header, height=8, width=8, encoding="rgb8", step=10, data=bytes(80)),
            Image(header=good.header, height=8, width=8, encoding="rgb8", step=24, data=bytes(100)),
            Image(header=good.header, height=0, width=8, encoding="rgb8", step=24, data=b""),
            CompressedImage(
                header=good.header, format="jpeg", data=b"\xff\xd8\xff\xe0 not really a jpeg"
            ),
        ]
        for n, msg in enumerate(bad, start=1):
            deadline = time.monotonic() + 20
            while client.latest_status().get("rejected") != str(
                n
            ):  # resend until this one is counted
                assert time.monotonic() < deadline, f"bad input {n} was not counted as rejected"
                client.publish_bad(msg)
                spin_until(
                    client.executor,
                    lambda: (
                        client.latest_status().get("rejected") == str(n)
                        or time.monotonic() > deadline
                    ),
                    1.0,
                    "rejection",
                )
        assert process.poll() is None
        assert client.send(query_view(PLACES[1], 3), 50_000_000_000).width >= 1  # still working
    finally:
        assert stop(process) == 0
    text = log.read_text()
    for problem in (
        "unsupported encoding 'yuv422'",
        "step 10 is smaller",
        "data holds 100 bytes",
        "zero-size image",
        "cannot decode compressed image",
    ):
        assert problem in text, f"no warning naming: {problem}"


def test_invalid_parameters_refuse_to_start(ros, small_map, tmp_path):
    for params, name in (
        ({"localizer.top_k": 0}, "localizer.top_k"),
        ({"model.device": "gpu"}, "model.device"),
        ({"node.image_reliability": "sometimes"}, "node.image_reliability"),
        ({"node.map": tmp_path / "missing"}, "map directory not found"),
    ):
        log = tmp_path / "refused.log"
        process = start_node({"node.map": small_map, **params}, {}, log=log)
        assert process.wait(60) == 2
        assert name in log.read_text()


def test_loop_closure_mode_revisit_save_and_shutdown(ros, small_map, tmp_path):
    new_map = tmp_path / "online_map"
    process = start_node(
        {
            "node.mode": "loop_closure",
            "node.map": new_map,
            "model.weights": small_map / "model.pt",
            "model.device": "cpu",
            "model.max_side": 320,
            "localizer.exclusion_window": 5.0,
            "localizer.nms_radius": 0.0,
        },
        {"image": "/cam", "image/compressed": "/cam/compressed", "odom": "/odom", "__ns": "/robot"},
        log=tmp_path / "node.log",
    )
    try:
        client = Client(ros)
        client.wait_ready(process)
        spin_until(
            client.executor,
            lambda: client.odom.get_subscription_count() > 0,
            30,
            "odom subscription",
        )
        route = [(p, (i + 1) * 1_000_000_000) for i, p in enumerate(PLACES)] + [
            (PLACES[0], 12_000_000_000)
        ]
        publish_odometry(client, route)
        for n, ((place, stamp), table) in enumerate(zip(route, drive(client, route))):
            if n < len(PLACES):
                assert all(abs(int(s) * 1e9 - stamp) >= 5e9 for s in table["map_stamp_sec"]), (
                    "inside exclusion window"
                )
                assert len(table) == 0
            else:
                assert len(table) and table["map_id"][0] == 0, (
                    f"revisit of place 0 found {table['map_id']}"
                )
        save = client.node.create_client(Trigger, f"{NS}/save_map")
        assert save.wait_for_service(timeout_sec=10)
        future = save.call_async(Trigger.Request())
        spin_until(client.executor, future.done, 30, "save_map")
        assert future.result().success, future.result().message
        assert len(MapDatabase.load(new_map)) == 6
    finally:
        assert stop(process) == 0
    assert len(MapDatabase.load(new_map)) == 6  # saved again on clean shutdown, still loadable


def test_flood_keeps_newest_frames_without_growing(ros, small_map, tmp_path):
    process = start_node(
        {
            "node.map": small_map,
            "model.device": "cpu",
            "model.max_side": 320,
            "node.diagnostics_period": 0.5,
        },
        {"image": "/cam", "image/compressed": "/cam/compressed", "__ns": "/robot"},
        log=tmp_path / "node.log",
    )
    try:
        client = Client(ros)
        client.wait_ready(process)
        views = [query_view(p, 300 + i) for i, p in enumerate(PLACES)]
        messages = [rgb_to_image(v, ns_to_stamp(0)) for v in views]
        node_process = psutil.Process(process.pid)
        start = time.monotonic()
        rss_after_warmup, last_stamp, k = None, 0, 0
        while (
            k < 2000
        ):  # 20 s at 100 Hz when the machine keeps up; a count, not a time, decides the end
            last_stamp = int((time.monotonic() - start) * 1e9) + 1
            msg = messages[k % len(messages)]
            msg.header.stamp = ns_to_stamp(last_stamp)
            client.raw.publish(msg)
            k += 1
            if rss_after_warmup is None and time.monotonic() - start > 3.0:
                rss_after_warmup = node_process.memory_info().rss
            client.executor.spin_once(timeout_sec=0.0)
            time.sleep(max(0.0, start + k * 0.01 - time.monotonic()))  # 100 Hz
        growth = (node_process.memory_info().rss - rss_after_warmup) / 2**20
        spin_until(
            client.executor,
            lambda: max(client.clouds, default=0) >= last_stamp - 300_000_000,
            10,
            "the newest frames to be processed",
        )
        spin_until(
            client.executor,
            lambda: int(client.latest_status().get("processed", 0)) >= len(client.clouds),
            10,
            "diagnostics covering the processed frames",
        )
        status = client.latest_status()
        processed, dropped = int(status["processed"]), int(status["dropped"])
        # How many frames a CPU keeps up with varies by machine; what must hold everywhere: every
        # frame
        # is either processed or counted as dropped (none twice), the newest ones are processed
        # (above),
        # and memory does not grow with the backlog.
        assert processed > 0 and processed + dropped <= k
        assert growth < 50, f"RSS grew {growth:.1f} MB under flood"
    finally:
        assert stop(process) == 0


def test_latest_frame_mailbox_keeps_the_newest_and_counts_the_rest():
    mailbox = LatestFrame()
    for frame in range(5):
        mailbox.put((frame,))
    assert mailbox.take(timeout=0.0) == (4,) and mailbox.dropped == 4
    assert mailbox.take(timeout=0.0) is None
