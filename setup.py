"""ament_python package `legion_bridge`: the whole LEGION-on-iiwa product.

Installs three Python packages (legion_training, legion_policy, legion_bridge),
the console scripts of every node and CLI, and the launch/, urdf/, config/ and
agents/ folders into share/legion_bridge so that
`ros2 launch legion_bridge real_robot.launch.py` works after `colcon build`.
"""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "legion_bridge"


def tree(folder: str):
    """data_files entries installing `folder` recursively under share/<package>/."""
    entries = {}
    for path in sorted(glob(os.path.join(folder, "**", "*"), recursive=True)):
        if os.path.isfile(path) and "__pycache__" not in path:
            dest = os.path.join("share", PACKAGE, os.path.dirname(path))
            entries.setdefault(dest, []).append(path)
    return list(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["legion_bridge*", "legion_policy*", "legion_training*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        *tree("launch"),
        *tree("urdf"),
        *tree("config"),
        *tree("agents"),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="LEGION iiwa maintainers",
    maintainer_email="legion-iiwa@example.org",
    description="LEGION lifelong RL agent on a KUKA LBR iiwa: training, frozen policy, real2sim/sim2real bridge.",
    license="MIT",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            # ROS 2 nodes (ros2 run legion_bridge <name>)
            "legion_sim_arm = legion_bridge.nodes.sim_arm_node:main",
            "legion_real2sim = legion_bridge.nodes.real2sim_node:main",
            "legion_sim2real = legion_bridge.nodes.sim2real_node:main",
            "legion_monitor = legion_bridge.nodes.monitor_node:main",
            "legion_description = legion_bridge.nodes.description_node:main",
            "legion_recorder = legion_bridge.nodes.recorder_node:main",
            "legion_policy_node = legion_policy.nodes.policy_node:main",
            "legion_sequencer = legion_policy.nodes.sequencer_node:main",
            # command-line tools
            "legion-launch = legion_bridge.launcher:main",
            "legion-robot = legion_bridge.robot_cli:main",
            "legion-demo = legion_bridge.demo:main",
            "legion-agent = legion_policy.agent_cli:main",
            "legion-train = legion_training.cli:main",
        ],
    },
)
