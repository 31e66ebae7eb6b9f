"""real2sim and sim2real nodes over real rclpy (one process, own DDS domain, the shipped config files).

A test node plays the robot driver, the gripper, the perception, the policy and the user.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from bridge_fixtures import cell, q_for_hand
from legion_bridge.calibration import read_ros_params
from legion_bridge.nodes.real2sim_node import Real2SimNode
from legion_bridge.nodes.sim2real_node import Sim2RealNode
from legion_bridge.paths import config_path
from legion_bridge.robot.urdf_model import GRIPPER_GAP_JOINT
from legion_policy.observation_layout import METAWORLD39
from legion_policy.ros_io import LATCHED_QOS, STREAM_QOS, array_msg, msg_to_observation
from rosutil import ros_context, spin_until

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Float32MultiArray, Float64, Float64MultiArray, String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

MODEL, KIN, CAL, HAND, PARAMS = cell()
NAMES = list(MODEL.joint_names)
Q0 = q_for_hand([0.0, 0.6, 0.2])
PERIOD = PARAMS["policy_period_sim_s"]
WATCHDOG_PERIODS = PARAMS["action_timeout_periods"]


def _params(node_file: str, **overrides) -> list[Parameter]:
    values: dict = {}
    for f in ("topics.yaml", node_file, "limits.yaml", "calibration.yaml", "modes/sim.yaml"):
        values.update(read_ros_params(config_path(f)))
    values.update(overrides)
    return [Parameter(k, value=v) for k, v in values.items()]


#: latched topics get a per-test name: a latched message of an earlier test (its participant may
#: linger in discovery for a moment) must not reach the next test's nodes
_TEST_COUNTER = iter(range(1000))


def _latched_topics() -> dict:
    k = next(_TEST_COUNTER)
    return {"enable_topic": f"/legion/enable_t{k}", "binding_topic": f"/legion/binding_t{k}"}


class Harness:
    """Driver + gripper + perception + policy + user, and recorders of everything the bridge says."""

    def __init__(self, ctx, executor, latched: dict):
        self.node = Node("bridge_test_harness", context=ctx)
        executor.add_node(self.node)
        n = self.node
        self.js_pub = n.create_publisher(JointState, "/joint_states", STREAM_QOS)
        self.grip_pub = n.create_publisher(JointState, "/gripper/joint_states", STREAM_QOS)
        self.action_pub = n.create_publisher(Float32MultiArray, "/legion/action", STREAM_QOS)
        self.enable_pub = n.create_publisher(Bool, latched["enable_topic"], LATCHED_QOS)
        self.binding_pub = n.create_publisher(String, latched["binding_topic"], LATCHED_QOS)
        self.pose_pubs = {k: n.create_publisher(PoseStamped, f"/objects/{k}/pose", STREAM_QOS) for k in ("object", "goal")}
        self.traj, self.pos, self.grip, self.obs, self.diag = [], [], [], [], {}
        n.create_subscription(JointTrajectory, "/iiwa_arm_controller/joint_trajectory",
                              lambda m: self.traj.append((time.monotonic(), m)), 50)
        n.create_subscription(Float64MultiArray, "/forward_position_controller/commands",
                              lambda m: self.pos.append((time.monotonic(), m)), 50)
        n.create_subscription(Float64, "/gripper/command", lambda m: self.grip.append(m.data), 50)
        n.create_subscription(Float32MultiArray, "/legion/observation", lambda m: self.obs.append((time.monotonic(), m)), 50)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg):
        for st in msg.status:
            self.diag.setdefault(st.name, []).append((st.level, st.message, {kv.key: kv.value for kv in st.values}))

    def last_diag(self, name):
        return self.diag[name][-1] if self.diag.get(name) else None

    def stamp(self, msg):
        msg.header.stamp = self.node.get_clock().now().to_msg()
        return msg

    def joint_state(self, q, names=None):
        self.js_pub.publish(self.stamp(JointState(name=list(names or NAMES), position=[float(v) for v in q])))

    def world(self, gap=0.1):
        self.grip_pub.publish(self.stamp(JointState(name=[GRIPPER_GAP_JOINT], position=[gap])))
        for k, p in (("object", (0.05, 0.7, 0.02)), ("goal", (0.0, 0.85, 0.1))):
            m = self.stamp(PoseStamped())
            m.header.frame_id = "sim_world"
            m.pose.position.x, m.pose.position.y, m.pose.position.z = p
            m.pose.orientation.w = 1.0
            self.pose_pubs[k].publish(m)

    def action(self, a):
        msg = Float32MultiArray()
        msg.data = [float(v) for v in a]
        self.action_pub.publish(msg)


def _drive(executor, h, seconds, q, action=None, joint_states=True, world=False):
    """Publish joint states (every 5 ms) and actions (every period) for ``seconds`` of wall time."""
    end = time.monotonic() + seconds
    next_action = time.monotonic()
    while time.monotonic() < end:
        if joint_states:
            h.joint_state(q)
        if world:
            h.world()
        if action is not None and time.monotonic() >= next_action:
            h.action(action)
            next_action += PERIOD
        executor.spin_once(timeout_sec=0.005)


def test_sim2real_disabled_then_enabled_then_watchdog_hold():
    with ros_context() as (ctx, ex):
        latched = _latched_topics()
        s2r = Sim2RealNode(context=ctx, parameter_overrides=_params(
            "sim2real.yaml", start_enabled=False, action_timeout_periods=WATCHDOG_PERIODS,
            joint_state_timeout_periods=WATCHDOG_PERIODS,
            action_watchdog_disables=True,  # the real arm's rule (modes/sim.yaml relaxes it)
            **latched))
        ex.add_node(s2r)
        h = Harness(ctx, ex, latched)
        _drive(ex, h, 0.6, Q0, action=[1.0, 0.0, 0.0, 1.0])
        assert h.traj == [] and h.grip == [], "something was commanded while disabled"
        assert spin_until(ex, lambda: h.last_diag("sim2real") is not None
                          and int(h.last_diag("sim2real")[2]["rejected.disabled"]) > 0, 2.0)
        assert "disabled" in h.last_diag("sim2real")[1]
        # enable: one-point trajectories with the horizon, the arm's joint names, and gripper commands
        h.enable_pub.publish(Bool(data=True))
        _drive(ex, h, 0.5, Q0, action=[1.0, 0.0, 0.0, 1.0])
        assert len(h.traj) > 3, len(h.traj)  # (how many depends on how fast this loop runs under load)
        msg = h.traj[-1][1]
        assert list(msg.joint_names) == NAMES and len(msg.points) == 1
        tfs = msg.points[0].time_from_start
        assert tfs.sec + tfs.nanosec * 1e-9 == pytest.approx(PERIOD * PARAMS["command_horizon_periods"], abs=1e-9)
        assert h.grip and h.grip[-1] == 1.0
        assert not np.allclose(msg.points[0].positions, Q0)  # it moves
        # the policy dies: a hold (the measured joints) within the watchdog period, then silence
        n_before = len(h.traj)
        t_stop = time.monotonic()
        _drive(ex, h, 0.4, Q0, action=None)
        after = h.traj[n_before:]
        holds = [i for i, (_, m) in enumerate(after) if np.allclose(m.points[0].positions, Q0, atol=1e-12)]
        assert holds == [len(after) - 1], f"expected one hold as the last command, got {len(after)} commands"
        t_hold = after[-1][0]
        t_last_move = after[-2][0] if len(after) > 1 else t_stop  # actions still in flight when we stopped
        watchdog_s = WATCHDOG_PERIODS * PERIOD
        assert t_hold - t_last_move < watchdog_s + 2 * PERIOD + 0.2, t_hold - t_last_move
        assert spin_until(ex, lambda: int(h.last_diag("sim2real")[2]["rejected.watchdog"]) >= 1, 2.0)
        # the policy comes back: nothing moves until motion is enabled again
        n_before = len(h.traj)
        _drive(ex, h, 0.2, Q0, action=[0.0, 1.0, 0.0, -1.0])
        assert len(h.traj) == n_before and h.grip[-1] == 1.0
        assert "disabled" in h.last_diag("sim2real")[1]
        h.enable_pub.publish(Bool(data=True))
        _drive(ex, h, 0.4, Q0, action=[0.0, 1.0, 0.0, -1.0])
        assert len(h.traj) > n_before + 2 and h.grip[-1] == -1.0
        # joint states stop (200 ms): hold, then recovery when they come back
        n_before = len(h.traj)
        _drive(ex, h, 0.2, Q0, action=[0.0, 1.0, 0.0, -1.0], joint_states=False)
        holds = [m for _, m in h.traj[n_before:] if np.allclose(m.points[0].positions, Q0, atol=1e-12)]
        assert holds, "no hold while joint states were missing"
        assert spin_until(ex, lambda: int(h.last_diag("sim2real")[2]["rejected.joint_state_missing"]) > 0
                          or int(h.last_diag("sim2real")[2]["rejected.watchdog"]) > 1, 2.0)
        n_before = len(h.traj)
        _drive(ex, h, 0.4, Q0, action=[0.0, 1.0, 0.0, -1.0])
        assert any(not np.allclose(m.points[0].positions, Q0) for _, m in h.traj[n_before:]), "did not recover"
        # disable: one hold, then nothing
        n_before = len(h.traj)
        h.enable_pub.publish(Bool(data=False))
        _drive(ex, h, 0.3, Q0, action=[0.0, 1.0, 0.0, 1.0])
        t_end = time.monotonic()
        after = h.traj[n_before:]
        holds = [i for i, (_, m) in enumerate(after) if np.allclose(m.points[0].positions, Q0, atol=1e-12)]
        assert holds == [len(after) - 1], "disable must end with one hold"
        assert after[-1][0] < t_end - 0.15, "commands went on after the hold"
        s2r.destroy_node()


def test_sim2real_rejections_are_counted_on_diagnostics_and_position_interface():
    with ros_context() as (ctx, ex):
        latched = _latched_topics()
        # this test is about rejections, not the watchdog: wide timeouts so that a scheduling hiccup
        # of this single-process harness on a loaded machine does not hold or disable the arm
        s2r = Sim2RealNode(context=ctx, parameter_overrides=_params(
            "sim2real.yaml", start_enabled=True, command_interface="position", action_timeout_periods=40.0,
            joint_state_timeout_periods=40.0, action_watchdog_disables=False, **latched))
        ex.add_node(s2r)
        h = Harness(ctx, ex, latched)
        _drive(ex, h, 0.3, Q0, action=[0.0, 0.0, 0.5, 0.0])
        assert len(h.pos) > 3 and len(h.pos[-1][1].data) == 7 and h.traj == []
        bad_actions = [[math.nan, 0, 0, 0], [0.0, 0.0, 0.0], [math.inf, 0, 0, 0, 0], [5.0, 0, 0, 0]]
        for a in bad_actions:
            h.action(a)
            ex.spin_once(timeout_sec=0.01)
        h.joint_state(Q0, names=NAMES[:6] + ["joint_x"])
        bad_q = Q0.copy()
        bad_q[2] = math.nan
        h.joint_state(bad_q)
        stale = JointState(name=NAMES, position=[float(v) for v in Q0])
        stale.header.stamp = (h.node.get_clock().now() - rclpy_duration(1.0)).to_msg()
        h.js_pub.publish(stale)

        def counted():
            d = h.last_diag("sim2real")
            if d is None:
                return False
            v = d[2]
            return (int(v["rejected.action_not_finite"]) == 1 and int(v["rejected.action_wrong_size"]) == 2
                    and int(v["rejected.action_out_of_range"]) == 1 and int(v["rejected.joint_state_wrong_names"]) == 1
                    and int(v["rejected.joint_state_not_finite"]) == 1
                    and int(v["rejected.joint_state_stale"]) >= 1)  # load may delay a harness message too
        assert spin_until(ex, counted, 3.0), h.last_diag("sim2real")
        level, text, values = h.last_diag("sim2real")
        assert int(values["rejected_total"]) >= 7 and "rejected" in text
        # every command that left was inside the soft joint limits
        lim_lo = MODEL.lower + PARAMS["position_margin"]
        lim_hi = MODEL.upper - PARAMS["position_margin"]
        for _, m in h.pos:
            q = np.array(m.data)
            assert np.all(q >= lim_lo) and np.all(q <= lim_hi)
        s2r.destroy_node()


def rclpy_duration(seconds):
    from rclpy.duration import Duration
    return Duration(seconds=seconds)


def test_real2sim_publishes_labelled_observations_and_stops_on_stale_input():
    with ros_context() as (ctx, ex):
        latched = _latched_topics()
        r2s = Real2SimNode(context=ctx, parameter_overrides=_params("real2sim.yaml", binding_topic=latched["binding_topic"]))
        ex.add_node(r2s)
        h = Harness(ctx, ex, latched)
        _drive(ex, h, 0.3, Q0, world=True)
        assert h.obs == [], "observation without a binding"
        assert spin_until(ex, lambda: h.last_diag("real2sim") is not None and "binding" in h.last_diag("real2sim")[1], 2.0)
        h.binding_pub.publish(String(data=json.dumps({"skill": "reach-v3", "objects": ["object"], "goal": None,
                                                      "goal_object": "goal", "quat_order": "xyzw"})))
        _drive(ex, h, 0.8, Q0, world=True)
        assert len(h.obs) > 10
        obs = msg_to_observation(h.obs[-1][1], METAWORLD39)
        np.testing.assert_allclose(METAWORLD39.get(obs, "hand_pos"), [0.0, 0.6, 0.2], atol=1e-4)
        np.testing.assert_allclose(METAWORLD39.get(obs, "object1_pos"), [0.05, 0.7, 0.02], atol=1e-7)
        np.testing.assert_allclose(METAWORLD39.get(obs, "goal_pos"), [0.0, 0.85, 0.1], atol=1e-7)
        assert METAWORLD39.get(obs, "gripper_opening")[0] == pytest.approx(1.0)
        # rate: decimated to the policy period (joint states published as fast as this loop runs)
        t0 = time.monotonic()
        n0 = len(h.obs)
        _drive(ex, h, 1.0, Q0, world=True)
        rate_s = (time.monotonic() - t0) / max(1, len(h.obs) - n0)
        assert PERIOD * 0.75 <= rate_s, f"observations every {rate_s * 1e3:.1f} ms, faster than the policy period"
        # joint states stop: observations stop, /diagnostics names the stale input
        n = len(h.obs)
        t_stop = time.monotonic()
        _drive(ex, h, 0.4, Q0, world=True, joint_states=False)
        # a joint state still in flight at the stop may make one more observation while younger than
        # max_joint_state_age_s (0.1 s); none after that
        late = [t for t, _ in h.obs[n:] if t > t_stop + PARAMS["max_joint_state_age_s"] + 0.05]
        assert late == [], f"{len(late)} observations while joint states were missing"
        assert spin_until(ex, lambda: "joint_states" in h.last_diag("real2sim")[1], 2.0)
        assert h.last_diag("real2sim")[0] == bytes([2])  # ERROR
        _drive(ex, h, 0.3, Q0, world=True)
        assert len(h.obs) > n + 5, "observations did not resume"
        r2s.destroy_node()


def test_real2sim_tracks_the_data_names_and_subscribes_to_a_name_only_a_binding_reads():
    """No hand-kept list: real2sim subscribes to every tracked name of the skill and scene data, and a binding naming
    an object no scene file knows (a real cell's) gets its pose subscribed when the binding arrives."""
    from legion_policy.skills import tracked_names

    with ros_context() as (ctx, ex):
        latched = _latched_topics()
        r2s = Real2SimNode(context=ctx, parameter_overrides=_params("real2sim.yaml", binding_topic=latched["binding_topic"]))
        ex.add_node(r2s)
        assert set(tracked_names()) <= r2s._subscribed and "mug" not in r2s._subscribed
        h = Harness(ctx, ex, latched)
        mug = h.node.create_publisher(PoseStamped, "/objects/mug/pose", STREAM_QOS)
        h.binding_pub.publish(String(data=json.dumps({"skill": "push-v3", "objects": ["mug"], "goal": [0.0, 0.8, 0.05],
                                                      "goal_object": None, "quat_order": "xyzw"})))
        assert spin_until(ex, lambda: "mug" in r2s._subscribed, 2.0)
        end = time.monotonic() + 3.0
        while time.monotonic() < end and len(h.obs) < 5:
            h.world()
            m = h.stamp(PoseStamped())
            m.header.frame_id = "sim_world"
            m.pose.position.x, m.pose.position.y, m.pose.position.z = 0.1, 0.7, 0.03
            m.pose.orientation.w = 1.0
            mug.publish(m)
            h.joint_state(Q0)
            ex.spin_once(timeout_sec=0.005)
        assert len(h.obs) >= 5, "no observations once the binding's own object was subscribed"
        obs = msg_to_observation(h.obs[-1][1], METAWORLD39)
        np.testing.assert_allclose(METAWORLD39.get(obs, "object1_pos"), [0.1, 0.7, 0.03], atol=1e-7)
        r2s.destroy_node()
