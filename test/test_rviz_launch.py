"""rviz:=true on a workstation: robot_state_publisher (the graph's URDF) and rviz2 with config/rviz/legion.rviz.

Built from the real launch files with upstream launch / launch_ros (installed offline by
../shared/tools/install-ros2-tools.sh); robot_state_publisher and rviz2 themselves are not needed to
check what would start.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from legion_bridge.paths import config_path
from legion_bridge.robot.description import description_joint_names

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = [str(Path(sys.executable).parent / "legion-launch")]


def rviz_nodes(launch_file: str, **args: str) -> list:
    """The nodes the rviz part of ``launch_file`` starts for ``args`` (empty when its condition is false)."""
    pytest.importorskip("launch_ros")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    spec = importlib.util.spec_from_file_location("legion_launch_file", ROOT / "launch" / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    ctx = LaunchContext()
    for entity in ld.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(ctx)  # the defaults
    ctx.launch_configurations.update(args)
    conditional = [e for e in ld.entities if isinstance(e, OpaqueFunction) and e.condition is not None]
    assert len(conditional) == 1
    if not conditional[0].condition.evaluate(ctx):
        return []
    return conditional[0].visit(ctx)


@pytest.mark.parametrize("launch_file", ["sim_robot.launch.py", "real_robot.launch.py"])
def test_rviz_true_starts_robot_state_publisher_and_rviz2_and_the_default_starts_neither(launch_file):
    assert rviz_nodes(launch_file) == []
    assert rviz_nodes(launch_file, rviz="false") == []
    nodes = rviz_nodes(launch_file, rviz="true", driver="lbr_fri", robot_model="iiwa14")
    assert [(n.node_package, n.node_executable) for n in nodes] == [("robot_state_publisher", "robot_state_publisher"),
                                                                    ("rviz2", "rviz2")]


@pytest.mark.parametrize("driver,joint", [("iiwa_ros2", "joint_a1"), ("lbr_fri", "lbr_A1")])
def test_robot_state_publisher_gets_the_graphs_urdf_and_the_description_nodes_joint_states(driver, joint):
    from legion_bridge.launch_builder import RVIZ_CONFIG, rviz_node_specs

    rsp, rviz = rviz_node_specs("real", {"driver": driver, "robot_model": "iiwa14"})
    urdf = rsp["parameters"]["robot_description"]
    assert description_joint_names(urdf)[0] == joint and 'robot name="iiwa14"' in urdf
    remap = dict(rsp["remappings"])
    assert remap["joint_states"] == "/legion/robot_joint_states"  # arm + fingers, from the description node
    assert remap["robot_description"] != "/robot_description"  # the description node is its one publisher
    assert rviz["arguments"] == ["-d", str(config_path(RVIZ_CONFIG))]
    assert rsp["parameters"]["use_sim_time"] is False and rsp["parameters"]["frame_prefix"] == "legion/"
    assert rviz_node_specs("sim", {})[0]["parameters"]["use_sim_time"] is True


def test_the_shipped_rviz_config_shows_the_robot_model_from_the_topic_in_the_base_frame():
    cfg = yaml.safe_load(config_path("rviz", "legion.rviz").read_text())["Visualization Manager"]
    displays = {d["Class"]: d for d in cfg["Displays"]}
    model = displays["rviz_default_plugins/RobotModel"]
    assert model["Description Source"] == "Topic"
    assert model["Description Topic"]["Value"] == "/robot_description"
    assert model["Description Topic"]["Durability Policy"] == "Transient Local"
    assert "rviz_default_plugins/TF" in displays
    assert cfg["Global Options"]["Fixed Frame"] == "legion/link_0"
    # robot_state_publisher's frame_prefix and the RobotModel's TF prefix agree
    from legion_bridge.launch_builder import RVIZ_FRAME_PREFIX

    assert model["TF Prefix"] + "/" == RVIZ_FRAME_PREFIX


def test_legion_launch_says_rviz_needs_a_ros2_install():
    proc = subprocess.run(LAUNCH + ["sim", "--list", "--set", "rviz:=true"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stderr.strip() == ("legion-launch: rviz:=true needs a ROS 2 install (robot_state_publisher, rviz2): "
                                   "use `ros2 launch legion_bridge sim_robot.launch.py rviz:=true`; "
                                   "starting the graph without them")
    assert "description:" in proc.stdout and "publish_robot_joint_states:=true" in proc.stdout
    quiet = subprocess.run(LAUNCH + ["sim", "--list"], capture_output=True, text=True, timeout=60)
    assert quiet.stderr == ""


FAKE = """#!/bin/sh
# stands in for {exe}: records its command line (and parameter files), then waits to be stopped
out="{out}/{exe}"
printf '%s\\n' "$@" > "$out.args"
next=""
for a in "$@"; do [ "$next" = params ] && cat "$a" >> "$out.params"; next=""; [ "$a" = --params-file ] && next=params; done
touch "$out.params"
trap 'exit 0' INT TERM
while :; do sleep 0.1; done
"""


def _fake_prefix(root: Path, out: Path) -> Path:
    """An install prefix holding legion_bridge (this checkout's executables) and stand-ins for
    robot_state_publisher and rviz2, as ament_index finds packages."""
    prefix = root / "prefix"
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    from legion_bridge import graph as graph_mod

    (index / "legion_bridge").write_text("")
    lib = prefix / "lib" / "legion_bridge"
    lib.mkdir(parents=True)
    for spec in graph_mod.NODES:
        (lib / spec.executable).symlink_to(Path(sys.executable).parent / spec.executable)
    for pkg in ("robot_state_publisher", "rviz2"):
        (index / pkg).write_text("")
        exe = prefix / "lib" / pkg / pkg
        exe.parent.mkdir(parents=True)
        exe.write_text(FAKE.format(exe=pkg, out=out))
        exe.chmod(0o755)
    return prefix


@pytest.mark.ros
def test_ros2_launch_real_with_rviz_starts_robot_state_publisher_with_the_urdf_and_rviz2_with_the_config(tmp_path):
    """The real `ros2 launch` (upstream launch_ros) of real_robot.launch.py with rviz:=true, driver:=lbr_fri:
    robot_state_publisher gets the lbr-named URDF and the description node's joint states, rviz2 the
    shipped config; both are stand-ins that record what they were given."""
    import os
    import re
    import signal
    import threading
    import time

    ros2 = Path(sys.executable).parent / "ros2"
    if not ros2.is_file():
        pytest.skip("ros2 launch not installed (../shared/tools/install-ros2-tools.sh .venv)")
    out = tmp_path / "out"
    out.mkdir()
    prefix = _fake_prefix(tmp_path, out)
    env = os.environ.copy()
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in (str(prefix), env.get("AMENT_PREFIX_PATH", "")) if p)
    proc = subprocess.Popen([str(ros2), "launch", str(ROOT / "launch" / "real_robot.launch.py"), "rviz:=true",
                             "driver:=lbr_fri", "robot_model:=iiwa14"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()

    def up() -> bool:  # the stand-ins ran, and every node of the graph is past its start-up
        text = "".join(lines)
        return ((out / "rviz2.args").is_file() and (out / "robot_state_publisher.params").is_file()
                and "description: iiwa14 on /robot_description" in text
                and re.search(r"\[policy\]: agent .*active: idle", text) is not None
                and "real2sim: iiwa14" in text and "sim2real: iiwa14" in text)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not up():
            time.sleep(0.2)
        assert up(), "".join(lines)[-3000:]
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=5)
        text = "".join(lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    rsp_args = (out / "robot_state_publisher.args").read_text().split("\n")
    params = yaml.safe_load_all((out / "robot_state_publisher.params").read_text())
    merged = {}
    for doc in params:
        for section in (doc or {}).values():
            merged.update(section.get("ros__parameters", {}))
    assert description_joint_names(merged["robot_description"])[:7] == [f"lbr_A{i}" for i in range(1, 8)]
    assert 'robot name="iiwa14"' in merged["robot_description"] and merged["frame_prefix"] == "legion/"
    assert "joint_states:=/legion/robot_joint_states" in rsp_args
    rviz_args = (out / "rviz2.args").read_text().split("\n")
    assert rviz_args[:2] == ["-d", str(config_path("rviz", "legion.rviz"))]
    assert "Traceback" not in text, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
