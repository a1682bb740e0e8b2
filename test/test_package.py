"""The ament_python package installs like colcon would: data_files under share/, scripts on PATH."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_package_xml_declares_ros_dependencies():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    deps = {e.text for e in root.iter("exec_depend")}
    for dep in (
        "rclpy",
        "sensor_msgs",
        "geometry_msgs",
        "nav_msgs",
        "std_msgs",
        "std_srvs",
        "visualization_msgs",
        "diagnostic_msgs",
    ):
        assert dep in deps
    assert root.find("export/build_type").text == "ament_python"


def test_data_files_are_installed_into_the_prefix():
    """`make test` runs `pip install .` first; the share directory is found through the ament
    index."""
    code = (
        "from ament_index_python.packages import get_package_share_directory as g;"
        "print(g('ros2_netvlad'))"
    )
    env = {**os.environ, "AMENT_PREFIX_PATH": sys.prefix}
    share = Path(
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    assert (share / "package.xml").read_text() == (REPO / "package.xml").read_text()
    assert (share / "config" / "localize.yaml").is_file() and (
        share / "config" / "train.yaml"
    ).is_file()
    assert (Path(sys.prefix) / "share/ament_index/resource_index/packages/ros2_netvlad").is_file()


def test_a_missing_params_file_is_named(monkeypatch, tmp_path):
    """replay_eval outside an ament prefix, installed away from a source tree: one clear error
    naming AMENT_PREFIX_PATH, not rcl's params-file failure later."""
    import ament_index_python.packages as ament

    from ros2_netvlad.errors import NetVLADError
    from ros2_netvlad.ros import replay_eval

    def not_indexed(name):
        raise ament.PackageNotFoundError(name)

    monkeypatch.setattr(ament, "get_package_share_directory", not_indexed)
    monkeypatch.setattr(replay_eval, "__file__", str(tmp_path / "ros2_netvlad/ros/replay_eval.py"))
    with pytest.raises(NetVLADError, match="AMENT_PREFIX_PATH"):
        replay_eval.default_params_file()


def test_console_scripts_are_installed():
    scripts = Path(sys.prefix) / "bin"
    for name in (
        "import_weights",
        "demo",
        "build_map",
        "evaluate",
        "train",
        "fit_pca",
        "netvlad_localizer",
        "replay_bag",
        "replay_eval",
    ):
        assert shutil.which(name, path=str(scripts)), f"{name} not installed in {scripts}"
    result = subprocess.run([scripts / "import_weights", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "MATLAB" in result.stdout


def test_venv_prefix_has_the_ament_layout_launch_needs():
    """`ros2 launch` (launch_ros) finds a node's executable as
    <get_package_prefix(pkg)>/lib/<pkg>/<name>;
    `make install` links every console script there, so a launch stack pointed at the venv starts
    it."""
    code = (
        "from ament_index_python.packages import get_package_prefix as g;print(g('ros2_netvlad'))"
    )
    env = {**os.environ, "AMENT_PREFIX_PATH": sys.prefix}
    prefix = Path(
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    scripts = sorted(
        e.name
        for e in metadata.distribution("ros2_netvlad").entry_points
        if e.group == "console_scripts"
    )
    assert "netvlad_localizer" in scripts
    for name in scripts:
        executable = prefix / "lib" / "ros2_netvlad" / name
        assert executable.is_file() and os.access(executable, os.X_OK), (
            f"{executable} missing (make install)"
        )
    result = subprocess.run(
        [prefix / "lib" / "ros2_netvlad" / "build_map", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "--bag" in result.stdout


def test_import_weights_cli_reports_bad_files(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    result = subprocess.run(
        [Path(sys.prefix) / "bin" / "import_weights", str(bad), str(tmp_path / "o.pt")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "bad.pth: not a readable torch checkpoint" in result.stderr
    assert not (tmp_path / "o.pt").exists()


def test_colcon_build_installs_the_ament_layout(tmp_path):
    """`colcon build` (as on a ROS 2 machine) puts scripts in lib/<pkg> and data files in share/."""
    colcon = Path(sys.prefix) / "bin" / "colcon"
    result = subprocess.run(
        [
            colcon,
            "--log-base",
            str(tmp_path / "log"),
            "build",
            "--base-paths",
            str(REPO),
            "--packages-select",
            "ros2_netvlad",
            "--build-base",
            str(tmp_path / "build"),
            "--install-base",
            str(tmp_path / "install"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    prefix = tmp_path / "install" / "ros2_netvlad"
    for script in (
        "netvlad_localizer",
        "build_map",
        "evaluate",
        "replay_eval",
        "replay_bag",
        "train",
        "fit_pca",
        "import_weights",
        "demo",
    ):
        assert (prefix / "lib" / "ros2_netvlad" / script).is_file(), (
            f"{script} not in lib/ros2_netvlad"
        )
    assert (prefix / "share" / "ros2_netvlad" / "launch" / "localize.launch.py").is_file()
    assert (prefix / "share" / "ros2_netvlad" / "config" / "localize.yaml").is_file()
    assert (
        prefix / "share" / "ament_index" / "resource_index" / "packages" / "ros2_netvlad"
    ).is_file()


def test_tools_report_errors_in_one_line_and_ctrl_c_quietly(tmp_path):
    bin_dir = Path(sys.prefix) / "bin"
    cases = [
        (
            [
                bin_dir / "evaluate",
                "--map",
                str(tmp_path / "missing"),
                "--images",
                str(tmp_path),
                "--out",
                str(tmp_path / "eval"),
            ],
            "evaluate: ",
        ),
        (
            [
                bin_dir / "fit_pca",
                "--weights",
                str(tmp_path / "missing.pt"),
                "--images",
                str(tmp_path),
                "--out",
                str(tmp_path / "o.pt"),
                "--device",
                "cuda:99",
            ],
            "fit_pca: ",
        ),
    ]
    for command, prefix in cases:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(prefix), (
            result.stderr
        )
    for delay in (0.3, 1.0):  # inside `import torch`, or in the tool's first steps
        process = subprocess.Popen(
            cases[0][0], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert process.returncode in (
            2,
            130,
        )  # 2 when the tool finished its refusal before the signal


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_parameter_table_in_the_docs_is_the_dataclasses():
    from ros2_netvlad.ros.params import parameter_table

    text = (REPO / "docs" / "node.md").read_text()
    table = text.split("<!-- parameters -->\n")[1].split("\n<!-- /parameters -->")[0]
    assert table == parameter_table(), (
        "docs/node.md's parameter table is stale: paste ros2_netvlad.ros.params.parameter_table()"
    )


def _documented_commands():
    """(page, program, flags) for every console-script command in a code block of the docs."""
    from ros2_netvlad.entry import PROGRAMS

    for page in DOCS:
        blocks = page.read_text().split("```")[1::2]
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                words = line.split("#")[0].split()
                if words and words[0] in PROGRAMS and words[0] != "netvlad_localizer":
                    flags = [w.split("=")[0] for w in words[1:] if w.startswith("--")]
                    yield page.name, words[0], flags


def test_every_documented_command_uses_flags_its_tool_has(capsys):
    import importlib

    from ros2_netvlad.entry import PROGRAMS

    checked, unknown = 0, []
    for page, program, flags in _documented_commands():
        with pytest.raises(SystemExit):
            importlib.import_module(PROGRAMS[program]).main(["--help"])
        known = capsys.readouterr().out
        missing = [f for f in flags if not re.search(re.escape(f) + r"[\s,=\]]", known)]
        unknown += [f"{page}: {program} {flag}" for flag in missing]
        checked += 1
    assert checked >= 15, checked  # the docs show the tools in use
    assert not unknown, unknown


def test_the_shipped_params_file_holds_the_dataclass_defaults():
    """config/localize.yaml is what `ros2 launch` loads: a value there that differs from its
    dataclass default silently overrides it in every launched node (min_inliers did, once)."""
    import dataclasses

    import yaml

    from ros2_netvlad.ros.params import SECTIONS

    shipped = yaml.safe_load((REPO / "config" / "localize.yaml").read_text())
    parameters = shipped["/**"]["ros__parameters"]
    differ = [
        f"{section}.{key}: file {value!r}, default {defaults[key]!r}"
        for section, config in SECTIONS.items()
        for defaults in [{f.name: f.default for f in dataclasses.fields(config)}]
        for key, value in parameters.get(section, {}).items()
        if defaults[key] != value
    ]
    assert not differ, differ
