"""Metaworld tasks wrapped to the shared layout: fields by name, 150-step time limits that are not
terminal, reward normalisation by a running std, and seeding that reproduces."""
from __future__ import annotations

import numpy as np
import pytest

from legion_policy.observation_layout import COMPACT12, HAND_FROM_TCP_M, METAWORLD39
from legion_training.envs import MetaworldTask, RunningStd, instruction_for, layout_indices


@pytest.fixture(scope="module")
def reach39():
    return MetaworldTask("reach-v3", "metaworld39", seed=3, episode_length=150)


def test_compact_layout_is_the_metaworld_fields_by_name(reach39):
    compact = MetaworldTask("reach-v3", "compact12", seed=3, benchmark=reach39.benchmark)
    full = MetaworldTask("reach-v3", "metaworld39", seed=3, benchmark=reach39.benchmark)
    o12, o39 = compact.reset(variation=4), full.reset(variation=4)
    assert o12.shape == (COMPACT12.size,) and o39.shape == (METAWORLD39.size,)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, 4)
        o12, o39 = compact.step(a).obs, full.step(a).obs
        for f in COMPACT12.field_names:
            assert np.array_equal(COMPACT12.get(o12, f), METAWORLD39.get(o39, f)), f
    assert np.any(COMPACT12.get(o12, "goal_pos") != 0)  # the goal is observable
    assert list(layout_indices(METAWORLD39)) == list(range(METAWORLD39.size))


def test_episode_is_a_150_step_time_limit_not_a_terminal(reach39):
    reach39.reset()
    results = [reach39.step(np.zeros(4)) for _ in range(150)]
    assert not any(r.terminated for r in results)
    assert [r.truncated for r in results] == [False] * 149 + [True]
    with pytest.raises(RuntimeError, match="reset"):
        reach39.step(np.zeros(4))


def test_rewards_are_divided_by_a_running_std_without_mean_subtraction():
    env = MetaworldTask("reach-v3", "compact12", seed=0, episode_length=150)
    env.reset()
    raw = []
    rng = np.random.default_rng(1)
    for _ in range(40):
        r = env.step(rng.uniform(-1, 1, 4))
        raw.append(r.raw_reward)
        std = np.std(raw, ddof=1) if len(raw) > 1 else 1.0
        assert r.reward == pytest.approx(r.raw_reward / (std + 1e-8), rel=1e-9)
        assert np.sign(r.reward) == np.sign(r.raw_reward)


def test_running_std_matches_numpy():
    rs, xs = RunningStd(), np.random.default_rng(2).normal(3.0, 2.0, 500)
    for x in xs:
        rs.update(float(x))
    assert rs.std == pytest.approx(np.std(xs, ddof=1), rel=1e-9)
    assert rs.normalize(4.0) == pytest.approx(4.0 / (np.std(xs, ddof=1) + 1e-8))


def test_reward_version_changes_the_reward_shape_not_success():
    """Metaworld's v1 reach reward keeps rising all the way to the goal; v2 is flat inside the 5 cm
    success radius. Same scripted motion, same variation: same observations and success, other rewards."""
    runs = {}
    for version in ("v2", "v1"):
        env = MetaworldTask("reach-v3", "compact12", seed=0, normalize_reward=False, reward_version=version)
        obs, rows = env.reset(variation=0), []
        for _ in range(60):  # move the fingertip centre (hand - HAND_FROM_TCP_M) straight to the goal
            tcp = COMPACT12.get(obs, "hand_pos") - np.asarray(HAND_FROM_TCP_M)
            step = np.clip((COMPACT12.get(obs, "goal_pos") - tcp) * 30.0, -1.0, 1.0)
            r = env.step(np.append(step, 0.0))
            obs = r.obs
            tcp = COMPACT12.get(obs, "hand_pos") - np.asarray(HAND_FROM_TCP_M)
            rows.append((np.linalg.norm(COMPACT12.get(obs, "goal_pos") - tcp), r.raw_reward, r.success, obs))
        runs[version] = rows
    v1, v2 = runs["v1"], runs["v2"]
    assert all(np.array_equal(a[3], b[3]) and a[2] == b[2] for a, b in zip(v1, v2))
    assert v2[-1][2]  # the scripted reach succeeds
    inside = [i for i, row in enumerate(v2) if row[0] < 0.04]
    assert len(inside) >= 5
    assert all(v2[i][1] == pytest.approx(10.0) for i in inside)          # v2: flat inside the radius
    nearest, farthest = min(inside, key=lambda i: v1[i][0]), max(inside, key=lambda i: v1[i][0])
    assert v1[nearest][1] > 1.2 * v1[farthest][1]  # v1: still rising towards the goal
    with pytest.raises(ValueError, match="reward_version 'v9'"):
        MetaworldTask("reach-v3", "compact12", seed=0, reward_version="v9")


def _rollout(seed: int, n_eps: int = 2, steps: int = 30):
    env = MetaworldTask("push-v3", "compact12", seed=seed, episode_length=steps)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_eps):
        out.append(env.reset())
        for _ in range(steps):
            r = env.step(rng.uniform(-1, 1, 4))
            out += [r.obs, [r.reward]]
    return np.concatenate([np.ravel(x) for x in out])


def test_seeding_reproduces_and_different_seeds_differ():
    a, b, c = _rollout(5), _rollout(5), _rollout(6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_task_and_bad_action_are_clear_errors():
    with pytest.raises(ValueError, match="unknown Metaworld task 'fly-v3'"):
        MetaworldTask("fly-v3", "compact12")
    env = MetaworldTask("reach-v3", "compact12", seed=0)
    env.reset()
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.array([np.nan, 0, 0, 0]))


def test_instructions_come_from_the_shared_language_module():
    from legion_policy.language import DEFAULT_INSTRUCTIONS

    assert instruction_for("push-v3") == DEFAULT_INSTRUCTIONS["push-v3"]
    assert instruction_for("push-v3", {"push-v3": "shove it"}) == "shove it"
    assert instruction_for("faucet-open-v3") == DEFAULT_INSTRUCTIONS["faucet-open-v3"]
    # a task without a default instruction is named in words
    assert "shelf-stack-v3" not in DEFAULT_INSTRUCTIONS
    assert instruction_for("shelf-stack-v3") == "shelf stack"


def test_target_lead_cap_bounds_the_push_of_a_blocked_hand_and_leaves_free_motion_alone():
    """``max_target_lead_m``: Metaworld's mocap target is kept within the cap of the hand body before each
    action is added (as sim2real caps its target on the arm), so a hand pushed into the handle-press box no
    longer leans on a target 20+ cm ahead; motion that never reaches the cap is unchanged."""
    push = np.array([0.0, 1.0, 0.0, -1.0])  # into the box behind the lever
    lead, hand_y = {}, {}
    for cap in (None, 0.05):
        env = MetaworldTask("handle-press-v3", "compact12", seed=0, max_target_lead_m=cap)
        env.reset(variation=0)
        leads = []
        for _ in range(60):
            r = env.step(push)
            leads.append(env.target_lead())
        lead[cap], hand_y[cap] = max(leads), float(r.obs[1])
    assert lead[None] > 0.15
    assert lead[0.05] <= 0.05 + 0.01 * np.linalg.norm(push[:3]) + 1e-3  # cap + one action's step
    assert hand_y[0.05] < hand_y[None] - 0.005  # a weaker push: the hand gets less far into the box

    free, capped = (MetaworldTask("reach-v3", "compact12", seed=0, max_target_lead_m=m) for m in (None, 0.05))
    np.testing.assert_array_equal(free.reset(variation=1), capped.reset(variation=1))
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = rng.uniform(-1, 1, 4)
        np.testing.assert_array_equal(free.step(a).obs, capped.step(a).obs)
        assert free.target_lead() < 0.05
    for bad in (0.0, -0.1, float("nan"), "far"):
        with pytest.raises(ValueError, match="max_target_lead_m must be a positive number"):
            MetaworldTask("reach-v3", "compact12", max_target_lead_m=bad)
