"""Driver profiles (config/drivers/): iiwa_ros2 (default) and lbr_fri_ros2_stack, and /robot_description.

A profile renames the arm's topics and joints; the robot model, kinematics and limits stay one. sim_arm
stands in for either driver, so the lbr_fri graph is checked over real rclpy against the simulated arm.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from legion_bridge import graph as graph_mod
from legion_bridge import launcher
from legion_bridge.calibration import read_ros_params
from legion_bridge.paths import config_path
from legion_bridge.robot.description import JointNames, description_joint_names, robot_description
from legion_bridge.robot.urdf_model import ARM_JOINT_NAMES, load_robot_model, parse_urdf

LAUNCH = [str(Path(sys.executable).parent / "legion-launch")]
LBR_JOINTS = [f"lbr_A{i}" for i in range(1, 8)]


def test_each_profile_names_the_arm_topics_and_seven_joints_and_every_node_loads_it_after_topics():
    for driver in graph_mod.DRIVERS:
        profile = read_ros_params(config_path("drivers", f"{driver}.yaml"))
        assert len(profile["arm_joint_names"]) == 7
        for key in ("joint_states_topic", "joint_trajectory_topic", "position_command_topic"):
            assert profile[key].startswith("/"), (driver, key)
        for mode in graph_mod.MODES:
            for nl in graph_mod.resolve(mode, {"driver": driver}):
                names = [str(f.relative_to(config_path())) for f in nl.param_files]
                assert names[:2] == ["topics.yaml", f"drivers/{driver}.yaml"], (nl.spec.name, names)
    # the default is iiwa_ros2, whose joints are the robot model's own
    assert graph_mod.argument_values("real")["driver"] == "iiwa_ros2"
    assert read_ros_params(config_path("drivers", "iiwa_ros2.yaml"))["arm_joint_names"] == list(ARM_JOINT_NAMES)
    lbr = read_ros_params(config_path("drivers", "lbr_fri.yaml"))
    assert lbr["arm_joint_names"] == LBR_JOINTS and lbr["joint_states_topic"] == "/lbr/joint_states"
    assert lbr["joint_trajectory_topic"] == "/lbr/joint_trajectory_controller/joint_trajectory"


def test_a_bad_driver_is_one_line_naming_the_known_ones():
    with pytest.raises(ValueError, match="launch argument driver: unknown driver 'kuka'; known: iiwa_ros2, lbr_fri"):
        graph_mod.resolve("real", {"driver": "kuka"})
    proc = subprocess.run(LAUNCH + ["real", "--list", "--set", "driver:=kuka"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "legion-launch: launch argument driver: unknown driver 'kuka'; known: iiwa_ros2, lbr_fri"
    assert proc.stdout == ""


def test_joint_names_translate_at_the_edges_and_refuse_another_drivers_names():
    names = JointNames.for_model(load_robot_model("iiwa7"), LBR_JOINTS)
    assert names.to_model(["lbr_A2", "lbr_A1", "x"]) == ["joint_a2", "joint_a1", "x"]
    assert names.to_driver(["joint_a7"]) == ["lbr_A7"]
    # an iiwa_ros2 joint state on an lbr_fri graph is not taken for the arm
    assert names.to_model(["joint_a1"]) == ["?joint_a1"]
    assert JointNames.for_model(load_robot_model("iiwa7"), []).identity
    for bad in (LBR_JOINTS[:6], LBR_JOINTS[:6] + ["lbr_A1"], LBR_JOINTS[:6] + [" "]):
        with pytest.raises(ValueError, match="arm_joint_names must be 7 distinct names"):
            JointNames.for_model(load_robot_model("iiwa7"), bad)


@pytest.mark.parametrize("model", ["iiwa7", "iiwa14"])
def test_robot_description_is_the_model_with_the_gripper_under_the_drivers_joint_names(model):
    own = robot_description(model)
    assert parse_urdf(own).joint_names == ARM_JOINT_NAMES  # the project's loader reads it
    lbr = robot_description(model, LBR_JOINTS)
    joints = description_joint_names(lbr)
    assert joints[:7] == LBR_JOINTS
    fingers = list(load_robot_model(model).gripper.finger_joint_names)
    assert joints[7:] == fingers and len(fingers) == 2
    # renaming back gives the model again: the same kinematics and limits, only the names differ
    back = lbr
    for a, b in zip(LBR_JOINTS, ARM_JOINT_NAMES):
        back = back.replace(f'name="{a}"', f'name="{b}"')
    m, m2 = parse_urdf(back), load_robot_model(model)
    assert (m.lower == m2.lower).all() and (m.velocity_limits == m2.velocity_limits).all()
    assert (m.tcp_from_flange == m2.tcp_from_flange).all()


def test_the_real_graph_publishes_the_description_in_both_modes_and_rviz_sets_its_joint_states():
    for mode in graph_mod.MODES:
        cmds = {c.name: c.argv for c in launcher.node_commands(mode, {"robot_model": "iiwa14"},
                                                               resolve_executables=False)}
        assert "robot_model:=iiwa14" in cmds["description"]
        assert "publish_robot_joint_states:=false" in cmds["description"]
        assert "recorder" not in cmds
    on = {c.name: c.argv for c in launcher.node_commands("real", {"rviz": "true"}, resolve_executables=False)}
    assert "publish_robot_joint_states:=true" in on["description"]
    desc = {s.name: s for s in graph_mod.NODES}["description"]
    assert not desc.required


@pytest.mark.ros
def test_lbr_fri_profile_sim_arm_and_sim2real_speak_lbr_topics_and_joint_names():
    """sim_arm standing in for lbr_fri_ros2_stack: /lbr/joint_states with lbr_A1..A7, commands on the
    profile's JTC topic with those names, followed by the arm; /robot_description names the same joints."""
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float32MultiArray, String
    from trajectory_msgs.msg import JointTrajectory
    from diagnostic_msgs.msg import DiagnosticArray

    from legion_policy.ros_io import LATCHED_QOS, STREAM_QOS
    from rosutil import ros_context, spin_until

    proc = subprocess.Popen(LAUNCH + ["sim", "--only", "sim_arm,sim2real,description,monitor", "--set", "driver:=lbr_fri",
                                      "--set", "scene:=reach-v3", "--set", "rviz:=true"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    got: dict[str, list] = {"lbr_js": [], "iiwa_js": [], "traj": [], "iiwa_traj": [], "desc": [], "diag": [],
                            "robot_js": []}
    try:
        with ros_context() as (ctx, executor):
            node = Node("driver_profile_test", context=ctx)
            executor.add_node(node)
            node.create_subscription(JointState, "/lbr/joint_states", got["lbr_js"].append, STREAM_QOS)
            node.create_subscription(JointState, "/joint_states", got["iiwa_js"].append, STREAM_QOS)
            node.create_subscription(JointTrajectory, "/lbr/joint_trajectory_controller/joint_trajectory",
                                     got["traj"].append, 10)
            node.create_subscription(JointTrajectory, "/iiwa_arm_controller/joint_trajectory",
                                     got["iiwa_traj"].append, 10)
            node.create_subscription(String, "/robot_description", got["desc"].append, LATCHED_QOS)
            # rviz:=true: what robot_state_publisher reads (arm + fingers)
            node.create_subscription(JointState, "/legion/robot_joint_states", got["robot_js"].append, STREAM_QOS)
            node.create_subscription(DiagnosticArray, "/diagnostics",
                                     lambda m: got["diag"].extend(s.name for s in m.status), 10)
            act = node.create_publisher(Float32MultiArray, "/legion/action", STREAM_QOS)
            assert spin_until(executor, lambda: got["desc"] and len(got["lbr_js"]) > 20
                              and act.get_subscription_count() > 0, timeout_s=120.0), \
                f"graph did not come up: {[(k, len(v)) for k, v in got.items()]}"
            js0 = got["lbr_js"][-1]
            assert list(js0.name) == LBR_JOINTS
            urdf_joints = description_joint_names(got["desc"][0].data)
            assert urdf_joints[:7] == list(js0.name)  # robot_state_publisher can turn them into TF
            # the hand moves 5 mm per action along sim x, commanded on the lbr JTC topic
            n_before = len(got["traj"])
            for _ in range(60):
                act.publish(Float32MultiArray(data=[0.5, 0.0, 0.0, -1.0]))
                spin_until(executor, lambda: False, timeout_s=0.0125)
            assert spin_until(executor, lambda: len(got["traj"]) > n_before + 20, timeout_s=10.0), len(got["traj"])
            spin_until(executor, lambda: False, timeout_s=0.5)  # let the arm settle on the last command
            js1 = got["lbr_js"][-1]
            node.destroy_node()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    cmd = got["traj"][-1]
    assert list(cmd.joint_names) == LBR_JOINTS
    moved = max(abs(a - b) for a, b in zip(js1.position, js0.position))
    assert moved > 0.02, f"the arm did not follow the lbr commands (max joint change {moved:.4f} rad)"
    # the last command was reached: sim_arm took the lbr names as its joints
    assert max(abs(a - b) for a, b in zip(js1.position, cmd.points[-1].positions)) < 0.01
    assert not got["iiwa_js"] and not got["iiwa_traj"], "iiwa_ros2 topics used under driver:=lbr_fri"
    assert "monitor: /lbr/joint_states" in got["diag"]
    assert got["robot_js"] and list(got["robot_js"][-1].name) == urdf_joints  # every movable joint: full TF
    assert len(got["robot_js"]) < len(got["lbr_js"]) / 3  # throttled (30 Hz of 200 Hz)
    assert "rejected joint trajectory" not in out, out[-3000:]
    assert "Traceback" not in out, out[-4000:]
    assert proc.returncode == 0, out[-3000:]
