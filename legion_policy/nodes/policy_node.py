"""policy: the frozen LEGION agent as a ROS 2 node (thin shell around :class:`PolicyCore`).

Loads and validates the agent at start (refuses to start with the validator's one-line
reason otherwise), subscribes ``observation_topic`` (labelled Float32MultiArray, checked
against the agent's layout) and ``task_topic`` (skill name / instruction / ``stop``),
publishes the deterministic action on ``action_topic`` for every valid observation
(``publish_on: observation``) or every control period (``publish_on: period``, latest
observation, nothing once it is older than ``observation_timeout_s``), and reports the
active skill and inference time on /diagnostics.

A task that arrives without a binding for its skill (an operator's
``ros2 topic pub --once /legion/task std_msgs/msg/String "data: 'close the drawer'"`` on a graph
without a sequencer) gets the skill's default binding published on ``binding_topic`` after
``default_binding_grace_s``, so real2sim observes the skill's objects.
"""
from __future__ import annotations

import json
import sys
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, String

from legion_policy.agent_format import AgentFormatError, load_agent
from legion_policy.node_params import POLICY, PUBLISH_MODES
from legion_policy.nodes.parameters import declare_all
from legion_policy.paths import default_agent_path
from legion_policy.policy import PolicyCore, TaskSelectionError
from legion_policy.ros_io import (ERROR, LATCHED_QOS, OK, STREAM_QOS, WARN, NodeStartError, array_msg,
                                  diagnostic_array, diagnostic_status, msg_to_observation, run_node,
                                  subscribe_command)
from legion_policy.sequencer import MOVE_TO, skills_from_agent, step_binding

#: Inference times kept for the p50/p99 reported on /diagnostics.
TIMING_WINDOW = 1000


def _default_agent_path() -> str:
    """The shipped agent under the package's share folder ('' where none is found: start refused)."""
    try:
        return str(default_agent_path())
    except FileNotFoundError:
        return ""


class PolicyNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("policy", **kwargs)
        p = declare_all(self, POLICY, agent_path=_default_agent_path())
        agent_path = p.agent_path
        self.publish_on = p.publish_on
        self.observation_timeout_s = p.observation_timeout_s
        self.binding_grace_s = p.default_binding_grace_s
        if self.publish_on not in PUBLISH_MODES:
            raise NodeStartError(f"publish_on {self.publish_on!r} must be one of {PUBLISH_MODES}")
        if not agent_path:
            raise NodeStartError("agent_path is empty: give the frozen agent directory")

        import torch  # noqa: PLC0415
        torch.set_num_threads(max(1, int(p.torch_threads)))
        try:
            self.agent = load_agent(agent_path)
        except AgentFormatError as exc:
            raise NodeStartError(f"refusing agent {agent_path}: {exc}") from None
        self.core = PolicyCore(self.agent, similarity_threshold=float(p.similarity_threshold),
                               trace=bool(p.trace_network))
        if p.preload_language_model:
            self.core.preload_language_model()
        self.labels = list(self.agent.action_spec.names)
        self.task_error = ""
        self.rejected = 0
        self.last_rejection = ""
        self.published = 0
        self.latencies: deque[float] = deque(maxlen=TIMING_WINDOW)
        self._latest: tuple[float, np.ndarray] | None = None

        self.action_pub = self.create_publisher(Float32MultiArray, p.action_topic, STREAM_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Float32MultiArray, p.observation_topic, self.on_observation, STREAM_QOS)
        subscribe_command(self, String, p.task_topic, self.on_task)
        self.skills = skills_from_agent(self.agent)
        self.binding_skill: str | None = None      # the "skill" of the last binding seen on binding_topic
        self._binding_timer = None
        self.binding_pub = self.create_publisher(String, p.binding_topic, LATCHED_QOS)
        self.create_subscription(String, p.binding_topic, self.on_binding, LATCHED_QOS)
        if self.publish_on == "period":
            self.create_timer(self.agent.control_period_s, self.on_period)
        self.create_timer(float(p.diagnostics_period_s), self.report)
        if p.initial_task:
            self._select(p.initial_task)
        self.get_logger().info(f"agent {agent_path}: layout {self.agent.layout.name}, skills "
                               f"{', '.join(self.agent.skill_names)}; network {self.core.trace_note}; "
                               f"active: {self.core.active_skill or 'idle'}")

    # --- callbacks --------------------------------------------------------------------------

    def _select(self, text: str) -> None:
        try:
            m = self.core.select(text)
        except TaskSelectionError as exc:
            self.task_error = str(exc)
            self.get_logger().error(f"{exc}; idle")
            return
        self.task_error = ""
        how = f"by {m.by}" + (f", similarity {m.score:.3f}" if m.by == "instruction" else "")
        self.get_logger().info(f"task {text!r} -> skill {m.skill or 'idle'} ({how})")
        if m.skill and m.skill != MOVE_TO and m.skill != self.binding_skill:
            self._arm_default_binding(m.skill)

    def _arm_default_binding(self, skill: str) -> None:
        """Publish ``skill``'s default binding unless a binding for it arrives within the grace time."""
        if self._binding_timer is not None:
            self.destroy_timer(self._binding_timer)

        def fire() -> None:
            self.destroy_timer(self._binding_timer)
            self._binding_timer = None
            if self.core.active_skill != skill or self.binding_skill == skill:
                return
            try:
                binding = step_binding(skill, self.skills, None, f"default binding of {skill}")
            except ValueError as exc:
                self.task_error = str(exc)
                self.get_logger().error(str(exc))
                return
            self.binding_pub.publish(String(data=binding.to_json()))
            self.get_logger().info(f"no binding for {skill}: published its default binding {binding.to_json()}")

        self._binding_timer = self.create_timer(max(float(self.binding_grace_s), 1e-3), fire)

    def on_task(self, msg: String) -> None:
        self._select(msg.data)

    def on_binding(self, msg: String) -> None:
        try:
            self.binding_skill = json.loads(msg.data).get("skill")
        except (ValueError, AttributeError):
            self.binding_skill = None  # real2sim and sim2real report what is wrong with it

    def on_observation(self, msg: Float32MultiArray) -> None:
        t0 = time.perf_counter()
        try:
            obs = msg_to_observation(msg, self.agent.layout)
        except ValueError as exc:
            self.rejected += 1
            self.last_rejection = str(exc)
            self.get_logger().warning(f"observation rejected: {exc}", throttle_duration_sec=1.0)
            return
        if self.publish_on == "period":
            self._latest = (time.monotonic(), obs)
            return
        self._publish(obs, t0)

    def on_period(self) -> None:
        if self._latest is None or time.monotonic() - self._latest[0] > self.observation_timeout_s:
            return
        self._publish(self._latest[1], time.perf_counter())

    def _publish(self, obs: np.ndarray, t0: float) -> None:
        action = self.core.act(obs)
        self.action_pub.publish(array_msg(action, self.labels))
        self.published += 1
        self.latencies.append(time.perf_counter() - t0)

    def report(self) -> None:
        lat = np.asarray(self.latencies) * 1e3
        p50, p99 = (float(np.percentile(lat, 50)), float(np.percentile(lat, 99))) if lat.size else (np.nan, np.nan)
        m = self.core.last_match
        if self.task_error:
            level, message = ERROR, self.task_error
        elif self.core.active_skill is None:
            level, message = WARN, "idle (no active skill): zero actions"
        else:
            level, message = OK, f"active skill {self.core.active_skill}"
        values = {"active_skill": self.core.active_skill or "", "task": m.text if m else "",
                  "matched_by": m.by if m else "", "similarity": m.score if m else float("nan"),
                  "inference_ms_last": self.core.last_inference_s * 1e3, "latency_ms_p50": p50,
                  "latency_ms_p99": p99, "actions_published": self.published,
                  "observations_rejected": self.rejected, "last_rejection": self.last_rejection,
                  "agent_path": str(self.agent.path), "layout": self.agent.layout.name,
                  "network": self.core.trace_note}
        self.diag_pub.publish(diagnostic_array(self, diagnostic_status("policy", "legion_policy", level, message,
                                                                       values)))


def main(args=None) -> int:
    return run_node(PolicyNode, args, "policy")


if __name__ == "__main__":
    sys.exit(main())
