"""ament_python package: builds with colcon on a ROS 2 install and with pip in a plain venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ros2_netvlad"


def requirements(path):
    with open(path) as f:
        return [
            line.split("#")[0].strip()
            for line in f
            if line.split("#")[0].strip() and not line.startswith("-r")
        ]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    # ROS packages come from rosdep (package.xml); the ML stack from requirements/ml.txt, kept out
    # of
    # install_requires so colcon on a ROS machine never pulls a second torch over the user's CUDA
    # one.
    install_requires=["setuptools"],
    extras_require={"test": requirements("requirements/test.txt")},
    zip_safe=True,
    maintainer="ros2_netvlad maintainers",
    maintainer_email="maintainers@ros2-netvlad.dev",
    description="NetVLAD visual place recognition for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            f"import_weights = {PACKAGE}.entry:import_weights",
            f"build_map = {PACKAGE}.entry:build_map",
            f"netvlad_localizer = {PACKAGE}.entry:netvlad_localizer",
            f"replay_bag = {PACKAGE}.entry:replay_bag",
            f"replay_eval = {PACKAGE}.entry:replay_eval",
            f"evaluate = {PACKAGE}.entry:evaluate",
            f"train = {PACKAGE}.entry:train",
            f"fit_pca = {PACKAGE}.entry:fit_pca",
            f"slam_eval = {PACKAGE}.entry:slam_eval",
            f"export_model = {PACKAGE}.entry:export_model",
            f"demo = {PACKAGE}.entry:demo",
        ],
    },
)
