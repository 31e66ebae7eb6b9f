"""sequencer: runs a long-horizon sequence of skills (thin shell around :class:`SequenceRunner`).

At start it validates the agent (skills, success predicates, layout from its manifest) and
resolves the sequence (``sequence_file``, or the single step ``task``), then publishes the
first step's task and binding (latched) so that real2sim and the policy can start. The step
clock starts at the first valid observation once the policy has published an action
(``wait_for_policy``) and, with ``enable_on_start``, once the enable topic reaches a
subscriber (sim2real): a new publisher is matched only after discovery, hundreds of
milliseconds in, and a latched enable then arrives late while the step clock already runs.
Each observation is judged with the step's
success predicate; after ``k_consecutive`` successes the next step's task and binding go
out. On a timeout (or no observation within ``wait_for_observation_s``) the run fails:
``stop`` on the task topic (the policy outputs zero actions) and ``false`` on the enable
topic. At the end (success too) the same stop is published, the report is written to
``report_dir``/report.json and printed as a table, and the process exits 0 on success,
1 on failure. Progress goes to /diagnostics.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Bool, Float32MultiArray, String

from legion_policy.agent_format import AgentFormatError, load_agent
from legion_policy.node_params import SEQUENCER
from legion_policy.nodes.parameters import declare_all
from legion_policy.paths import default_agent_path, resolve_sequence_path
from legion_policy.policy import SkillMatcher
from legion_policy.ros_io import (ERROR, LATCHED_QOS, OK, STREAM_QOS, WARN, NodeStartError, diagnostic_array,
                                  diagnostic_status, msg_to_observation, run_node)
from legion_policy.sequencer import (Command, SequenceError, SequenceRunner, format_report_table, load_sequence_file,
                                     single_task_sequence, skills_from_agent, write_report)

REPORT_NAME = "report.json"
EXIT_SUCCEEDED, EXIT_FAILED = 0, 1


def _default_agent_path() -> str:
    """The shipped agent under the package's share folder ('' where none is found: start refused)."""
    try:
        return str(default_agent_path())
    except FileNotFoundError:
        return ""


class SequencerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sequencer", **kwargs)
        p = declare_all(self, SEQUENCER, agent_path=_default_agent_path())
        agent_path, sequence_file, task = p.agent_path, p.sequence_file, p.task
        self.report_dir = p.report_dir
        self.wait_for_observation_s = p.wait_for_observation_s
        self.exit_on_finish, self.exit_delay_s = p.exit_on_finish, p.exit_delay_s
        self.wait_for_policy = p.wait_for_policy

        if not agent_path:
            raise NodeStartError("agent_path is empty: give the frozen agent directory")
        try:
            self.agent = load_agent(agent_path)
        except AgentFormatError as exc:
            raise NodeStartError(f"refusing agent {agent_path}: {exc}") from None
        skills = skills_from_agent(self.agent)
        matcher = SkillMatcher(self.agent.skill_names, self.agent.embedding_matrix(), float(p.similarity_threshold))
        defaults = p.pick("k_consecutive", "timeout_s", "settle_s")
        try:
            if sequence_file:
                seq = load_sequence_file(resolve_sequence_path(sequence_file), skills, matcher, **defaults)
            elif task:
                seq = single_task_sequence(task, skills, matcher, **defaults)
            else:
                raise NodeStartError("nothing to run: set sequence_file or task")
            self.runner = SequenceRunner(seq, self.agent.layout)
        except (SequenceError, ValueError) as exc:
            raise NodeStartError(str(exc)) from None

        self.task_pub = self.create_publisher(String, p.task_topic, LATCHED_QOS)
        self.binding_pub = self.create_publisher(String, p.binding_topic, LATCHED_QOS)
        self.enable_pub = self.create_publisher(Bool, p.enable_topic, LATCHED_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Float32MultiArray, p.observation_topic, self.on_observation, STREAM_QOS)
        self.policy_seen = not self.wait_for_policy
        if self.wait_for_policy:
            self.create_subscription(Float32MultiArray, p.action_topic, self.on_action, STREAM_QOS)
        self.create_timer(float(p.tick_period_s), self.on_tick)
        self.create_timer(float(p.diagnostics_period_s), self.publish_progress)
        self.invalid_observations = 0
        self.observed = False
        self.last_invalid = ""
        self.report_path: Path | None = None
        self.report: dict | None = None
        self._start_wall = time.monotonic()
        self._enable_on_start = bool(p.enable_on_start)
        first = seq.steps[0]
        self._apply(Command(task=first.task, binding=first.binding))   # real2sim needs it to observe
        self.get_logger().info(f"sequence {seq.name!r}: {len(seq.steps)} steps ("
                               + ", ".join(s.skill for s in seq.steps) + "); waiting for observations")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- publishing ------------------------------------------------------------------------------

    def _apply(self, cmd: Command | None) -> None:
        if cmd is None:
            return
        if cmd.binding is not None:
            self.binding_pub.publish(String(data=cmd.binding.to_json()))
        if cmd.task is not None:
            self.task_pub.publish(String(data=cmd.task))
        if cmd.enable is not None:
            self.enable_pub.publish(Bool(data=cmd.enable))
        if cmd.task is not None and not cmd.finished and self.runner.step is not None:
            st = self.runner.step
            self.get_logger().info(f"step {self.runner.current + 1}/{len(self.runner.sequence.steps)}: "
                                   f"{st.name} task {st.task!r} binding {st.binding.to_json()}")
        if cmd.finished:
            self._finish()

    def _finish(self) -> None:
        r = self.runner
        self.report = r.report(agent=str(self.agent.path), invalid_observations=self.invalid_observations)
        if self.report_dir:
            self.report_path = write_report(self.report, self.report_dir, REPORT_NAME)
        table = format_report_table(self.report)
        print(table, flush=True)
        log = self.get_logger().info if r.status == "succeeded" else self.get_logger().error
        log(f"sequence {r.status}" + (f": {r.reason}" if r.reason else "")
            + (f"; report {self.report_path}" if self.report_path else ""))
        self.exit_status = EXIT_SUCCEEDED if r.status == "succeeded" else EXIT_FAILED
        self.publish_progress()
        if self.exit_on_finish:
            self.create_timer(float(self.exit_delay_s), self._exit)

    def _exit(self) -> None:
        raise SystemExit(self.exit_status)

    # --- callbacks ----------------------------------------------------------------------------------

    def on_action(self, _msg: Float32MultiArray) -> None:
        if not self.policy_seen:
            self.policy_seen = True
            self.get_logger().info("policy is publishing actions")

    def on_observation(self, msg: Float32MultiArray) -> None:
        if self.runner.finished:
            return
        try:
            obs = msg_to_observation(msg, self.agent.layout)
        except ValueError as exc:
            self.invalid_observations += 1
            self.last_invalid = str(exc)
            self.get_logger().warning(f"observation rejected: {exc}", throttle_duration_sec=1.0)
            return
        now = self._now()
        self.observed = True
        if now <= 0.0:
            return  # use_sim_time before the first /clock: time 0 would start (and time out) the step wrongly
        if self.runner.status == "pending":
            if not self.policy_seen:
                return                      # the step clock starts when the policy acts
            if self._enable_on_start and self.enable_pub.get_subscription_count() < 1:
                return                      # ... and, enabling on start, when the enable reaches sim2real
            cmd = self.runner.start(now)
            if self._enable_on_start:
                cmd = Command(task=cmd.task, binding=cmd.binding, enable=True)
            self._apply(cmd)
        self._apply(self.runner.on_observation(obs, now))

    def on_tick(self) -> None:
        if self.runner.finished:
            return
        if self.runner.status == "pending":
            if time.monotonic() - self._start_wall > self.wait_for_observation_s:
                what = ("valid observation" if not self.observed else "action from the policy" if not self.policy_seen
                        else f"subscriber (sim2real) on {self.enable_pub.topic_name}")
                self._apply(self.runner.abort(f"no {what} within {self.wait_for_observation_s:g} s"
                                              + (f" (last rejected observation: {self.last_invalid})"
                                                 if self.last_invalid else ""), self._now()))
            return
        now = self._now()
        if now > 0.0:  # no clock yet (use_sim_time before /clock): nothing can time out
            self._apply(self.runner.tick(now))

    def publish_progress(self) -> None:
        p = self.runner.progress()
        status = self.runner.status
        level = {"pending": WARN, "running": OK, "succeeded": OK, "failed": ERROR}[status]
        if status == "pending":
            message = ("waiting for the first observation" if not self.observed
                       else "waiting for the policy's first action" if not self.policy_seen
                       else "waiting for a subscriber (sim2real) on the enable topic")
        elif status == "running":
            message = f"step {p['step']}/{p['steps_total']}: {p['skill']} ({p['consecutive']}/{p['k_consecutive']})"
        else:
            message = f"sequence {status}" + (f": {self.runner.reason}" if self.runner.reason else "")
        p["invalid_observations"] = self.invalid_observations
        p["sequence"] = self.runner.sequence.name
        self.diag_pub.publish(diagnostic_array(self, diagnostic_status("sequencer", "legion_sequencer", level,
                                                                       message, p)))

    def destroy_node(self) -> None:
        # interrupted (before or during the run): the report still says what happened. A node whose
        # start was refused (no runner) has nothing to report: rclpy's shutdown destroys it as well.
        runner = getattr(self, "runner", None)
        if runner is not None and not runner.finished:
            was = self.runner.status
            self.runner.abort("interrupted (node shut down)" + (" before the first observation"
                                                                 if was == "pending" else ""), self._now())
            self.report = self.runner.report(agent=str(self.agent.path),
                                             invalid_observations=self.invalid_observations)
            if self.report_dir:
                self.report_path = write_report(self.report, self.report_dir, REPORT_NAME)
        super().destroy_node()


def main(args=None) -> int:
    return run_node(SequencerNode, args, "sequencer")


if __name__ == "__main__":
    sys.exit(main())
