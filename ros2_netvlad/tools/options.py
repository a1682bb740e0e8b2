"""Command-line options every tool shares, declared once: where poses come from in a bag, and how
images are described (device, resize)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ros2_netvlad.camera import OPTICAL_IN_BODY, Camera, camera_from_yaml
from ros2_netvlad.config import BACKENDS, DescriberConfig
from ros2_netvlad.sources.registry import SourceOptions, open_source, source_kinds
from ros2_netvlad.sources.rosbag import PoseLookup
from ros2_netvlad.sources.source import Source

SOURCE_HELP = f"any source: {', '.join(source_kinds())}; repeatable"


def add_pose_source(group: argparse._ActionsContainer) -> None:
    """--image-topic, --pose-topic / --tf-frames and --pose-tolerance for bag sources."""
    group.add_argument("--image-topic", help="sensor_msgs/Image or CompressedImage topic")
    group.add_argument(
        "--pose-topic", help="Odometry, PoseStamped, PoseWithCovarianceStamped or NavSatFix topic"
    )
    group.add_argument(
        "--tf-frames", nargs=2, metavar=("MAP", "CAMERA"), help="look poses up in /tf instead"
    )
    group.add_argument(
        "--pose-tolerance", type=float, default=0.1, help="seconds between image and pose (0.1)"
    )


def add_camera(group: argparse._ActionsContainer) -> None:
    """--camera-info / --camera-info-topic, --depth-topic and --camera-to-base: what relative
    poses of loop closures need from a map's images."""
    group.add_argument(
        "--camera-info",
        type=Path,
        help="camera_calibration YAML for bags without CameraInfo (else the bag's is used)",
    )
    group.add_argument(
        "--camera-info-topic",
        default="",
        help="CameraInfo topic (default: the image topic's sibling, e.g. /camera/camera_info)",
    )
    group.add_argument(
        "--depth-topic",
        default="",
        help="aligned depth image (16UC1 mm or 32FC1 m): keypoint depths for metric poses",
    )
    group.add_argument(
        "--camera-to-base",
        nargs=7,
        type=float,
        metavar=("X", "Y", "Z", "QX", "QY", "QZ", "QW"),
        help="the camera's optical frame in the posed frame (default: the bag's /tf_static, "
        "image frame in the odometry's child frame; else REP 103 optical axes, no offset)",
    )


def camera_file(args: argparse.Namespace) -> Camera | None:
    """--camera-info FILE, mounted at --camera-to-base (else REP 103 optical axes)."""
    path = getattr(args, "camera_info", None)
    mount = tuple(args.camera_to_base) if args.camera_to_base else OPTICAL_IN_BODY
    return camera_from_yaml(path, mount) if path else None


def pose_lookup(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    origin: tuple[float, float, float] | None = None,
) -> PoseLookup:
    """The pose source the arguments name; exactly one of --pose-topic and --tf-frames, with
    --image-topic. ``origin``: the GNSS origin to place fixes around (a map's, for queries)."""
    if not args.image_topic:
        parser.error("bags need --image-topic")
    if bool(args.pose_topic) == bool(args.tf_frames):
        parser.error("give exactly one of --pose-topic and --tf-frames")
    frames = tuple(args.tf_frames) if args.tf_frames else None
    return PoseLookup(args.pose_topic or "", frames, int(args.pose_tolerance * 1e9), origin)


def sources_from(
    paths: Sequence[str | Path],
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    origin: tuple[float, float, float] | None = None,
    queries: bool = False,
) -> list[Source]:
    """The sources these paths are (sources/registry.py decides what each path is), posed as
    the pose options say; GNSS fixes around ``origin`` (a map's, for query sets). ``queries``:
    a .mat gives its query half."""
    posed = getattr(args, "pose_topic", None) or getattr(args, "tf_frames", None)
    options = SourceOptions(
        getattr(args, "image_topic", None) or "",
        pose_lookup(args, parser, origin) if posed else None,
        getattr(args, "poses", None),
        getattr(args, "image_root", None),
        queries,
        getattr(args, "camera_info_topic", ""),
        getattr(args, "depth_topic", ""),
        tuple(args.camera_to_base) if getattr(args, "camera_to_base", None) else None,
    )
    return [open_source(path, options) for path in paths]


def add_describer(
    parser: argparse.ArgumentParser, map_default: bool = True, backends: bool = True
) -> None:
    """--device and --max-side (0: the map's resize rule, where there is a map); --backend and
    --backend-model where descriptors are computed for search."""
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda[:N]"
    )
    help_ = "longest image side; 0 = the map's (recommended)" if map_default else "longest side"
    parser.add_argument("--max-side", type=int, default=0 if map_default else 640, help=help_)
    if backends:
        add_backend(parser)


def add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, default="torch", help="inference runtime (torch)"
    )
    parser.add_argument(
        "--backend-model", default="", help="exported .onnx / OpenVINO .xml (export_model)"
    )


def model_config(args: argparse.Namespace) -> DescriberConfig:
    return DescriberConfig(
        device=args.device,
        max_side=args.max_side,
        backend=getattr(args, "backend", "torch"),
        backend_model=getattr(args, "backend_model", ""),
    )
