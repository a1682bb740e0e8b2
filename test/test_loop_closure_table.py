"""The ~/loop_closures table contract (DESIGN §5): the original fields keep their names, types and
offsets; appended fields come after them; a consumer reading by name with the message's own
offsets and point_step (what sensor_msgs_py.point_cloud2.read_points does) gets every value."""

import struct

import numpy as np
from sensor_msgs.msg import PointField

from ros2_netvlad.localization.localizer import Candidate
from ros2_netvlad.localization.sequence import ACCEPTED_FRAME
from ros2_netvlad.maps.database import Entry
from ros2_netvlad.ros.conversions import candidates_to_cloud, cloud_to_candidates, ns_to_stamp

# as published since the first release: never to change
ORIGINAL = [
    ("x", 0, PointField.FLOAT64),
    ("y", 8, PointField.FLOAT64),
    ("z", 16, PointField.FLOAT64),
    ("qx", 24, PointField.FLOAT64),
    ("qy", 32, PointField.FLOAT64),
    ("qz", 40, PointField.FLOAT64),
    ("qw", 48, PointField.FLOAT64),
    ("score", 56, PointField.FLOAT32),
    ("map_id", 60, PointField.UINT32),
    ("map_stamp_sec", 64, PointField.INT32),
    ("map_stamp_nanosec", 68, PointField.UINT32),
    ("verified", 72, PointField.UINT8),
]
STRUCT = {
    PointField.FLOAT64: "<d",
    PointField.FLOAT32: "<f",
    PointField.UINT32: "<I",
    PointField.INT32: "<i",
    PointField.UINT8: "<B",
}


def candidates():
    return [
        Candidate(
            7,
            0.61,
            Entry(1_700_000_003_250_000_000, "map", (1.5, -2.0, 0.25), (0, 0, 0.6, 0.8)),
            True,
            143,
            143.61,
            acceptance=ACCEPTED_FRAME,
        ),
        Candidate(
            2, 0.72, Entry(1_700_000_001_000_000_001, "map", (40.0, 3.0, 0.0)), False, 9, 0.72
        ),
    ]


def read_by_name(msg):
    """An independent reader: struct.unpack at each field's offset within each point_step row."""
    data = bytes(msg.data)
    rows = []
    for i in range(msg.width * msg.height):
        base = i * msg.point_step
        row = {}
        for f in msg.fields:
            kind = STRUCT[f.datatype]
            values = struct.unpack_from(f"<{f.count}{kind[1]}", data, base + f.offset)
            row[f.name] = values[0] if f.count == 1 else values
        rows.append(row)
    return rows


def test_original_fields_never_move_and_new_ones_are_appended():
    msg = candidates_to_cloud(candidates(), ns_to_stamp(5), "map")
    fields = [(f.name, f.offset, f.datatype) for f in msg.fields]
    assert fields[: len(ORIGINAL)] == ORIGINAL
    appended = {name: (offset, kind) for name, offset, kind in fields[len(ORIGINAL) :]}
    assert appended["inliers"][1] == PointField.UINT32
    assert appended["rerank_score"][1] == PointField.FLOAT32
    # issue 19's geometry, appended after them in this order with these types
    geometry = [
        (n, appended[n][1]) for n in ("rel_x", "rel_qw", "rel_cov", "geometry", "p_correct")
    ]
    assert geometry == [
        ("rel_x", PointField.FLOAT64),
        ("rel_qw", PointField.FLOAT64),
        ("rel_cov", PointField.FLOAT32),
        ("geometry", PointField.UINT8),
        ("p_correct", PointField.FLOAT32),
    ]
    assert appended["acceptance"] == (236, PointField.UINT8)  # issue 20: in the old padding
    assert appended["rel_x"][0] > appended["rerank_score"][0] and appended["rel_x"][0] % 8 == 0
    assert min(offset for offset, _ in appended.values()) > 72  # after `verified`
    assert msg.point_step >= max(o for _, o, _ in fields) + 4 and msg.row_step == 2 * msg.point_step


def test_fields_parse_by_name_with_the_messages_offsets():
    msg = candidates_to_cloud(candidates(), ns_to_stamp(5), "map")
    rows = read_by_name(msg)
    table = cloud_to_candidates(msg)
    for row, parsed, c in zip(rows, table, candidates()):
        assert row["map_id"] == parsed["map_id"] == c.map_id
        assert row["inliers"] == parsed["inliers"] == c.inliers
        assert row["verified"] == parsed["verified"] == int(c.verified)
        assert np.isclose(row["rerank_score"], c.rerank_score) and np.isclose(
            parsed["rerank_score"], c.rerank_score
        )
        assert np.isclose(row["score"], c.score) and row["x"] == c.entry.position[0]
        assert row["map_stamp_sec"] * 10**9 + row["map_stamp_nanosec"] == c.entry.stamp_ns
        assert row["acceptance"] == parsed["acceptance"] == c.acceptance
    # the geometry fields: identity and zeros where a candidate has none (geometry 0)
    for row in rows:
        assert row["geometry"] == 0 and row["rel_qw"] == 1.0 and len(row["rel_cov"]) == 21
    # a consumer written against the original 80-byte table still reads a new message by name
    original = {name for name, _, _ in ORIGINAL}
    old_view = [{k: v for k, v in r.items() if k in original} for r in rows]
    assert old_view[0]["qw"] == 0.8 and old_view[1]["verified"] == 0


def test_reader_follows_point_step_of_an_older_table():
    """cloud_to_candidates reads by the message's own layout: an 80-byte table without the
    appended fields (a node before them, recorded in a bag) parses too."""
    msg = candidates_to_cloud(candidates(), ns_to_stamp(5), "map")
    old_step = 80
    data = bytes(msg.data)
    msg.fields = msg.fields[: len(ORIGINAL)]
    msg.data = b"".join(data[i * msg.point_step : i * msg.point_step + old_step] for i in range(2))
    msg.point_step, msg.row_step = old_step, 2 * old_step
    table = cloud_to_candidates(msg)
    assert list(table["map_id"]) == [7, 2] and "inliers" not in table.dtype.names
