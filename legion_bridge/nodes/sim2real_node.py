"""sim2real node: /legion/action -> safe joint commands (+ gripper command), thin shell around
:class:`legion_bridge.sim2real.Sim2RealCore`.

Subscribes: joint states, actions, /legion/enable (latched), /legion/binding (latched: the step's
finger yaw). Publishes: a one-point
trajectory_msgs/JointTrajectory (time_from_start = command horizon) on the JTC topic, or a
std_msgs/Float64MultiArray on the position command topic (``command_interface``), the
gripper command (std_msgs/Float64), and /diagnostics with every rejection counter.
Commands are computed when an action arrives; a timer every policy period runs the watchdog.
"""
from __future__ import annotations

import math
import sys

from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float32MultiArray, Float64, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from legion_bridge.node_params import COMMAND_INTERFACES, SIM2REAL
from legion_bridge.nodes.bridge_params import ModelOf, hand_frames, joint_names, policy_period, stamp_s
from legion_bridge.safety import SafetyLimits
from legion_bridge.sim2real import Command, Sim2RealConfig, Sim2RealCore
from legion_policy.nodes.parameters import declare_all
from legion_policy.ros_io import (ERROR, LATCHED_QOS, OK, STREAM_QOS, WARN, diagnostic_array, diagnostic_status,
                                  run_node, subscribe_command)


class Sim2RealNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim2real", **kwargs)
        model = ModelOf()
        p = declare_all(self, SIM2REAL, arm_joint_names=model.joint_names)
        hand = hand_frames(p, model(p))
        period = policy_period(p)
        cfg = Sim2RealConfig(period_s=period, horizon_s=period * float(p.command_horizon_periods), **p.pick(
            "target_base", "max_target_lead_m", "action_timeout_periods", "joint_state_timeout_periods",
            "ik_position_tolerance_m", "action_watchdog_disables", "reference_lead_s", "finger_yaw_rate_deg_s",
            "finger_yaw_acceleration_deg_s2"))
        limit_params = p.pick("acceleration_limits", "position_margin", "velocity_scale", "box_tolerance_m",
                              "max_joint_state_age_s", "max_future_stamp_s", "measured_limit_tolerance")
        limits = SafetyLimits.from_model(hand.kin.model, hand.calibration.workspace_min,
                                         hand.calibration.workspace_max, limit_params)
        self.interface = p.command_interface
        if self.interface not in COMMAND_INTERFACES:
            raise ValueError(f"command_interface must be one of {COMMAND_INTERFACES}, got {self.interface!r}")
        enabled = bool(p.start_enabled)
        self.core = Sim2RealCore(hand, limits, cfg, enabled=enabled)
        self.names = joint_names(p, hand.kin.model)  # the driver's names on its topics
        self.joint_names = list(self.names.driver)

        self.enable_topic = p.enable_topic
        if self.interface == "trajectory":
            self.cmd_pub = self.create_publisher(JointTrajectory, p.joint_trajectory_topic, 10)
        else:
            self.cmd_pub = self.create_publisher(Float64MultiArray, p.position_command_topic, 10)
        self.grip_pub = self.create_publisher(Float64, p.gripper_command_topic, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(JointState, p.joint_states_topic, self._on_joint_state, STREAM_QOS)
        self.create_subscription(Float32MultiArray, p.action_topic, self._on_action, STREAM_QOS)
        subscribe_command(self, Bool, p.enable_topic, self._on_enable)  # latched publishers and `ros2 topic pub`
        self.create_subscription(String, p.binding_topic, self._on_binding, LATCHED_QOS)
        # observations only tell the watchdog whether the policy or its input stalled
        self.create_subscription(Float32MultiArray, p.observation_topic,
                                 lambda _m: self.core.on_observation(self._now()), STREAM_QOS)
        self.create_timer(period, self._on_tick)
        self.create_timer(float(p.diagnostics_period_s), self.publish_diagnostics)
        self._rejected_seen = 0
        self.get_logger().info(
            f"sim2real: {hand.kin.model.name}, {self.interface} commands, period {period * 1e3:.1f} ms, horizon "
            f"{cfg.horizon_s * 1e3:.1f} ms, target base {cfg.target_base}, "
            f"{'ENABLED' if enabled else 'disabled until ' + self.enable_topic + ' is true'}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ callbacks
    def _on_joint_state(self, msg: JointState) -> None:
        names = msg.name if self.names.identity else self.names.to_model(msg.name)
        self.core.on_joint_state(names, msg.position, stamp_s(msg.header.stamp), self._now())
        self._after_input()

    def _on_action(self, msg: Float32MultiArray) -> None:
        self._send(self.core.on_action(list(msg.data), self._now()))
        self._after_input()

    def _on_enable(self, msg: Bool) -> None:
        was = self.core.enabled
        self._send(self.core.set_enabled(bool(msg.data), self._now()))
        if was != self.core.enabled:
            self.get_logger().warning(f"motion {'ENABLED' if self.core.enabled else 'disabled'}")
            self.publish_diagnostics()

    def _on_binding(self, msg: String) -> None:
        before = self.core.yaw_goal
        problem = self.core.on_binding(msg.data)
        if problem is not None:
            self.get_logger().error(f"binding refused, finger yaw kept at {math.degrees(before):.1f} deg: {problem}")
            self.publish_diagnostics()
        elif self.core.yaw_goal != before:
            self.get_logger().info(f"finger yaw goal {math.degrees(before):.1f} -> {math.degrees(self.core.yaw_goal):.1f} deg")

    def _on_tick(self) -> None:
        was = self.core.enabled
        cmd = self.core.tick(self._now())
        if cmd is not None:
            self.get_logger().warning(f"hold: {cmd.reason}")
        if was and not self.core.enabled:
            self.get_logger().warning(f"motion disabled by the watchdog: publish true on {self.enable_topic} to resume")
            self.publish_diagnostics()
        self._send(cmd)
        self._after_input()

    def _after_input(self) -> None:
        """Rejections show up on /diagnostics at once (and in the log, throttled)."""
        total = self.core.counter.total
        if total != self._rejected_seen:
            self._rejected_seen = total
            last = self.core.counter.last
            self.get_logger().warning(f"rejected ({total} so far): {last[0]}: {last[1]}", throttle_duration_sec=1.0)
            self.publish_diagnostics()

    # ------------------------------------------------------------------ output
    def _send(self, cmd: Command | None) -> None:
        if cmd is None:
            return
        q = [float(v) for v in cmd.q]
        if self.interface == "trajectory":
            msg = JointTrajectory()
            msg.joint_names = self.joint_names  # header stamp 0: start now (JTC semantics)
            sec = int(cmd.horizon_s)
            msg.points = [JointTrajectoryPoint(positions=q, time_from_start=Duration(
                sec=sec, nanosec=int(round((cmd.horizon_s - sec) * 1e9))))]
        else:
            msg = Float64MultiArray(data=q)
        self.cmd_pub.publish(msg)
        if cmd.gripper is not None:
            self.grip_pub.publish(Float64(data=float(cmd.gripper)))

    def publish_diagnostics(self) -> None:
        st = self.core.status()
        if not st["enabled"]:
            level, text = WARN, "disabled: nothing moves"
        elif st["holding"]:
            level, text = WARN, "holding"
        else:
            level, text = OK, "moving"
        if st["rejected_total"]:
            text += f"; {st['rejected_total']} rejected, last {st['last_rejection']}"
            if level == OK:
                level = WARN
        if self.core.counter.last and self.core.counter.last[0] in ("ik_failed", "outside_workspace",
                                                                    "command_out_of_limits", "command_too_fast"):
            level = ERROR if st["holding"] else level
        self.diag_pub.publish(diagnostic_array(self, diagnostic_status("sim2real", "legion_bridge", level, text, st)))


def main(args=None) -> int:
    return run_node(Sim2RealNode, args, "sim2real")


if __name__ == "__main__":
    sys.exit(main())
