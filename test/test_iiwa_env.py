"""The iiwa training environment (legion_training.iiwa_env): Metaworld v3 tasks on the simulated iiwa, stepped
through the bridge's cores, with Metaworld's own reward and success (real MuJoCo, real Metaworld, no mocks).

* parity with the ROS-free loop of the simulated graph: the same actions give bit-identical observations when the
  loop is wired here by hand, the way the nodes pass their messages (sim_arm's SimArm, sim2real's and real2sim's
  cores built from the nodes' parameter files);
* Metaworld's own observation, reward and success code, run on the cell's MjData, reads the iiwa (its hand, pads,
  fingertip centre) and agrees with real2sim's observation;
* Metaworld's scripted experts succeed on the iiwa about as often as on the Sawyer (a subset of MT10, few episodes;
  the full table: bench/bench_expert_parity.py);
* random hand starts, the config switch and the trainer on the iiwa.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from legion_bridge.calibration import Calibration, read_ros_params
from legion_bridge.hand import HandFrames
from legion_bridge.paths import config_path
from legion_bridge.real2sim import Real2SimConfig, Real2SimCore
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import GRIPPER_GAP_JOINT
from legion_bridge.safety import SafetyLimits
from legion_bridge.sim.sim_arm import SimArm
from legion_bridge.sim2real import Sim2RealConfig, Sim2RealCore
from legion_policy.observation_layout import COMPACT12, HAND_FROM_TCP_M, METAWORLD39
from legion_policy.tasks import default_binding
from legion_training.config import ConfigError, load_config
from legion_training.iiwa_env import IiwaTask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_expert_parity import expert_for, run  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)


def _node_params(spec, *files: str) -> dict:
    """The node's spec defaults with the sim graph's parameter files of the node over them, in its order
    (docs/architecture.md)."""
    out: dict = spec.defaults()
    for f in ("topics.yaml", *files, "calibration.yaml", "modes/sim.yaml"):
        out.update(read_ros_params(config_path(f)))
    return out


def _hand_wired_loop(task: str, variation):
    """sim_arm + sim2real + real2sim wired by hand as the nodes pass their messages (no BridgeLoop)."""
    from legion_bridge.node_params import REAL2SIM, SIM2REAL

    s2r_p = _node_params(SIM2REAL, "sim2real.yaml", "limits.yaml")
    r2s_p = _node_params(REAL2SIM, "real2sim.yaml", "limits.yaml")
    sim = SimArm(task, "iiwa7", seed=0)
    sim.reset(variation=variation)
    cal = Calibration.from_params(s2r_p)
    hand = HandFrames(Kinematics(sim.robot, sim_from_base=cal.sim_from_base), cal)
    # an iiwa skill is trained at the real arm's period, and the simulated graph runs its agent at the agent's
    # control period (launch argument policy_period): both are policy_period_real_s
    period = float(s2r_p["policy_period_real_s"])
    s2r = Sim2RealCore(hand, SafetyLimits.from_model(sim.robot, cal.workspace_min, cal.workspace_max, {
        k: s2r_p[k] for k in ("acceleration_limits", "position_margin", "velocity_scale", "box_tolerance_m",
                              "max_joint_state_age_s", "max_future_stamp_s", "measured_limit_tolerance")}),
        Sim2RealConfig(period_s=period, horizon_s=period * s2r_p["command_horizon_periods"],
                       target_base=s2r_p["target_base"], max_target_lead_m=s2r_p["max_target_lead_m"],
                       action_timeout_periods=s2r_p["action_timeout_periods"],
                       joint_state_timeout_periods=s2r_p["joint_state_timeout_periods"],
                       ik_position_tolerance_m=s2r_p["ik_position_tolerance_m"],
                       action_watchdog_disables=s2r_p["action_watchdog_disables"],
                       reference_lead_s=s2r_p["reference_lead_s"],
                       finger_yaw_rate_deg_s=s2r_p["finger_yaw_rate_deg_s"],
                       finger_yaw_acceleration_deg_s2=s2r_p["finger_yaw_acceleration_deg_s2"]), enabled=True)
    r2s = Real2SimCore(hand, METAWORLD39, Real2SimConfig(
        period_s=period, max_joint_state_age_s=r2s_p["max_joint_state_age_s"],
        max_gripper_age_s=r2s_p["max_gripper_age_s"], max_object_age_s=r2s_p["max_object_age_s"],
        max_future_stamp_s=r2s_p["max_future_stamp_s"], restart_after_periods=r2s_p["restart_after_periods"]),
        sim.joint_names, GRIPPER_GAP_JOINT)
    binding = default_binding(task).with_(skill=task)
    assert r2s.on_binding(binding) and s2r.on_binding(binding) is None
    steps = int(round(period / sim.timestep))

    def measure_and_observe():
        t, q = sim.time, sim.joint_positions()
        r2s.on_joint_state(sim.joint_names, q, t)
        s2r.on_joint_state(sim.joint_names, q, t, t)
        r2s.on_gripper_state([GRIPPER_GAP_JOINT], [sim.gripper_gap()], t)
        for name, (p, quat) in sim.object_poses().items():
            r2s.on_object_pose(name, "sim_world", p, quat, t)
        obs = r2s.observe(t)
        s2r.on_observation(t)
        return obs

    def send(cmd):
        if cmd is not None:
            sim.command_trajectory(sim.joint_names, [cmd.horizon_s], [cmd.q], start_time=None)  # stamp 0 = now
            if cmd.gripper is not None:
                sim.command_gripper(cmd.gripper)

    def step(action):
        send(s2r.on_action(action, sim.time))
        sim.step(steps)
        t = sim.time
        r2s.on_joint_state(sim.joint_names, sim.joint_positions(), t)
        s2r.on_joint_state(sim.joint_names, sim.joint_positions(), t, t)
        send(s2r.tick(t))
        return measure_and_observe()

    return sim, measure_and_observe(), step


@pytest.mark.parametrize("task", ["push-v3", "drawer-close-v3"])
def test_the_training_env_steps_exactly_the_ros_free_graph_loop(task):
    env = IiwaTask(task, "metaworld39", seed=0, episode_length=150, normalize_reward=False)
    obs_env = env.reset(variation=3)
    sim, obs_loop, step = _hand_wired_loop(task, env._variations[3])
    np.testing.assert_array_equal(env.obs39, obs_loop)
    np.testing.assert_array_equal(obs_env, obs_loop.astype(np.float32))
    rng = np.random.default_rng(5)
    actions = np.clip(rng.normal(0.0, 0.6, (80, 4)) + [0.0, 0.3, -0.4, 0.0], -1, 1)
    for k, a in enumerate(actions):
        r = env.step(a)
        obs_loop = step(a)
        assert np.array_equal(env.obs39, obs_loop), f"step {k}: {np.abs(env.obs39 - obs_loop).max()}"
        assert np.array_equal(env.sim.cell.data.qpos, sim.cell.data.qpos), f"step {k}"
    # the arm really moved, under the envelope, and the obs's hand is the simulator's hand
    assert np.linalg.norm(env.obs39[:3] - env.obs39[18:21]) > 0 and env.loop.s2r.sent_moves > 60
    np.testing.assert_allclose(env.obs39[:3], sim.cell.hand_pos(), atol=1e-9)
    assert r.raw_reward == pytest.approx(env.evaluate(env.obs39, actions[-1])[0])


def test_the_agent_layout_is_the_layout_real2sim_emits():
    """The env takes the agent's fields from real2sim's metaworld39 observation; real2sim emitting compact12
    directly (what the deployed graph does for a compact12 agent) gives the same numbers."""
    env = IiwaTask("push-v3", "compact12", seed=1, episode_length=150, normalize_reward=False)
    env.reset(variation=0)
    compact = Real2SimCore(env.loop.hand, COMPACT12, env.loop.config.real2sim, env.loop.joint_names,
                           GRIPPER_GAP_JOINT)
    compact.on_binding(env.binding)
    for a in ([0.2, 0.5, -0.3, 1.0],) * 20:
        r = env.step(np.array(a))
        t = env.sim.time
        compact.on_joint_state(env.loop.joint_names, env.sim.joint_positions(), t)
        compact.on_gripper_state([GRIPPER_GAP_JOINT], [env.sim.gripper_gap()], t)
        for name, (p, q) in env.sim.object_poses().items():
            compact.on_object_pose(name, "sim_world", p, q, t)
        direct = compact.observe(t)
    np.testing.assert_array_equal(r.obs, direct.astype(np.float32))  # the last step (stacking restarts alike)


def test_metaworlds_own_code_reads_the_iiwa():
    """hand body = real2sim's hand, tcp_center = the tcp site, the claws' distance = the finger gap: Metaworld's
    own current-frame observation, on the cell, is real2sim's (positions exactly, quaternions up to sign)."""
    env = IiwaTask("push-v3", "metaworld39", seed=0, episode_length=150, normalize_reward=False)
    env.reset(variation=1)
    for k, a in enumerate([[0.3, 0.6, -0.8, -1.0]] * 25 + [[0.0, 0.0, 0.0, 1.0]] * 25):
        env.step(np.array(a))
        with env.on_cell() as mw:
            mw_frame = mw._get_curr_obs_combined_no_goal()
            tcp_center = np.array(mw.tcp_center)
        ours = env.obs39[:18]
        # the two finger slides are independent: their midpoint sits on the tcp up to their asymmetry (um)
        np.testing.assert_allclose(tcp_center, env.sim.cell.tcp_pose()[0], atol=5e-5)
        # hand: Metaworld's hand body rides on the gripper, real2sim's is the tcp + 4.5 cm straight up; they agree
        # as far as the gripper points down (within IK's orientation tolerance: 0.045 m x a few mrad); gap, puck
        np.testing.assert_allclose(mw_frame[[0, 1, 2, 4, 5, 6]], ours[[0, 1, 2, 4, 5, 6]], atol=5e-4)
        # opening: Metaworld's |claw distance| / 0.1 is the finger gap / 0.1, except that fingers squeezed past
        # closed (the soft finger limits, a few mm under full force) read as a small opening there, 0 here
        if ours[3] > 0:
            assert mw_frame[3] == pytest.approx(ours[3], abs=1e-9)
        else:
            assert mw_frame[3] < 0.05
        q_mw, q = mw_frame[7:11], ours[7:11]
        assert min(np.abs(q_mw - q).max(), np.abs(q_mw + q).max()) < 1e-6
    assert env.obs39[3] < 0.5  # the fingers closed in the last 25 steps (and Metaworld saw it)


def test_rewards_follow_the_iiwas_fingertips():
    """reach-v3's v2 reward is Metaworld's tolerance of |tcp_center - goal|: driving the iiwa's fingertips to the
    goal raises it to 10 and sets Metaworld's success flag once within 5 cm (the Sawyer's pads are not involved)."""
    env = IiwaTask("reach-v3", "metaworld39", seed=0, episode_length=150, normalize_reward=False)
    env.reset(variation=2)
    goal = env.obs39[36:39]
    rewards, dists, succ = [], [], []
    for _ in range(150):
        a = np.r_[np.clip((goal - env.sim.cell.tcp_pose()[0]) * 50, -1, 1), -1.0]
        r = env.step(a)
        rewards.append(r.raw_reward)
        dists.append(float(np.linalg.norm(env.sim.cell.tcp_pose()[0] - goal)))
        succ.append(r.success)
    assert rewards[-1] == pytest.approx(10.0, abs=0.05) and rewards[-1] > rewards[0]
    assert all(s == (d <= 0.05) for s, d in zip(succ, dists))
    assert any(succ) and not succ[0]


#: Expert parity in CI: a subset of MT10 with few episodes (bench/bench_expert_parity.py prints all of MT10), within
#: the trainer's 150 steps (at the real arm's 50 ms period the iiwa's hand keeps up with the Sawyer's mocap).
EXPERT_EPISODES = 4
EXPERT_STEPS = 150
#: Findings (docs/benchmarks.md, the expert table): strict xfails, so a fix of the cell shows up as a failure
#: here that asks for the mark to go.
BUTTON_FINDING = ("the expert lifts the hand to z ~0.4 before pressing; gripper-down from the overhead mount the arm "
                  "meets A4's limit at ~0.38 there and creeps (ik_failed holds): half the presses take over 150 steps")
EXPERT_TASKS = ("reach-v3", "push-v3", "drawer-close-v3", "window-close-v3",
                pytest.param("button-press-topdown-v3", marks=pytest.mark.xfail(strict=True, reason=BUTTON_FINDING)))


@pytest.mark.parametrize("task", EXPERT_TASKS)
def test_metaworlds_expert_succeeds_on_the_iiwa_as_on_the_sawyer(task):
    import metaworld

    from legion_training.envs import MetaworldTask

    bench = metaworld.MT1(task, seed=0)
    variations = list(range(EXPERT_EPISODES))
    raw = MetaworldTask(task, "metaworld39", seed=0, episode_length=EXPERT_STEPS, normalize_reward=False,
                        benchmark=bench)
    iiwa = IiwaTask(task, "metaworld39", seed=0, episode_length=EXPERT_STEPS, normalize_reward=False, benchmark=bench)
    raw_ok, _, _ = run(raw, expert_for(task), variations, EXPERT_STEPS)
    iiwa_ok, _, _ = run(iiwa, expert_for(task), variations, EXPERT_STEPS)
    assert sum(raw_ok) >= EXPERT_EPISODES - 1
    assert sum(iiwa_ok) >= 0.9 * sum(raw_ok) - 1e-9, (task, raw_ok, iiwa_ok)


def test_random_hand_starts_are_reachable_contact_free_and_inside_the_box():
    box = [[-0.2, 0.45, 0.1], [0.2, 0.75, 0.3]]
    env = IiwaTask("drawer-close-v3", "metaworld39", seed=3, episode_length=150, normalize_reward=False,
                   random_hand_init=True, hand_init_box=box)
    nominal = IiwaTask("drawer-close-v3", "metaworld39", seed=3, episode_length=150, normalize_reward=False)
    starts = []
    for ep in range(6):
        env.reset(variation=ep)
        hand = env.obs39[:3]
        starts.append(hand.copy())
        assert np.all(hand >= np.array(box[0]) - 1e-3) and np.all(hand <= np.array(box[1]) + 1e-3)
        assert env.sim.cell.arm_contacts() == []
        _, R = env.sim.cell.tcp_pose()
        assert R[2, 2] < -0.999  # gripper down
        # Metaworld's reward code knows the start: hand_init_pos and init_tcp are this episode's
        np.testing.assert_allclose(env.env.hand_init_pos, hand, atol=1e-6)
        np.testing.assert_allclose(env.env.init_tcp, hand - np.asarray(HAND_FROM_TCP_M), atol=1e-6)
        nominal.reset(variation=ep)
        np.testing.assert_array_equal(env.obs39[4:7], nominal.obs39[4:7])  # the same instance otherwise
    assert min(np.linalg.norm(a - b) for i, a in enumerate(starts) for b in starts[:i]) > 1e-3
    assert env.hand_init_fallbacks == 0
    np.testing.assert_allclose(nominal.obs39[:3], nominal.env.hand_init_pos, atol=1e-3)


def test_the_embodiment_is_a_config_switch():
    assert load_config(None).env.embodiment == "sawyer"
    assert load_config("cpu").env.embodiment == "iiwa7"
    assert load_config("paper").env.embodiment == "sawyer"
    assert load_config("cpu", ["env.embodiment=iiwa14"]).env.embodiment == "iiwa14"
    with pytest.raises(ConfigError, match="env.embodiment"):
        load_config("cpu", ["env.embodiment=ur5"])
    with pytest.raises(ConfigError, match="random_hand_init"):
        load_config("smoke", ["env.random_hand_init=true"])
    with pytest.raises(ConfigError, match="max_target_lead_m"):
        load_config("cpu", ["env.max_target_lead_m={push-v3: 0.05}"])
    with pytest.raises(ConfigError, match="hand_init_box"):
        load_config("cpu", ["env.hand_init_box=[[0, 0, 0]]"])
    # the period: the real arm's by default, a whole number of physics steps, the Sawyer's only its own
    for bad in ("env.control_period_s=0.051", "env.control_period_s=-0.05"):
        with pytest.raises(ConfigError, match="control_period_s"):
            load_config("cpu", [bad])
    with pytest.raises(ConfigError, match="control_period_s.*Sawyer"):
        load_config("cpu", ["env.embodiment=sawyer", "env.control_period_s=0.05"])
    assert load_config("cpu", ["env.control_period_s=0.025"]).env.control_period_s == 0.025


def test_the_trainer_runs_on_the_iiwa(tmp_path):
    from legion_training.iiwa_env import IiwaTask as Iiwa
    from legion_training.lifelong import Trainer

    cfg = load_config("smoke", ["env.embodiment=iiwa7", "env.tasks=[reach-v3]", "env.random_hand_init=true"])
    trainer = Trainer(cfg, tmp_path / "run", log=lambda s: None)
    assert all(isinstance(e, Iiwa) for e in trainer.envs + trainer.eval_envs)
    assert trainer.envs[0].random_hand_init and not trainer.eval_envs[0].random_hand_init
    metrics = trainer.train()
    assert metrics["steps"] == cfg.run.steps_per_task
    hands = trainer.replay.obs[:len(trainer.replay), :3]  # compact12: hand first
    assert np.ptp(hands, axis=0).max() > 0.02  # the arm moved (random starts and actions through the bridge)
    # trained at the real arm's period, exported with it, and the simulated graph runs the agent at it
    from legion_bridge.graph import resolve
    from legion_policy.agent_format import load_agent
    from legion_training.export import export_run
    from legion_training.iiwa_env import real_arm_period

    period = real_arm_period("iiwa7")
    assert period > 0.0125 and trainer.envs[0].loop.config.period_s == period
    assert trainer.envs[0].loop.steps_per_period * trainer.envs[0].sim.timestep == pytest.approx(period)
    agent = export_run(tmp_path / "run")
    assert load_agent(agent).control_period_s == period
    nodes = {n.spec.name: n.parameters for n in resolve("sim", {"agent": str(agent)})}
    assert nodes["sim2real"]["policy_period_sim_s"] == nodes["real2sim"]["policy_period_sim_s"] == period


def test_expert_demo_episodes_seed_each_task_with_the_scripted_expert(tmp_path):
    """env.expert_demo_episodes: the first episodes of a task phase are acted by Metaworld's expert in the training
    env (here the iiwa), then random steps, then the policy; the paper config keeps it off."""
    from legion_training.experts import expert_for
    from legion_training.lifelong import Trainer

    assert load_config("paper").env.expert_demo_episodes == 0
    cfg = load_config("smoke", ["env.embodiment=iiwa7", "env.tasks=[reach-v3]", "env.expert_demo_episodes=1"])
    trainer = Trainer(cfg, tmp_path / "run", log=lambda s: None)
    trainer.train(stop_after=cfg.env.episode_length + 5)
    # replay the same episode: same env seed, same variation draw, the expert's actions
    env = IiwaTask("reach-v3", cfg.env.layout, seed=cfg.run.seed, episode_length=cfg.env.episode_length)
    env.reset()
    expert = expert_for("reach-v3")
    L = cfg.env.episode_length
    d0 = np.linalg.norm(env.obs39[:3] - env.obs39[36:39])
    for k in range(L):
        a = np.clip(expert.get_action(env.obs39), -1, 1).astype(np.float32)
        np.testing.assert_array_equal(trainer.replay.action[k], a)
        env.step(a)
    assert np.linalg.norm(env.obs39[:3] - env.obs39[36:39]) < 0.5 * d0  # the demonstration heads for the goal
    # then the random steps: not the expert's
    assert not np.array_equal(trainer.replay.action[L], np.clip(expert.get_action(env.obs39), -1, 1).astype(np.float32))
    with pytest.raises(ConfigError, match="expert_demo_episodes"):
        load_config("smoke", ["env.expert_demo_episodes=-1"])
    # the demonstration rows are known (and checkpointed): sac.demo_batch_fraction draws from them
    assert trainer.demo_rows == list(range(L))
    assert trainer.sac_batch()["action"].shape[0] == cfg.sac.batch_size  # fraction 0: uniform
    half = Trainer(load_config("smoke", ["env.embodiment=iiwa7", "env.tasks=[reach-v3]", "env.expert_demo_episodes=1",
                                          "sac.demo_batch_fraction=0.5"]), tmp_path / "half", log=lambda s: None)
    half.train(stop_after=L + 5)
    demo = {tuple(a) for a in trainer.replay.action[:L]}
    batch = half.sac_batch()["action"]
    k = int(round(0.5 * len(batch)))
    assert all(tuple(a) in demo for a in batch[:k]) and len(batch) == half.cfg.sac.batch_size
    assert sum(tuple(a) in demo for a in batch[k:]) < len(batch) - k  # the rest is uniform over the replay
    for bad, msg in (("sac.demo_batch_fraction=1.0", "demo_batch_fraction"),
                     ("sac.demo_batch_fraction=0.5", "expert_demo_episodes > 0"),
                     ("env.expert_demo_noise=-0.1", "expert_demo_noise"),
                     ("env.expert_demo_noise=0.3", "expert_demo_episodes > 0")):
        with pytest.raises(ConfigError, match=msg):
            load_config("smoke", [bad] + (["env.expert_demo_episodes=1"] if bad.endswith(("1.0", "-0.1")) else []))
    # without noise the expert's action is the executed one
    assert np.array_equal(np.asarray(half.demo_actions), half.replay.action[:L])
    # env.expert_demo_noise (DART): the replay holds the executed noisy action, the clone target is the expert's
    noisy_cfg = load_config("smoke", ["env.embodiment=iiwa7", "env.tasks=[reach-v3]", "env.expert_demo_episodes=1",
                                      "env.expert_demo_noise=0.3", "sac.demo_batch_fraction=0.5"])
    noisy = Trainer(noisy_cfg, tmp_path / "noisy", log=lambda s: None)
    noisy.train(stop_after=L + 5)
    executed, expert = noisy.replay.action[:L], np.asarray(noisy.demo_actions)
    assert expert.shape == executed.shape
    inside = np.abs(executed) < 1.0  # not clipped
    assert 0.2 < np.std((executed - expert)[inside]) < 0.4
    b = noisy.sac_batch()
    pairs = {tuple(a): tuple(e) for a, e in zip(executed, expert)}
    k = noisy.demo_share()
    assert [pairs[tuple(a)] for a in b["action"][:k]] == [tuple(e) for e in b["demo_action"]]
    noisy.save_checkpoint()  # the clone targets are checkpointed with the rows
    again = Trainer(None, tmp_path / "noisy", resume=True, log=lambda s: None)
    assert np.array_equal(np.asarray(again.demo_actions), expert) and again.demo_rows == noisy.demo_rows
