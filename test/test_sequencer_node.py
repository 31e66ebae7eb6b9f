"""Sequencer node over real rclpy with a scripted observation source (a world that observes like
real2sim from /legion/binding and moves while the matching skill is active): step transitions,
timeout handling, the report, the process exit status."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, Float32MultiArray, String

from legion_policy.nodes.sequencer_node import SequencerNode
from legion_policy.observation_layout import METAWORLD39
from legion_policy.ros_io import LATCHED_QOS, STREAM_QOS, NodeStartError, observation_to_msg
from policy_agents import make_agent
from rosutil import ros_context, spin_until
from seq_world import ScriptedWorld

pytestmark = pytest.mark.ros
OBS_PERIOD_S = 0.01

SEQUENCE = {"name": "node-test", "k_consecutive": 3, "timeout_s": 8.0, "settle_s": 0.05, "steps": [
    {"name": "reach", "skill": "reach-v3", "binding": {"objects": ["puck"], "goal_object": "reach_goal"}},
    {"name": "push", "instruction": "push the puck to the goal",
     "binding": {"objects": ["puck"], "goal_object": "push_goal"}, "timeout_s": 1.5},
    {"name": "press", "skill": "button-press-topdown-v3",
     "binding": {"objects": ["button"], "goal_object": "button_goal", "quat_order": "wxyz"}},
]}


@pytest.fixture(scope="module")
def agent_path(tmp_path_factory):
    return make_agent(tmp_path_factory.mktemp("seqnode") / "agent")[0]


class Source:
    """Test-side node: the scripted world publishing observations, recording what the sequencer sends."""

    def __init__(self, ctx, world: ScriptedWorld | None, listen_enable: bool = True):
        self.node = rclpy.create_node("scripted_observation_source", context=ctx)
        self.world = world
        self.tasks, self.bindings, self.enables, self.diags = [], [], [], []
        self.node.create_subscription(String, "/legion/task", self._task, LATCHED_QOS)
        self.node.create_subscription(String, "/legion/binding", self._binding, LATCHED_QOS)
        if listen_enable:
            self.listen_enable()
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 10)
        self.pub = self.node.create_publisher(Float32MultiArray, "/legion/observation", STREAM_QOS)
        if world is not None:
            self.node.create_timer(OBS_PERIOD_S, self._tick)

    def listen_enable(self):
        """Subscribe to /legion/enable (like sim2real)."""
        self.node.create_subscription(Bool, "/legion/enable", lambda m: self.enables.append(m.data), LATCHED_QOS)

    def _task(self, msg):
        self.tasks.append(msg.data)
        if self.world:
            self.world.task = msg.data

    def _binding(self, msg):
        b = json.loads(msg.data)
        self.bindings.append(b)
        if self.world:
            self.world.binding = b

    def _tick(self):
        if self.world.binding is None:       # like real2sim: no observation before a binding
            return
        self.pub.publish(observation_to_msg(METAWORLD39, self.world.observe()))
        self.world.step()


def _dedup(xs):
    return [x for i, x in enumerate(xs) if i == 0 or x != xs[i - 1]]


def _sequencer(ctx, agent_path, tmp_path, doc=None, **params):
    overrides = [Parameter("agent_path", value=str(agent_path)), Parameter("report_dir", value=str(tmp_path)),
                 Parameter("exit_on_finish", value=False), Parameter("diagnostics_period_s", value=0.1)]
    params.setdefault("wait_for_policy", False)      # no policy node in these tests unless said
    if doc is not None:
        seq_file = tmp_path / "sequence.yaml"
        seq_file.write_text(yaml.safe_dump(doc))
        overrides.append(Parameter("sequence_file", value=str(seq_file)))
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return SequencerNode(context=ctx, parameter_overrides=overrides)


def test_sequence_transitions_and_report(agent_path, tmp_path):
    with ros_context() as (ctx, ex):
        src = Source(ctx, ScriptedWorld(speed_m_per_obs=0.01))
        node = _sequencer(ctx, agent_path, tmp_path, SEQUENCE)
        ex.add_node(src.node)
        ex.add_node(node)
        assert spin_until(ex, lambda: node.runner.finished, 30.0), node.runner.progress()
        assert spin_until(ex, lambda: src.enables and src.tasks[-1] == "stop", 2.0)
        assert _dedup(src.tasks) == ["reach-v3", "push the puck to the goal", "button-press-topdown-v3", "stop"]
        skills = [b["skill"] for b in _dedup(src.bindings)]
        assert skills == ["reach-v3", "push-v3", "button-press-topdown-v3"]
        assert _dedup(src.bindings)[2] == {"skill": "button-press-topdown-v3", "objects": ["button"], "goal": None,
                                           "goal_object": "button_goal", "quat_order": "wxyz",
                                           "finger_yaw_deg": 0.0}
        assert src.enables == [False]        # never enables by itself, disables at the end
        # the world really reached every goal
        assert np.linalg.norm(src.world.pos["puck"] - src.world.pos["push_goal"]) <= 0.05
        # progress went through every step on /diagnostics
        messages = {d.status[0].message.split(":")[0] for d in src.diags if d.status}
        assert {"step 1/3", "step 2/3", "step 3/3"} <= messages
        assert node.exit_status == 0
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["success"] and report["sequence"] == "node-test" and report["agent"] == str(agent_path)
        assert [r["status"] for r in report["steps"]] == ["succeeded"] * 3
        for r in report["steps"]:
            assert r["time_s"] > 0 and r["steps"] >= 3 and r["final_distance"] <= r["threshold"]
        assert report["steps"][1]["similarity"] > 0.9       # instruction text == the skill's instruction
        ex.remove_node(node)
        node.destroy_node()
        src.node.destroy_node()


def test_timeout_stops_safely_and_reports(agent_path, tmp_path):
    with ros_context() as (ctx, ex):
        src = Source(ctx, ScriptedWorld(stuck=("push-v3",)))
        node = _sequencer(ctx, agent_path, tmp_path, SEQUENCE)
        ex.add_node(src.node)
        ex.add_node(node)
        assert spin_until(ex, lambda: node.runner.finished, 30.0), node.runner.progress()
        assert spin_until(ex, lambda: src.enables == [False] and src.tasks[-1] == "stop", 2.0)
        assert _dedup(src.tasks) == ["reach-v3", "push the puck to the goal", "stop"]
        assert node.exit_status == 1
        report = json.loads((tmp_path / "report.json").read_text())
        assert not report["success"] and report["status"] == "failed"
        assert [r["status"] for r in report["steps"]] == ["succeeded", "timeout", "not_run"]
        assert report["steps"][1]["time_s"] == pytest.approx(1.5, abs=0.2)
        assert "timed out" in report["reason"]
        assert spin_until(ex, lambda: src.diags and src.diags[-1].status[0].level == b"\x02", 2.0)
        ex.remove_node(node)
        node.destroy_node()
        src.node.destroy_node()


def test_no_observation_fails_and_bad_inputs_refuse_to_start(agent_path, tmp_path):
    with ros_context() as (ctx, ex):
        node = _sequencer(ctx, agent_path, tmp_path, task="push-v3", wait_for_observation_s=0.3)
        ex.add_node(node)
        assert spin_until(ex, lambda: node.runner.finished, 5.0)
        assert node.exit_status == 1 and "no valid observation within 0.3 s" in node.runner.reason
        ex.remove_node(node)
        node.destroy_node()
        with pytest.raises(NodeStartError, match=r"step 2: the agent has no skill 'fly-v3'"):
            _sequencer(ctx, agent_path, tmp_path, {"steps": [{"skill": "push-v3"}, {"skill": "fly-v3"}]})
        with pytest.raises(NodeStartError, match="nothing to run"):
            _sequencer(ctx, agent_path, tmp_path)
        with pytest.raises(NodeStartError, match=r"refusing agent .*missing file: agent directory"):
            _sequencer(ctx, tmp_path / "no-agent", tmp_path, task="push-v3")


@pytest.mark.parametrize("solvable,expected_rc", [(True, 0), (False, 1)])
def test_process_exit_status_follows_the_result(agent_path, tmp_path, solvable, expected_rc):
    exe = Path(sys.executable).parent / "legion_sequencer"
    proc = subprocess.Popen([str(exe), "--ros-args", "-p", f"agent_path:={agent_path}", "-p", "task:=push-v3",
                             "-p", f"report_dir:={tmp_path}", "-p", "timeout_s:=1.0", "-p", "settle_s:=0.0",
                             "-p", "wait_for_policy:=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        with ros_context() as (ctx, ex):
            node = rclpy.create_node("exit_test_source", context=ctx)
            pub = node.create_publisher(Float32MultiArray, "/legion/observation", STREAM_QOS)
            obs = np.zeros(METAWORLD39.size)
            obs[METAWORLD39.slice("goal_pos")] = [0.0, 0.8, 0.02]
            obs[METAWORLD39.slice("object1_pos")] = [0.0, 0.8 if solvable else 0.6, 0.02]
            node.create_timer(0.02, lambda: pub.publish(observation_to_msg(METAWORLD39, obs)))
            ex.add_node(node)
            assert spin_until(ex, lambda: proc.poll() is not None, 45.0), "sequencer did not exit"
            node.destroy_node()
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    assert proc.returncode == expected_rc, out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["success"] is solvable
    assert ("SUCCEEDED" if solvable else "FAILED") in out      # the printed table


def test_shutdown_before_the_end_still_writes_a_failed_report(agent_path, tmp_path):
    with ros_context() as (ctx, _):
        node = _sequencer(ctx, agent_path, tmp_path, task="push-v3")
        node.destroy_node()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["success"] is False and "interrupted" in report["reason"]
    assert [s["status"] for s in report["steps"]] == ["not_run"]


def _assert_step_clock_waits(ex, node, src, tmp_path, waiting_for: str, release, start_within_s: float) -> None:
    """The single 0.5 s step stays pending over 1 s of observations, /diagnostics says ``waiting_for``;
    after ``release()`` it starts within ``start_within_s``, and its timeout is counted from then."""
    ex.add_node(src.node)
    ex.add_node(node)
    spin_until(ex, lambda: False, 1.0)       # 1 s of observations, longer than the step timeout
    assert node.observed and node.runner.status == "pending"
    assert src.diags and waiting_for in src.diags[-1].status[0].message
    release()
    assert spin_until(ex, lambda: node.runner.status == "running", start_within_s)
    assert spin_until(ex, lambda: node.runner.finished, 3.0)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["steps"][0]["status"] == "timeout"
    assert report["steps"][0]["time_s"] == pytest.approx(0.5, abs=0.2)   # counted from the release
    ex.remove_node(node)
    node.destroy_node()
    src.node.destroy_node()


ONE_STUCK_STEP = {"timeout_s": 0.5, "steps": [{"skill": "reach-v3",
                                               "binding": {"objects": ["puck"], "goal_object": "reach_goal"}}]}


def test_step_clock_waits_for_the_policy(agent_path, tmp_path):
    """Observations flow long before a slow policy is up: the first step starts with its first action."""
    with ros_context() as (ctx, ex):
        src = Source(ctx, ScriptedWorld(stuck=("reach-v3",)))
        node = _sequencer(ctx, agent_path, tmp_path, ONE_STUCK_STEP, wait_for_policy=True)
        action_pub = src.node.create_publisher(Float32MultiArray, "/legion/action", STREAM_QOS)
        _assert_step_clock_waits(ex, node, src, tmp_path, "waiting for the policy",
                                 lambda: action_pub.publish(Float32MultiArray(data=[0.0, 0.0, 0.0, 0.0])), 2.0)


def test_enable_on_start_waits_until_the_enable_reaches_a_subscriber(agent_path, tmp_path):
    """Enabling on start (benches): the step clock must not run while no one (sim2real) hears the enable,
    else the arm starts late and the step is short by the discovery time."""
    with ros_context() as (ctx, ex):
        src = Source(ctx, ScriptedWorld(stuck=("reach-v3",)), listen_enable=False)
        node = _sequencer(ctx, agent_path, tmp_path, ONE_STUCK_STEP, enable_on_start=True)
        _assert_step_clock_waits(ex, node, src, tmp_path, "subscriber (sim2real) on the enable topic",
                                 src.listen_enable, 3.0)
        assert src.enables[:1] == [True], src.enables      # the enable reached the late subscriber first
