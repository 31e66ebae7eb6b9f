"""Policy node over real rclpy: exported agent -> node -> actions bit-identical to the in-memory model
on 1,000 recorded Metaworld observations; task switching, diagnostics; corrupt agents refused."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from std_msgs.msg import Float32MultiArray, String

from legion_policy.agent_format import load_agent
from legion_policy.nodes.policy_node import PolicyNode
from legion_policy.observation_layout import COMPACT12, METAWORLD39
from legion_policy.ros_io import LATCHED_QOS, STREAM_QOS, NodeStartError, observation_to_msg
from policy_agents import make_agent, record_observations, reference_actions
from rosutil import ros_context, spin_until
from test_agent_format import CORRUPT_CASES

pytestmark = pytest.mark.ros
N_OBSERVATIONS = 1000


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return make_agent(tmp_path_factory.mktemp("node") / "agent", seed=5)


def _node(ctx, agent_path, **params):
    overrides = [Parameter("agent_path", value=str(agent_path)), Parameter("preload_language_model", value=False)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return PolicyNode(context=ctx, parameter_overrides=overrides)


def test_node_actions_are_bit_identical_on_1000_recorded_observations(exported):
    path, model = exported
    observations = record_observations(N_OBSERVATIONS, seed=7)
    reference = reference_actions(model, observations, load_agent(path).skill("push-v3").embedding)
    with ros_context() as (ctx, ex):
        node = _node(ctx, path, initial_task="push-v3")
        assert node.core.traced        # the default fast path is the one checked here
        client = __import__("rclpy").create_node("policy_test_client", context=ctx)
        received: list[Float32MultiArray] = []
        client.create_subscription(Float32MultiArray, "/legion/action", received.append, STREAM_QOS)
        pub = client.create_publisher(Float32MultiArray, "/legion/observation", STREAM_QOS)
        ex.add_node(node)
        ex.add_node(client)
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0 and
                          node.count_publishers("/legion/observation") > 0, 5.0)
        assert spin_until(ex, lambda: client.count_publishers("/legion/action") > 0, 5.0)
        for i, obs in enumerate(observations):      # lock-step: one observation, one action
            pub.publish(observation_to_msg(METAWORLD39, obs))
            assert spin_until(ex, lambda: len(received) == i + 1, 2.0), f"no action for observation {i}"
        actions = np.array([m.data for m in received], dtype=np.float32)
        assert received[0].layout.dim[0].label == "dx,dy,dz,gripper"
        assert actions.shape == (N_OBSERVATIONS, 4)
        assert np.array_equal(actions, reference), f"{int((actions != reference).any(1).sum())} actions differ"
        assert node.published == N_OBSERVATIONS and node.rejected == 0
        ex.remove_node(node)
        node.destroy_node()
        client.destroy_node()


def test_task_switch_refusal_rejections_and_diagnostics(exported):
    path, model = exported
    obs = record_observations(5, seed=8)
    with ros_context() as (ctx, ex):
        node = _node(ctx, path, diagnostics_period_s=0.1)
        client = __import__("rclpy").create_node("policy_test_client2", context=ctx)
        actions, diags = [], []
        client.create_subscription(Float32MultiArray, "/legion/action", actions.append, STREAM_QOS)
        client.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        obs_pub = client.create_publisher(Float32MultiArray, "/legion/observation", STREAM_QOS)
        task_pub = client.create_publisher(String, "/legion/task", LATCHED_QOS)
        ex.add_node(node)
        ex.add_node(client)
        assert spin_until(ex, lambda: obs_pub.get_subscription_count() > 0 and task_pub.get_subscription_count() > 0, 5)

        def status():
            return {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}

        # idle at start: zero actions, WARN
        obs_pub.publish(observation_to_msg(METAWORLD39, obs[0]))
        assert spin_until(ex, lambda: len(actions) == 1, 2)
        assert list(actions[-1].data) == [0.0] * 4
        # a free-form instruction selects the button skill
        task_pub.publish(String(data="push the button down from above"))
        assert spin_until(ex, lambda: node.core.active_skill == "button-press-topdown-v3", 2)
        obs_pub.publish(observation_to_msg(METAWORLD39, obs[1]))
        assert spin_until(ex, lambda: len(actions) == 2, 2)
        ref = reference_actions(model, obs[1:2], load_agent(path).skill("button-press-topdown-v3").embedding)
        assert np.array_equal(np.array(actions[-1].data, np.float32), ref[0])
        diags.clear()
        assert spin_until(ex, lambda: status().get("active_skill") == "button-press-topdown-v3", 2)
        s = status()
        assert s["matched_by"] == "instruction" and float(s["similarity"]) > 0.5
        assert 0 < float(s["latency_ms_p99"]) < 100 and float(s["inference_ms_last"]) > 0
        # a wrong layout is rejected, no action published
        obs_pub.publish(observation_to_msg(COMPACT12, np.zeros(12)))
        assert spin_until(ex, lambda: node.rejected == 1, 2)
        assert "metaworld39" in node.last_rejection and len(actions) == 2
        # an unrelated instruction is refused: ERROR with the nearest skill, then idle
        task_pub.publish(String(data="bake a chocolate cake for my birthday"))
        assert spin_until(ex, lambda: bool(node.task_error), 2)
        diags.clear()
        assert spin_until(ex, lambda: bool(diags) and diags[-1].status[0].level == b"\x02", 2)
        assert re.search(r"nearest skill '.+' has similarity", diags[-1].status[0].message)
        obs_pub.publish(observation_to_msg(METAWORLD39, obs[2]))
        assert spin_until(ex, lambda: len(actions) == 3, 2)
        assert list(actions[-1].data) == [0.0] * 4
        ex.remove_node(node)
        node.destroy_node()
        client.destroy_node()


def test_period_mode_publishes_at_the_control_period(exported):
    path, _ = exported
    obs = record_observations(1, seed=9)[0]
    with ros_context() as (ctx, ex):
        node = _node(ctx, path, initial_task="reach-v3", publish_on="period", observation_timeout_s=0.3)
        client = __import__("rclpy").create_node("policy_test_client3", context=ctx)
        actions = []
        client.create_subscription(Float32MultiArray, "/legion/action", actions.append, STREAM_QOS)
        pub = client.create_publisher(Float32MultiArray, "/legion/observation", STREAM_QOS)
        ex.add_node(node)
        ex.add_node(client)
        assert spin_until(ex, lambda: pub.get_subscription_count() > 0, 5)
        pub.publish(observation_to_msg(METAWORLD39, obs))
        spin_until(ex, lambda: False, 0.6)    # one observation, then silence
        # several actions from one observation (period 12.5 ms), none after it went stale (0.3 s)
        assert 5 <= len(actions) <= int(0.3 / 0.0125) + 3
        n = len(actions)
        spin_until(ex, lambda: False, 0.2)
        assert len(actions) == n
        ex.remove_node(node)
        node.destroy_node()
        client.destroy_node()


@pytest.mark.parametrize("case", sorted(CORRUPT_CASES))
def test_node_refuses_every_corrupt_agent_with_the_validator_reason(case, exported, tmp_path):
    agent = tmp_path / "agent"
    shutil.copytree(exported[0], agent)
    corrupt, pattern = CORRUPT_CASES[case]
    corrupt(agent)
    with ros_context() as (ctx, _):
        with pytest.raises(NodeStartError) as info:
            _node(ctx, agent)
    msg = str(info.value)
    assert msg.startswith(f"refusing agent {agent}: ") and "\n" not in msg
    assert re.search(pattern, msg.split(": ", 1)[1]), msg


def test_node_process_exits_2_with_one_line_reason(exported, tmp_path):
    agent = tmp_path / "agent"
    shutil.copytree(exported[0], agent)
    data = bytearray((agent / "weights.safetensors").read_bytes())
    data[100] ^= 1
    (agent / "weights.safetensors").write_bytes(bytes(data))
    exe = Path(sys.executable).parent / "legion_policy_node"
    proc = subprocess.run([str(exe), "--ros-args", "-p", f"agent_path:={agent}", "-p",
                           "preload_language_model:=false"], capture_output=True, text=True, timeout=60,
                          env=os.environ.copy())
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("policy: refusing agent") and "checksum mismatch: weights.safetensors" in lines[-1]
