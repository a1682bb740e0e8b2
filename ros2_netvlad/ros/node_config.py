"""The localization node's own settings (the ``node.*`` parameters), with validation."""

from __future__ import annotations

from dataclasses import dataclass, field

from ros2_netvlad.camera import OPTICAL_IN_BODY, Camera
from ros2_netvlad.config_rules import check, check_choice, check_ranges, param
from ros2_netvlad.errors import InputError

MODES = ("localize", "loop_closure")


@dataclass(frozen=True)
class NodeConfig:
    """The localization node itself."""

    map: str = field(
        default="",
        metadata=param(
            "map directory; in loop_closure mode it is created if missing and saved there",
            read_only=True,
        ),
    )
    mode: str = field(
        default="localize",
        metadata=param(
            "localize (prebuilt map, read-only) or loop_closure (keyframes added online)",
            read_only=True,
        ),
    )
    map_frame: str = field(
        default="",
        metadata=param(
            "frame_id of published poses; empty = 'map' in localize mode, the odometry's frame "
            "(e.g. odom) in loop_closure mode, whose poses are odometry coordinates",
            read_only=True,
        ),
    )
    camera_to_base: str = field(
        default="",
        metadata=param(
            "the camera's optical frame in the odometry/base frame, 'x y z qx qy qz qw'; empty = "
            "REP 103 optical axes at the base origin. Relative poses of closures are between "
            "the two robot (base) poses",
            read_only=True,
        ),
    )
    force_map: bool = field(
        default=False,
        metadata=param(
            "use a map built by another model (descriptors will not be comparable)", read_only=True
        ),
    )
    odom_tolerance: float = field(
        default=0.2,
        metadata=param(
            "seconds between an image and the odometry that places it (a keyframe in "
            "loop_closure mode; revisit tracking in both modes)",
            min=0.0,
            max=10.0,
        ),
    )
    image_reliability: str = field(
        default="best_effort",
        metadata=param(
            "image QoS: best_effort (sensor data) or reliable (large raw images between processes)",
            read_only=True,
        ),
    )
    diagnostics_period: float = field(
        default=1.0,
        metadata=param("seconds between /diagnostics messages", min=0.1, max=60.0, read_only=True),
    )
    warning_period: float = field(
        default=5.0,
        metadata=param("seconds between repeated warnings about bad input", min=0.0, max=3600.0),
    )
    image_timeout: float = field(
        default=10.0,
        metadata=param(
            "warn when no image has arrived for this many seconds, naming the topics; 0 = never",
            min=0.0,
            max=3600.0,
        ),
    )
    autosave_period: float = field(
        default=60.0,
        metadata=param(
            "loop_closure mode: seconds between saves of a grown map (atomic); 0 = only on "
            "shutdown",
            min=0.0,
            max=86400.0,
        ),
    )

    def __post_init__(self) -> None:
        check_choice(self.mode, "node.mode", MODES)
        check_choice(self.image_reliability, "node.image_reliability", ("best_effort", "reliable"))
        check(
            self.mode == "loop_closure" or bool(self.map),
            "node.map",
            "a map directory is required in localize mode",
        )
        check_ranges(self, "node")
        camera_to_base(self)  # refuses a malformed one now


def camera_to_base(config: NodeConfig) -> tuple[float, ...]:
    if not config.camera_to_base.strip():
        return OPTICAL_IN_BODY
    try:
        values = tuple(float(v) for v in config.camera_to_base.replace(",", " ").split())
        Camera(1, 1, (1, 0, 0, 0, 1, 0, 0, 0, 1), to_base=values)  # checks it
    except (ValueError, InputError):
        values = ()
    check(
        len(values) == 7,
        "node.camera_to_base",
        f"must be 7 numbers 'x y z qx qy qz qw', got {config.camera_to_base!r}",
    )
    return values
