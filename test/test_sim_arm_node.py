"""The sim_arm node over real rclpy: rates, JTC step tracking, object poses, bad input, reset, process entry."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from legion_bridge.calibration import load_calibration
from legion_bridge.nodes.sim_arm_node import SimArmNode
from legion_bridge.paths import config_path
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import load_robot_model
from rosutil import ros_context, spin_until

warnings.filterwarnings("ignore", category=UserWarning)
pytestmark = pytest.mark.ros
EXE = os.path.join(os.path.dirname(sys.executable), "legion_sim_arm")
DEEP = QoSProfile(depth=20000, reliability=ReliabilityPolicy.RELIABLE)
RATE_WINDOW_S = 60.0


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def start_node(*ros_args: str) -> subprocess.Popen:
    return subprocess.Popen([EXE, "--ros-args", *ros_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def stop_node(proc: subprocess.Popen) -> str:
    """SIGINT, then the output; the node must exit with status 0."""
    try:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


def make_node(ctx, **params):
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return SimArmNode(context=ctx, parameter_overrides=overrides)


def trajectory(names, q, t=0.05) -> JointTrajectory:
    msg = JointTrajectory()
    msg.joint_names = list(names)
    pt = JointTrajectoryPoint()
    pt.positions = [float(v) for v in q]
    sec = int(t)
    pt.time_from_start = Duration(sec=sec, nanosec=int(round((t - sec) * 1e9)))
    msg.points = [pt]
    return msg


@pytest.mark.slow
def test_joint_states_200hz_and_step_tracking_over_60s_sim_time():
    """/joint_states at 200 Hz +- 5 % over 60 s of sim time; a JTC step tracked to 1 mrad, under the limits.

    The node runs as its own process (the console script), as fast as possible.
    """
    robot = load_robot_model("iiwa7")
    cal = load_calibration(config_path("calibration.yaml"))
    kin = Kinematics(robot, sim_from_base=cal.sim_from_base)
    proc = start_node("-p", "scene:=push-v3", "-p", "real_time_factor:=0.0")
    try:
        with ros_context() as (ctx, ex):
            probe = rclpy.create_node("probe", context=ctx)
            ex.add_node(probe)
            states: list[JointState] = []
            probe.create_subscription(JointState, "/joint_states", states.append, DEEP)
            pub = probe.create_publisher(JointTrajectory, "/iiwa_arm_controller/joint_trajectory", 10)
            assert spin_until(ex, lambda: len(states) > 10 and pub.get_subscription_count() > 0, 60.0)
            seed = np.array(states[-1].position)
            res = kin.ik(cal.sim_from_base.inverse().apply([0.15, 0.75, 0.2]), seed)
            assert res.success
            target = res.q.copy()
            target[6] = np.clip(target[6] + 1.0, robot.lower[6], robot.upper[6])
            pub.publish(trajectory(robot.joint_names, target))
            t0 = stamp_s(states[0].header.stamp)
            wall0 = time.monotonic()
            assert spin_until(ex, lambda: stamp_s(states[-1].header.stamp) >= t0 + RATE_WINDOW_S + 0.01, 240.0)
            wall = time.monotonic() - wall0
    finally:
        stop_node(proc)
    stamps = np.array([stamp_s(m.header.stamp) for m in states])
    in_window = np.count_nonzero((stamps >= t0) & (stamps < t0 + RATE_WINDOW_S))
    rate = in_window / RATE_WINDOW_S
    gaps = np.diff(stamps)
    print(f"/joint_states: {rate:.2f} Hz over {RATE_WINDOW_S} s sim time ({wall:.1f} s wall); "
          f"intervals {gaps.min() * 1e3:.4f}..{gaps.max() * 1e3:.4f} ms")
    assert abs(rate - 200.0) <= 0.05 * 200.0
    assert np.abs(gaps - 0.005).max() < 1e-5  # one message every 5 ms of sim time, none lost
    assert list(states[-1].name) == list(robot.joint_names)
    q = np.array([m.position for m in states])
    v = np.array([m.velocity for m in states])
    vmax = np.abs(v).max(axis=0) / robot.velocity_limits
    err = np.abs(q[-1] - target).max()
    print(f"step: steady-state error {err:.3g} rad; max |v| / datasheet limit {vmax.max():.4f}")
    assert np.abs(q[0] - target).max() > 0.5  # a real step
    assert err < 1e-3
    assert vmax.max() <= 1.0


def test_object_poses_equal_mujoco_bodies_and_noise_delay_options():
    with ros_context() as (ctx, ex):
        node = make_node(ctx, scene="push-v3", real_time_factor=0.0, object_pose_rate_hz=200.0)
        noisy = make_node(ctx, scene="push-v3", real_time_factor=0.0, object_position_noise_std=0.01,
                          object_pose_delay_s=0.1, joint_states_topic="/noisy/joint_states",
                          object_pose_prefix="/noisy", sim_success_topic="/noisy/success",
                          joint_trajectory_topic="/noisy/jt", position_command_topic="/noisy/pc",
                          gripper_command_topic="/noisy/gc", sim_reset_topic="/noisy/reset",
                          gripper_state_topic="/noisy/gripper")
        probe = rclpy.create_node("probe", context=ctx)
        for n in (node, noisy, probe):
            ex.add_node(n)
        got = {"object": [], "goal": [], "noisy": []}
        probe.create_subscription(PoseStamped, "/objects/object/pose", got["object"].append, DEEP)
        probe.create_subscription(PoseStamped, "/objects/goal/pose", got["goal"].append, DEEP)
        probe.create_subscription(PoseStamped, "/noisy/object/pose", got["noisy"].append, DEEP)
        assert spin_until(ex, lambda: all(len(v) >= 20 for v in got.values()), 30.0)
        with node.lock:  # the simulation thread waits: MuJoCo's state is the one of the last published pose
            spin_until(ex, lambda: False, 0.3)  # deliver what was published before
            m, d = node.sim.cell.model, node.sim.cell.data
            t_now = node.sim.time
            puck = d.xpos[m.body("obj").id].copy()
            puck_R = d.geom_xmat[m.geom("objGeom").id].reshape(3, 3).copy()
            goal = d.xpos[m.body("goal").id].copy()
        with noisy.lock:
            noisy_true = noisy.sim.cell.object_pose("object")[0]
            noisy_t = noisy.sim.time
        for n in (node, noisy):
            n.destroy_node()
        msg = got["object"][-1]
        assert msg.header.frame_id == "sim_world"
        assert stamp_s(msg.header.stamp) == pytest.approx(t_now, abs=1e-9)
        p = np.array([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z])
        o = msg.pose.orientation
        x, y, z, w = o.x, o.y, o.z, o.w
        R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        print(f"object pose vs MuJoCo: {np.abs(p - puck).max():.3g} m, rotation {np.abs(R - puck_R).max():.3g}")
        assert np.abs(p - puck).max() < 1e-6
        assert np.abs(R - puck_R).max() < 1e-6
        g = got["goal"][-1].pose.position
        assert np.abs(np.array([g.x, g.y, g.z]) - goal).max() < 1e-6
        noisy_p = np.array([[mm.pose.position.x, mm.pose.position.y, mm.pose.position.z] for mm in got["noisy"]])
        spread = np.std(noisy_p - noisy_true, axis=0)
        assert np.all((spread > 0.004) & (spread < 0.02)), spread
        # delay: a pose is published 0.1 s after its capture stamp
        assert stamp_s(got["noisy"][-1].header.stamp) <= noisy_t - 0.1 + 0.03


def test_bad_commands_rejected_and_counted_arm_holds_gripper_and_reset():
    with ros_context() as (ctx, ex):
        node = make_node(ctx, scene="push-v3", real_time_factor=4.0)
        probe = rclpy.create_node("probe", context=ctx)
        ex.add_node(node)
        ex.add_node(probe)
        states, grip, success, diags, pucks = [], [], [], [], []
        probe.create_subscription(JointState, "/joint_states", states.append, DEEP)
        probe.create_subscription(JointState, "/gripper/joint_states", grip.append, DEEP)
        probe.create_subscription(String, "/sim/success", lambda m: success.append(json.loads(m.data)), DEEP)
        probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, DEEP)
        probe.create_subscription(PoseStamped, "/objects/puck/pose", pucks.append, DEEP)
        jt = probe.create_publisher(JointTrajectory, "/iiwa_arm_controller/joint_trajectory", 10)
        pc = probe.create_publisher(Float64MultiArray, "/forward_position_controller/commands", 10)
        gc = probe.create_publisher(Float64, "/gripper/command", 10)
        rs = probe.create_publisher(String, "/sim/reset", 10)
        assert spin_until(ex, lambda: states and success and jt.get_subscription_count() > 0, 20.0)
        q0 = np.array(states[-1].position)
        names = list(node.sim.joint_names)
        bad = [trajectory(["a"] * 7, q0), trajectory(names, [float("nan")] * 7), trajectory(names, q0[:6]),
               trajectory(names, np.r_[q0[:3], 2.5, q0[4:]]), trajectory(names, q0, t=0.0)]
        for msg in bad:
            jt.publish(msg)
        pc.publish(Float64MultiArray(data=[9.0] * 7))
        gc.publish(Float64(data=3.0))
        assert spin_until(ex, lambda: node.sim.rejected >= 7, 10.0), node.sim.last_rejection
        n = len(states)
        assert spin_until(ex, lambda: len(states) > n + 100, 10.0)
        assert np.abs(np.array(states[-1].position) - q0).max() < 1e-4  # held
        assert spin_until(ex, lambda: any(kv.key == "rejected_commands" and int(kv.value) >= 7
                                          for d in diags[-3:] for st in d.status for kv in st.values), 10.0)
        # gripper state and command
        assert grip[-1].name == ["gripper_finger_gap"] and grip[-1].position[0] > 0.095
        gc.publish(Float64(data=1.0))
        assert spin_until(ex, lambda: grip and grip[-1].position[0] < 0.005, 10.0)
        assert success[-1]["scene"] == "push-v3" and set(success[-1]["tasks"]) == {"push-v3"}
        # reset into the multi-object scene: the new objects appear, time keeps running
        t_before = stamp_s(states[-1].header.stamp)
        rs.publish(String(data="tabletop"))
        assert spin_until(ex, lambda: len(pucks) > 2 and success[-1]["scene"] == "tabletop", 20.0)
        assert set(success[-1]["tasks"]) == {"push-v3", "button-press-topdown-v3", "reach-v3"}
        assert stamp_s(states[-1].header.stamp) > t_before
        node.destroy_node()


def test_console_entry_point_publishes_clock_and_exits_cleanly_on_sigint():
    proc = start_node("-p", "scene:=reach-v3", "-p", "real_time_factor:=2.0")
    try:
        with ros_context() as (ctx, ex):
            probe = rclpy.create_node("probe", context=ctx)
            ex.add_node(probe)
            states, clocks = [], []
            probe.create_subscription(JointState, "/joint_states", states.append, DEEP)
            probe.create_subscription(Clock, "/clock", lambda m: clocks.append(stamp_s(m.clock)), DEEP)
            assert spin_until(ex, lambda: len(states) > 50 and len(clocks) > 50, 60.0)
    finally:
        out = stop_node(proc)
    assert proc.returncode == 0, out
    assert np.all(np.diff(clocks) > 0)
    assert "Traceback" not in out


@pytest.mark.parametrize("param, message", [
    ("scene:=push-v9", "sim_arm: unknown scene 'push-v9'"),
    ("robot_model:=iiwa99", "sim_arm: unknown robot model 'iiwa99'"),
    ("joint_state_rate_hz:=300.0", "must divide the physics rate"),
    ("video_path:=/no/such/folder/cell.gif", "does not exist"),
])
def test_bad_parameters_end_the_process_with_one_line(param, message):
    out = subprocess.run([EXE, "--ros-args", "-p", param], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_headless_video_recording(tmp_path):
    import imageio.v2 as imageio

    path = tmp_path / "cell.gif"
    with ros_context() as (ctx, ex):
        node = make_node(ctx, scene="push-v3", real_time_factor=0.0, video_path=str(path), video_size=[160, 120])
        ex.add_node(node)
        sim = node.sim
        with node.lock:
            sim.command_positions(sim.joint_positions() + 0.3)  # motion: frames differ
        assert spin_until(ex, lambda: sim.time > 0.6, 60.0)
        node.destroy_node()  # closes the writer
    frames = imageio.mimread(path)
    assert len(frames) >= 3 and frames[0].shape[:2] == (120, 160)
    assert np.abs(frames[0].astype(float) - frames[-1].astype(float)).mean() > 0.5
