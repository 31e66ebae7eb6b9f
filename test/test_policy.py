"""Policy core: skill selection by name or instruction (real MiniLM), refusals, exact actions."""
from __future__ import annotations

import numpy as np
import pytest

from legion_policy.agent_format import load_agent
from legion_policy.policy import DEFAULT_SIMILARITY_THRESHOLD, PolicyCore, TaskSelectionError
from policy_agents import make_agent, record_observations, reference_actions


@pytest.fixture(scope="module")
def agent_and_model(tmp_path_factory):
    path, policy = make_agent(tmp_path_factory.mktemp("policy") / "agent", seed=1)
    return load_agent(path), policy


@pytest.fixture(scope="module")
def observations():
    return record_observations(300, seed=2)


def test_actions_are_bit_identical_to_the_in_memory_model(agent_and_model, observations):
    agent, model = agent_and_model
    core = PolicyCore(agent)
    assert core.select("push-v3").by == "name"
    ours = np.stack([core.act(o) for o in observations])
    ref = reference_actions(model, observations, agent.skill("push-v3").embedding)
    assert ours.dtype == np.float32 and ours.shape == (300, 4)
    assert np.array_equal(ours, ref)
    assert np.all(np.abs(ours) <= 1.0)
    assert core.last_inference_s > 0 and core.steps == 300


def test_traced_network_is_bit_identical_too(agent_and_model, observations):
    agent, model = agent_and_model
    core = PolicyCore(agent, trace=True)
    assert core.traced, core.trace_note
    core.select("reach-v3")
    ours = np.stack([core.act(o) for o in observations])
    assert np.array_equal(ours, reference_actions(model, observations, agent.skill("reach-v3").embedding))


def test_skill_embedding_changes_the_action(agent_and_model, observations):
    core = PolicyCore(agent_and_model[0])
    core.select("push-v3")
    a = core.act(observations[0])
    core.select("button-press-topdown-v3")
    assert not np.array_equal(a, core.act(observations[0]))


@pytest.mark.parametrize("text,skill", [("shove the puck over to the target", "push-v3"),
                                        ("push the button down from above", "button-press-topdown-v3"),
                                        ("move your hand to the goal location", "reach-v3")])
def test_free_form_instruction_selects_the_nearest_skill(agent_and_model, text, skill):
    core = PolicyCore(agent_and_model[0])
    m = core.select(text)
    assert (m.skill, m.by) == (skill, "instruction") and core.active_skill == skill
    assert DEFAULT_SIMILARITY_THRESHOLD <= m.score < 1.0


def test_unrelated_instruction_is_refused_naming_the_nearest_skill(agent_and_model, observations):
    core = PolicyCore(agent_and_model[0])
    core.select("push-v3")
    with pytest.raises(TaskSelectionError) as info:
        core.select("bake a chocolate cake for my birthday")
    msg = str(info.value)
    assert "refused" in msg and "nearest skill '" in msg and "similarity" in msg and "threshold" in msg
    assert core.active_skill is None                      # refused -> idle, not the old skill
    assert np.array_equal(core.act(observations[0]), np.zeros(4, np.float32))


def test_threshold_decides(agent_and_model):
    text = "shove the puck over to the target"
    score = PolicyCore(agent_and_model[0]).match(text).score
    assert PolicyCore(agent_and_model[0], similarity_threshold=score - 1e-3).match(text).skill == "push-v3"
    with pytest.raises(TaskSelectionError, match="push-v3"):
        PolicyCore(agent_and_model[0], similarity_threshold=score + 1e-3).match(text)
    with pytest.raises(ValueError, match="cosine"):
        PolicyCore(agent_and_model[0], similarity_threshold=1.5)


def test_idle_words_and_bad_observations(agent_and_model, observations):
    core = PolicyCore(agent_and_model[0])
    core.select("reach-v3")
    assert core.select("stop").skill is None and core.active_skill is None
    assert np.array_equal(core.act(observations[0]), np.zeros(4, np.float32))
    core.select("reach-v3")
    with pytest.raises(ValueError, match="needs 39"):
        core.act(np.zeros(12))
    bad = observations[0].copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        core.act(bad)


def test_builtin_move_to_heads_for_the_goal_without_overshoot(agent_and_model):
    """move-to is scripted: full speed towards the goal when far, half the remaining distance (in
    Metaworld's 1 cm action units) when near, gripper open; it is no agent skill and says so."""
    agent, _ = agent_and_model
    core = PolicyCore(agent)
    assert "move-to" not in agent.skill_names
    m = core.select("move-to")
    assert (m.skill, m.by) == ("move-to", "builtin") and core.active_skill == "move-to"
    lay = agent.layout
    hand = np.array([0.0, 0.6, 0.2])
    for goal, expect in (([0.3, 0.4, 0.2], [1.0, -1.0, 0.0]), ([0.004, 0.59, 0.2], [0.2, -0.5, 0.0])):
        obs = np.zeros(lay.size, dtype=np.float32)
        obs[lay.slice("hand_pos")] = hand
        obs[lay.slice("goal_pos")] = goal
        a = core.act(obs)
        np.testing.assert_allclose(a[:3], expect, atol=1e-5)
        assert a[3] == -1.0
    # a learned skill after it runs the network again; idle stops it
    core.select("push-v3")
    assert core.active_skill == "push-v3"
    core.select("stop")
    assert core.active_skill is None and not np.any(core.act(np.zeros(lay.size, dtype=np.float32)))
