"""Round trip through the simulated cell (real MuJoCo, real kinematics, real rclpy).

1. For random arm configurations in the MuJoCo cell, real2sim's tool-centre point and hand
   (from the joint positions only, through FK and the calibration) equal the simulator's
   tcp site and hand in the sim frame to 1e-6 m.
2. Over rclpy, sim_arm + real2sim + sim2real with a scripted policy: the hand moves by the
   commanded displacement (sum of action x position_scale), lagging the target by at most the
   tracking lag while it moves, and the observation's hand equals the simulator's at rest.
"""
from __future__ import annotations

import time

import mujoco
import numpy as np
import pytest

from bridge_fixtures import cell
from legion_bridge.real2sim import Real2SimConfig, Real2SimCore
from legion_bridge.robot.urdf_model import GRIPPER_GAP_JOINT
from legion_policy.observation_layout import ACTION_SPEC, HAND_FROM_TCP_M, METAWORLD39

MODEL, KIN, CAL, HAND, PARAMS = cell()
ROUND_TRIP_TOL_M = 1e-6


def test_real2sim_hand_equals_the_simulator_hand_for_random_configurations():
    from legion_bridge.sim.cell import Cell

    sim = Cell("push-v3", "iiwa7", CAL, seed=0)
    core = Real2SimCore(HAND, METAWORLD39, Real2SimConfig(), MODEL.joint_names, GRIPPER_GAP_JOINT)
    core.on_binding({"objects": ["object"], "goal": None, "goal_object": "goal", "quat_order": "xyzw"})
    rng = np.random.default_rng(7)
    worst_tcp, worst_hand, inside = 0.0, 0.0, 0
    for i in range(200):
        q = rng.uniform(MODEL.lower, MODEL.upper)
        sim.data.qpos[sim.arm.arm_qpos] = q
        mujoco.mj_forward(sim.model, sim.data)
        t = float(i)
        core.on_joint_state(MODEL.joint_names, sim.joint_positions(), t)
        core.on_gripper_state([GRIPPER_GAP_JOINT], [sim.gripper_gap()], t)
        for name, (p, quat) in sim.object_poses().items():
            core.on_object_pose(name, "sim_world", p, quat, t)
        obs = core.observe(t)
        assert isinstance(obs, np.ndarray), obs
        tcp_sim, _ = sim.tcp_pose()
        worst_tcp = max(worst_tcp, float(np.max(np.abs(core.last_tcp_sim - tcp_sim))))
        hand = sim.hand_pos()
        worst_hand = max(worst_hand, float(np.max(np.abs(core.last_tcp_sim + HAND_FROM_TCP_M - hand))))
        if np.all(hand > (-0.525, 0.348, -0.0525)) and np.all(hand < (0.525, 1.025, 0.7)):  # not clipped
            inside += 1
            np.testing.assert_allclose(METAWORLD39.get(obs, "hand_pos"), hand, atol=ROUND_TRIP_TOL_M, rtol=0)
            # the whole current frame equals the simulator's ground-truth observation
            truth = sim.observation(sim.bindings[0])
            np.testing.assert_allclose(obs[:18], truth[:18], atol=ROUND_TRIP_TOL_M, rtol=0)
    print(f"round trip over 200 random configurations: max |tcp error| {worst_tcp:.2e} m, "
          f"max |hand error| {worst_hand:.2e} m ({inside} hands inside Metaworld's observation box)")
    assert worst_tcp < ROUND_TRIP_TOL_M and worst_hand < ROUND_TRIP_TOL_M
    assert inside > 10


# ----------------------------------------------------------------------------- over rclpy
def _graph_params(node_file: str, extra_files=(), **overrides):
    from rclpy.parameter import Parameter

    from legion_bridge.calibration import read_ros_params
    from legion_bridge.paths import config_path

    values: dict = {}
    for f in ("topics.yaml", node_file, *extra_files, "calibration.yaml", "modes/sim.yaml"):
        values.update(read_ros_params(config_path(f)))
    values.update(overrides)
    return [Parameter(k, value=v) for k, v in values.items()]


def test_sim2real_and_the_sim_arm_move_the_hand_by_the_commanded_displacement():
    import json

    from rclpy.node import Node
    from std_msgs.msg import Bool, Float32MultiArray, String

    from legion_bridge.nodes.real2sim_node import Real2SimNode
    from legion_bridge.nodes.sim2real_node import Sim2RealNode
    from legion_policy.ros_io import LATCHED_QOS, STREAM_QOS, msg_to_observation
    from rosutil import ros_context, spin_until

    sim_arm_node = pytest.importorskip("legion_bridge.nodes.sim_arm_node")
    with ros_context() as (ctx, ex):
        sim = sim_arm_node.SimArmNode(context=ctx, parameter_overrides=_graph_params(
            "sim_arm.yaml", scene="push-v3", use_sim_time=False, real_time_factor=1.0))
        r2s = Real2SimNode(context=ctx, parameter_overrides=_graph_params("real2sim.yaml", ("limits.yaml",),
                                                                          use_sim_time=True))
        s2r = Sim2RealNode(context=ctx, parameter_overrides=_graph_params("sim2real.yaml", ("limits.yaml",),
                                                                          use_sim_time=True, start_enabled=True,
                                                                          # all nodes share one process here:
                                                                          # allow for scheduling hiccups
                                                                          action_timeout_periods=40.0))
        for n in (sim, r2s, s2r):
            ex.add_node(n)
        policy = Node("scripted_policy", context=ctx)
        ex.add_node(policy)
        binding_pub = policy.create_publisher(String, "/legion/binding", LATCHED_QOS)
        action_pub = policy.create_publisher(Float32MultiArray, "/legion/action", STREAM_QOS)
        enable_pub = policy.create_publisher(Bool, "/legion/enable", LATCHED_QOS)
        binding_pub.publish(String(data=json.dumps({"skill": "push-v3", "objects": ["object"], "goal": None,
                                                    "goal_object": "goal", "quat_order": "xyzw"})))
        state = {"obs": None, "n": 0, "plan": [], "log": []}

        def on_obs(msg):
            obs = msg_to_observation(msg, METAWORLD39).astype(np.float64)
            state["obs"] = obs
            if state["plan"]:
                a = state["plan"].pop(0)
                out = Float32MultiArray()
                out.data = [float(v) for v in a]
                action_pub.publish(out)
                state["log"].append((obs[:3].copy(), s2r.core.s.target_hand))

        policy.create_subscription(Float32MultiArray, "/legion/observation", on_obs, STREAM_QOS)
        try:
            assert spin_until(ex, lambda: state["obs"] is not None, 20.0), "no observation from the sim graph"
            # settle, then compare the observation's hand with the simulator's at rest
            state["plan"] = [np.zeros(4)] * 30
            assert spin_until(ex, lambda: not state["plan"], 20.0)
            t_end = time.monotonic() + 1.0
            spin_until(ex, lambda: time.monotonic() > t_end, 2.0)
            with sim.lock:
                truth = sim.sim.cell.hand_pos()
            rest_err = float(np.max(np.abs(state["obs"][:3] - truth)))
            h0 = state["obs"][:3].copy()
            steps = 25
            a = np.array([0.3, 0.2, -0.15, 0.0])  # 25 steps: 7.5 cm, 5 cm, -3.75 cm at 0.29 m/s
            enable_pub.publish(Bool(data=True))  # the pause tripped the action watchdog: enable again
            assert spin_until(ex, lambda: s2r.core.enabled, 5.0)
            state["plan"] = [a] * steps + [np.zeros(4)] * 60
            state["log"] = []
            assert spin_until(ex, lambda: not state["plan"], 60.0)
            t_end = time.monotonic() + 1.0
            spin_until(ex, lambda: time.monotonic() > t_end, 2.0)
            commanded = steps * a[:3] * ACTION_SPEC.position_scale
            moved = state["obs"][:3] - h0
            lags = [float(np.linalg.norm(t - h)) for h, t in state["log"] if t is not None]
            with sim.lock:
                truth = sim.sim.cell.hand_pos()
            final_err = float(np.max(np.abs(state["obs"][:3] - truth)))
            print(f"hand at rest vs simulator: {rest_err:.2e} m (before), {final_err:.2e} m (after); "
                  f"commanded {commanded.round(4).tolist()} m, moved {moved.round(4).tolist()} m, "
                  f"error {np.linalg.norm(moved - commanded) * 1e3:.2f} mm; max lag {max(lags) * 1e3:.1f} mm")
            assert rest_err < 1e-6 and final_err < 1e-6  # float32 observation of a resting arm
            assert np.linalg.norm(moved - commanded) < PARAMS["ik_position_tolerance_m"] + 1e-3, s2r.core.status()
            assert max(lags) <= s2r.core.cfg.max_target_lead_m + 1e-9
            # nothing refused by the envelope or as a bad input (the watchdog holds when this script paused
            # its actions, actions in flight at that moment, and joint states delayed by load may be counted)
            counts = s2r.core.counter.counts
            assert sum(counts.values()) == sum(counts[k] for k in ("watchdog", "disabled", "joint_state_stale",
                                                                   "joint_state_missing")), s2r.core.status()
            assert r2s.core.rejections == {}
            # a binding naming a finger yaw: sim2real turns the simulated gripper there while the hand stays
            h1 = state["obs"][:3].copy()
            binding_pub.publish(String(data=json.dumps({"skill": "push-v3", "objects": ["object"], "goal": None,
                                                        "goal_object": "goal", "quat_order": "xyzw",
                                                        "finger_yaw_deg": 90.0})))
            assert spin_until(ex, lambda: s2r.core.yaw_goal > 1.5, 5.0)
            state["plan"] = [np.zeros(4)] * 240  # 3 s of "stay": the turn takes ~1.7 s
            assert spin_until(ex, lambda: not state["plan"], 60.0)
            t_end = time.monotonic() + 0.5
            spin_until(ex, lambda: time.monotonic() > t_end, 2.0)
            with sim.lock:
                _, R = sim.sim.cell.tcp_pose()
            assert abs(R[1, 1]) > 0.999 and R[2, 2] < -0.999, R    # fingers (tcp y) along sim y, still down
            assert np.linalg.norm(state["obs"][:3] - h1) < 3e-3
            assert s2r.core.status()["finger_yaw_commanded_deg"] == pytest.approx(90.0)
        finally:
            for n in (sim, r2s, s2r, policy):
                n.destroy_node()
