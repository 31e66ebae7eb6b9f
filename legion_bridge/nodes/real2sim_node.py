"""real2sim node: joint states + gripper state + object poses + binding -> /legion/observation,
thin shell around :class:`legion_bridge.real2sim.Real2SimCore`.

Tracked objects: every name of the skill and scene data (``legion_policy.skills.tracked_names``: the single-task
scenes' ``object``/``goal`` and each config/scenes/ file's names), plus ``tracked_objects``, plus any name a binding
reads that is not yet subscribed (a real-arm scene without a scene file; its first poses may take a moment).

Observations are published when a joint state arrives and a policy period has passed since
the last one (phase-locked to the period, so the observation carries the newest arm state);
a timer every period checks staleness: while any needed input is too old, nothing is
published and /diagnostics says which input is stale.
"""
from __future__ import annotations

import sys

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, String

from legion_bridge.node_params import REAL2SIM
from legion_bridge.nodes.bridge_params import ModelOf, hand_frames, joint_names, policy_period, stamp_s
from legion_bridge.real2sim import Real2SimConfig, Real2SimCore
from legion_bridge.robot.urdf_model import GRIPPER_GAP_JOINT
from legion_policy.agent_format import AgentFormatError, read_agent_layout
from legion_policy.nodes.parameters import declare_all
from legion_policy.observation_layout import LAYOUTS, get_layout
from legion_policy.skills import tracked_names
from legion_policy.ros_io import (ERROR, LATCHED_QOS, OK, STREAM_QOS, WARN, diagnostic_array, diagnostic_status,
                                  observation_to_msg, run_node)

#: an observation is due when a joint state is at most this fraction of a period early
PHASE_TOLERANCE_PERIODS = 0.25


def _inputs(stale: list[str]) -> list[str]:
    return [s.split(":")[0] for s in stale]


class Real2SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("real2sim", **kwargs)
        model = ModelOf()
        p = declare_all(self, REAL2SIM, arm_joint_names=model.joint_names)
        hand = hand_frames(p, model(p))
        self.period = policy_period(p)
        cfg = Real2SimConfig(period_s=self.period, **p.pick(
            "max_joint_state_age_s", "max_gripper_age_s", "max_object_age_s", "max_future_stamp_s",
            "gripper_gap_scale", "gripper_gap_offset_m", "restart_after_periods"))
        agent_path, layout_name = p.agent_path, p.layout
        if agent_path:
            try:
                self.layout = read_agent_layout(agent_path)
            except AgentFormatError as exc:
                raise ValueError(f"agent {agent_path}: {exc}") from None
        elif layout_name in LAYOUTS:
            self.layout = get_layout(layout_name)
        else:
            raise ValueError(f"unknown observation layout {layout_name!r}; known: {sorted(LAYOUTS)}")
        names = joint_names(p, hand.kin.model)  # the driver's names, A1..A7
        self.core = Real2SimCore(hand, self.layout, cfg, names.driver, GRIPPER_GAP_JOINT)
        if p.default_binding and not self.core.on_binding(p.default_binding):
            raise ValueError(f"default_binding: {self.core.last_rejection}")
        objects = list(dict.fromkeys([*tracked_names(), *p.tracked_objects]))
        js_topic, grip_topic, prefix = p.joint_states_topic, p.gripper_state_topic, p.object_pose_prefix
        obs_topic, binding_topic = p.observation_topic, p.binding_topic
        # what each input of the core is called on the graph (diagnostics name the topic to check)
        self._input_topics = {"joint_states": js_topic, "gripper": grip_topic,
                              "binding": f"{binding_topic} (publish a task or start a sequence)"}
        self._prefix = prefix
        self.obs_pub = self.create_publisher(Float32MultiArray, obs_topic, STREAM_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(JointState, js_topic, self._on_joint_state, STREAM_QOS)
        self.create_subscription(JointState, grip_topic, self._on_gripper, STREAM_QOS)
        self.create_subscription(String, binding_topic, self._on_binding, LATCHED_QOS)
        self._subscribed: set[str] = set()
        for name in objects + [n for n in (self.core.binding.needed if self.core.binding else ()) if n not in objects]:
            self._subscribe(name)
        self.create_timer(self.period, self._on_tick)
        self.create_timer(float(p.diagnostics_period_s), self.publish_diagnostics)
        self._next_due: float | None = None
        self._stale: list[str] = []
        self._rejected_seen = 0
        self.get_logger().info(f"real2sim: {hand.kin.model.name}, layout {self.layout.name}, period "
                               f"{self.period * 1e3:.1f} ms, objects {objects}")

    def _subscribe(self, name: str) -> None:
        topic = f"{self._prefix.rstrip('/')}/{name}/pose"
        self._input_topics[f"object {name}"] = topic
        self.create_subscription(PoseStamped, topic, lambda m, n=name: self._on_pose(n, m), STREAM_QOS)
        self._subscribed.add(name)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ callbacks
    def _on_joint_state(self, msg: JointState) -> None:
        t = stamp_s(msg.header.stamp)
        if self.core.on_joint_state(msg.name, msg.position, t):
            due = self._next_due
            if due is None or t >= due - PHASE_TOLERANCE_PERIODS * self.period:
                self._next_due = due + self.period if due is not None and t - due < self.period else t + self.period
                self._publish()
        self._check_rejections()

    def _on_gripper(self, msg: JointState) -> None:
        self.core.on_gripper_state(msg.name, msg.position, stamp_s(msg.header.stamp))
        self._check_rejections()

    def _on_pose(self, name: str, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        self.core.on_object_pose(name, msg.header.frame_id, (p.x, p.y, p.z), (o.x, o.y, o.z, o.w),
                                 stamp_s(msg.header.stamp))
        self._check_rejections()

    def _on_binding(self, msg: String) -> None:
        if self.core.on_binding(msg.data):
            self.get_logger().info(f"binding: {msg.data}")
            for name in self.core.binding.needed:
                if name not in self._subscribed:
                    self.get_logger().info(f"binding reads {name!r}: subscribing to its pose")
                    self._subscribe(name)
        self._check_rejections()

    def _on_tick(self) -> None:
        """Staleness watch: reports (once per change) when observations stop or resume."""
        stale = self.core.stale_inputs(self._now())
        if _inputs(stale) != _inputs(self._stale):  # which inputs, not their ages, changed
            if stale:
                self.get_logger().warning(f"observations stopped, stale: {'; '.join(stale)}", throttle_duration_sec=1.0)
            elif self._stale:
                self.get_logger().info("observations resumed")
            self._stale = stale
            self.publish_diagnostics()

    # ------------------------------------------------------------------ output
    def _publish(self) -> None:
        obs = self.core.observe(self._now())
        if isinstance(obs, list):
            if _inputs(obs) != _inputs(self._stale):
                self._stale = obs
                self.publish_diagnostics()
            return
        self._stale = []
        self.obs_pub.publish(observation_to_msg(self.layout, obs))

    def _check_rejections(self) -> None:
        total = sum(self.core.rejections.values())
        if total != self._rejected_seen:
            self._rejected_seen = total
            self.get_logger().warning(f"rejected ({total} so far): {self.core.last_rejection}", throttle_duration_sec=1.0)
            self.publish_diagnostics()

    def publish_diagnostics(self) -> None:
        st = self.core.status()
        never = [item for item in self._stale if "never received" in item or "none received" in item]
        if never and len(never) == len(self._stale):  # nothing went stale: inputs not there yet
            waiting = [self._input_topics.get(item.split(":")[0], item.split(":")[0]) for item in never]
            level, text = WARN, "waiting for " + ", ".join(waiting)
        elif self._stale:
            level, text = ERROR, "stale: " + "; ".join(self._stale)
        else:
            level, text = OK, f"publishing {self.layout.name}"
        if st["rejected_total"]:
            text += f"; {st['rejected_total']} rejected, last {st['last_rejection']}"
            level = WARN if level == OK else level
        st["stale"] = "; ".join(self._stale)
        self.diag_pub.publish(diagnostic_array(self, diagnostic_status("real2sim", "legion_bridge", level, text, st)))


def main(args=None) -> int:
    return run_node(Real2SimNode, args, "real2sim")


if __name__ == "__main__":
    sys.exit(main())
