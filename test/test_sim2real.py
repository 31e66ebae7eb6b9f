"""The sim2real core: action semantics, box clipping, enable, watchdog, IK failure (real kinematics),
steps planned from the controller's reference under a feedback delay (with the MuJoCo arm)."""
from __future__ import annotations

import numpy as np
import pytest

from collections import deque

from bridge_fixtures import cell, limits, q_for_hand, sim2real_config
from legion_bridge.calibration import Calibration, Transform
from legion_bridge.hand import HandFrames
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.sim.sim_arm import SimArm
from legion_bridge.sim2real import Sim2RealConfig, Sim2RealCore
from legion_policy.observation_layout import ACTION_SPEC

MODEL, KIN, CAL, HAND, PARAMS = cell()
NAMES = MODEL.joint_names
START = np.array([0.0, 0.6, 0.2])


#: limits that do not shape the motion, to test the action semantics alone
FREE = dict(acceleration_limits=[1e4] * 7, velocity_scale=1.0)


def _core(limit_overrides=None, **cfg):
    return Sim2RealCore(HAND, limits(**(limit_overrides or {})), sim2real_config(**cfg), enabled=True)


def _run(core, actions, q0, track=1.0, t0=10.0):
    """Feed actions one per period; the arm moves ``track`` of the way to each command per period."""
    q, now, cmds = q0.copy(), t0, []
    for a in actions:
        core.on_joint_state(NAMES, q, now, now)
        cmd = core.on_action(a, now)
        cmds.append(cmd)
        if cmd is not None:
            q = q + track * (cmd.q - q)
        now += core.cfg.period_s
    return q, now, cmds


def test_measured_base_moves_the_hand_by_action_times_scale():
    """target_base measured, a controller that reaches each command: hand moves a x 0.01 m per step."""
    core = _core(FREE, target_base="measured")
    q0 = q_for_hand(START)
    a = np.array([0.6, -0.4, 0.3, -1.0])
    q, _, cmds = _run(core, [a] * 5, q0)
    assert all(c.kind == "move" for c in cmds)
    moved = HAND.hand_sim(q) - HAND.hand_sim(q0)
    np.testing.assert_allclose(moved, 5 * a[:3] * ACTION_SPEC.position_scale, atol=2e-4)
    assert cmds[-1].gripper == -1.0 and cmds[-1].horizon_s == pytest.approx(core.cfg.horizon_s)


def test_commanded_base_accumulates_like_metaworld_mocap():
    """target_base commanded: the target advances a x 0.01 m per step even while the arm lags."""
    core = _core(FREE, target_base="commanded")
    q0 = q_for_hand(START)
    a = np.array([0.0, 1.0, 0.0, 0.0])
    q, _, _ = _run(core, [a] * 8, q0, track=0.5)
    target = core.s.target_hand
    np.testing.assert_allclose(target, START + 8 * a[:3] * 0.01, atol=1e-9)
    hand = HAND.hand_sim(q)
    assert 0.0 < target[1] - hand[1] <= core.cfg.max_target_lead_m  # lags, within the lead cap
    # the lead cap: a stuck arm (no tracking) lets the target run at most max_target_lead_m ahead
    core2 = _core(FREE, target_base="commanded", max_target_lead_m=0.03)
    _run(core2, [a] * 10, q0, track=0.0)
    assert core2.s.target_hand[1] - START[1] <= 0.03 + 0.01 + 1e-9


def test_target_is_clipped_to_the_workspace_box():
    core = _core(FREE, target_base="measured")
    lo = CAL.workspace_min
    q0 = q_for_hand([0.0, 0.6, lo[2] + 0.004])
    q, _, cmds = _run(core, [[0, 0, -1.0, 0]] * 3, q0)
    assert all(c.kind == "move" for c in cmds)
    assert HAND.hand_sim(q)[2] == pytest.approx(lo[2], abs=2e-4)  # not 3 cm lower: the table is safe


def test_nothing_moves_until_enabled_and_disable_holds():
    core = Sim2RealCore(HAND, limits(), sim2real_config(), enabled=False)
    q0 = q_for_hand(START)
    _, now, cmds = _run(core, [[1, 0, 0, 1]] * 4, q0)
    assert cmds == [None] * 4 and core.counter.counts["disabled"] == 4
    assert core.set_enabled(True, now) is None
    core.on_joint_state(NAMES, q0, now, now)
    cmd = core.on_action([1, 0, 0, 1], now)
    assert cmd.kind == "move"
    hold = core.set_enabled(False, now)
    assert hold.kind == "hold" and np.array_equal(hold.q, q0) and hold.gripper is None
    assert core.on_action([1, 0, 0, 1], now) is None


def test_watchdog_holds_when_actions_or_joint_states_stop():
    core = _core()
    cfg = core.cfg
    q0 = q_for_hand(START)
    q, now, _ = _run(core, [[0.5, 0, 0, 0]] * 3, q0)
    now -= cfg.period_s  # time of the last action
    core.on_joint_state(NAMES, q, now, now)
    # actions stop while joint states keep coming (the policy died): nothing within the timeout,
    # then one hold at the measured joints
    t = now + (cfg.action_timeout_periods - 0.5) * cfg.period_s
    core.on_joint_state(NAMES, q, t, t)
    assert core.tick(t) is None
    t = now + (cfg.action_timeout_periods + 0.5) * cfg.period_s
    core.on_joint_state(NAMES, q, t, t)
    hold = core.tick(t)
    assert hold.kind == "hold" and np.array_equal(hold.q, q) and core.holding
    assert core.tick(now + 10 * cfg.period_s) is None  # held: no repeated commands
    assert core.counter.counts["watchdog"] == 1
    # the policy comes back: no motion until a new enable (the watchdog disabled motion)
    now += 11 * cfg.period_s
    core.on_joint_state(NAMES, q, now, now)
    assert not core.enabled and core.on_action([0.5, 0, 0, 0], now) is None
    assert core.set_enabled(True, now) is None
    assert core.on_action([0.5, 0, 0, 0], now).kind == "move"
    # joint states stop (and with them observations and actions): the next tick past the timeout
    # holds the last valid measurement, and motion stays enabled
    t_js = now
    now += (cfg.joint_state_timeout_periods + 0.5) * cfg.period_s
    hold = core.tick(now)
    assert hold.kind == "hold" and np.array_equal(hold.q, q) and core.counter.counts["watchdog"] == 2
    assert core.enabled
    assert core.tick(now + 0.2) is None and core.enabled  # a 200 ms dropout: still enabled, no repeats
    # an action without a fresh joint state is refused (counted); the hold was already sent
    assert core.on_action([0.5, 0, 0, 0], now + 0.1) is None
    assert core.counter.counts["joint_state_missing"] == 1
    # joint states come back: actions get one timeout of grace before the policy counts as lost
    now += 0.2
    core.on_joint_state(NAMES, q, now, now)
    assert core.tick(now + 0.5 * cfg.action_timeout_periods * cfg.period_s) is None and core.enabled
    assert t_js < now
    core.on_joint_state(NAMES, q, now, now)
    assert core.on_action([0.5, 0, 0, 0], now).kind == "move"
    # enabling re-arms the action watchdog only with the first action (a policy still loading is fine)
    core.set_enabled(False, now)
    core.set_enabled(True, now)
    t = now + 100 * cfg.period_s
    core.on_joint_state(NAMES, q, t, t)
    assert core.tick(t) is None and core.enabled
    # without action_watchdog_disables the returning policy resumes at once
    core2 = _core(action_watchdog_disables=False)
    q, now, _ = _run(core2, [[0.5, 0, 0, 0]] * 3, q0)
    for k in range(int(cfg.action_timeout_periods) + 3):  # joint states keep coming, actions do not
        t = now + k * cfg.period_s
        core2.on_joint_state(NAMES, q, t, t)
    assert core2.tick(t).kind == "hold" and core2.enabled
    assert core2.tick(t) is None


def test_unreachable_target_is_refused_as_ik_failure():
    """A box reaching beyond the arm: the IK misses, the command is a hold, counted as ik_failed."""
    far = Calibration(CAL.sim_from_base, CAL.base_from_camera, np.array([-3.0, -3.0, -3.0]), np.array([3.0, 3.0, 3.0]))
    kin = Kinematics(MODEL, sim_from_base=far.sim_from_base)
    hand = HandFrames(kin, far)
    lim = limits()
    lim = type(lim)(**{**lim.__dict__, "workspace_min": far.workspace_min, "workspace_max": far.workspace_max})
    core = Sim2RealCore(hand, lim, sim2real_config(target_base="commanded", max_target_lead_m=10.0), enabled=True)
    q0 = q_for_hand(START)
    q, _, cmds = _run(core, [[0, 0, -1.0, 0]] * 200, q0, track=0.0)  # the target sinks 2 m below the table
    assert core.counter.counts["ik_failed"] > 0
    assert any(c is not None and c.kind == "hold" for c in cmds)


def test_config_validation():
    with pytest.raises(ValueError, match="target_base"):
        Sim2RealConfig(target_base="mocap")
    with pytest.raises(ValueError, match="horizon_s"):
        Sim2RealConfig(horizon_s=0.0)
    with pytest.raises(ValueError, match="reference_lead_s"):
        Sim2RealConfig(reference_lead_s=-0.001)
    with pytest.raises(ValueError, match="reference_lead_s"):
        Sim2RealConfig(horizon_s=0.025, reference_lead_s=0.03)  # more than a horizon ahead
    cfg = Sim2RealConfig.from_params({"period_s": 0.05, "target_base": "measured", "unrelated": 1})
    assert cfg.period_s == 0.05 and cfg.target_base == "measured"
    assert Sim2RealConfig(reference_lead_s=0.0).reference_lead_s == 0.0  # 0 = plan from the measurement


def test_watchdog_blames_the_policy_only_while_observations_flow():
    """Observations stop (real2sim saw a stale input): hold, stay enabled; observations flow but no
    actions come: the policy is lost, hold and disable."""
    core = _core()
    cfg = core.cfg
    q0 = q_for_hand(START)
    q, now = q0.copy(), 10.0
    for _ in range(3):
        core.on_joint_state(NAMES, q, now, now)
        core.on_observation(now)
        assert core.on_action([0.3, 0, 0, 0], now).kind == "move"
        now += cfg.period_s
    # joint states keep coming, observations and actions stop: an upstream stall
    for _ in range(int(cfg.action_timeout_periods) + 2):
        core.on_joint_state(NAMES, q, now, now)
        cmd = core.tick(now)
        now += cfg.period_s
    assert core.holding and core.enabled and core.counter.counts["watchdog"] == 1
    # observations come back, the policy answers: motion resumes without an enable
    core.on_joint_state(NAMES, q, now, now)
    core.on_observation(now)
    assert core.tick(now) is None
    assert core.on_action([0.3, 0, 0, 0], now).kind == "move"
    # observations flow, actions do not: the policy is lost
    for _ in range(int(cfg.action_timeout_periods) + 2):
        now += cfg.period_s
        core.on_joint_state(NAMES, q, now, now)
        core.on_observation(now)
        cmd = core.tick(now) or cmd
    assert not core.enabled and core.counter.counts["watchdog"] == 2 and cmd.kind == "hold"


def _hand_travel(delay_s: float, reference_lead_s: float, periods: int = 40) -> float:
    """Hand travel along +y [m] of the MuJoCo arm under a constant full action, with the joint states sim2real
    sees ``delay_s`` old (the graph's feedback delay: joint state -> observation -> action -> command)."""
    arm = SimArm("reach-v3", seed=0)
    arm.advance(0.2)
    core = Sim2RealCore(HAND, limits(), sim2real_config(reference_lead_s=reference_lead_s), enabled=True)
    names = list(arm.joint_names)
    history = deque([(arm.time, arm.joint_positions())], maxlen=200)
    y0 = arm.cell.hand_pos()[1]
    for _ in range(periods):
        now = arm.time
        seen = [h for h in history if h[0] <= now - delay_s + 1e-9]
        t_js, q = seen[-1] if seen else history[0]
        assert core.on_joint_state(names, q, t_js, now)
        cmd = core.on_action([0.0, 1.0, 0.0, -1.0], now)
        assert cmd.kind == "move"
        arm.command_trajectory(names, [cmd.horizon_s], [cmd.q])
        for _ in range(int(round(core.cfg.period_s / arm.timestep))):
            arm.step(1)
            history.append((arm.time, arm.joint_positions()))
    return float(arm.cell.hand_pos()[1] - y0)


def test_a_feedback_delay_does_not_slow_the_arm():
    """Steps start where the previous command has the controller (not at the delayed measurement): with
    joint states 15 ms old the hand covers what it covers without delay; planned from the measurement
    (reference_lead_s 0) every command loses the delay's motion and the hand is much slower."""
    lead = sim2real_config().reference_lead_s
    assert lead > 0  # the shipped default plans from the reference
    fresh, delayed = _hand_travel(0.0, lead), _hand_travel(0.015, lead)
    assert fresh > 0.15  # 0.5 s at full action
    assert delayed >= 0.95 * fresh
    assert _hand_travel(0.015, 0.0) <= 0.8 * fresh


def test_the_step_start_stays_within_the_lead_of_the_measurement_and_resets_on_hold():
    """An arm that does not follow (stuck): the reference may lead the measured joints by at most
    reference_lead_s of motion at the velocity limit, so no command goes further than (horizon + lead) of
    motion from the measurement; after a hold the next step starts at the measured joints."""
    core = _core()
    cfg, lim = core.cfg, core.limits
    q0 = q_for_hand(START)
    _, now, cmds = _run(core, [[0.0, 1.0, 0.0, 0.0]] * 12, q0, track=0.0)
    assert all(c.kind == "move" for c in cmds)
    assert np.any(np.abs(cmds[-1].q - q0) > lim.max_velocity * cfg.horizon_s)  # the lead is used
    for c in cmds:
        assert np.all(np.abs(c.q - q0) <= lim.max_velocity * (cfg.horizon_s + cfg.reference_lead_s) * (1 + 1e-9))
    ref = core.reference(now)
    assert np.all(np.abs(ref - q0) <= lim.max_velocity * cfg.reference_lead_s * (1 + 1e-9))
    assert core.set_enabled(False, now).kind == "hold"
    core.set_enabled(True, now)
    assert core.reference(now) is None
    core.on_joint_state(NAMES, q0, now, now)
    first = core.on_action([0.0, 1.0, 0.0, 0.0], now)
    assert np.all(np.abs(first.q - q0) <= lim.max_velocity * cfg.horizon_s * (1 + 1e-9))


def test_binding_finger_yaw_is_reached_by_a_rate_limited_turn_that_keeps_the_hand():
    """A binding naming finger_yaw_deg turns the fingers there: never faster than the rate limit, with the
    acceleration limit, the hand held where the policy puts it, and the yaw kept once reached."""
    core = _core(FREE, target_base="commanded", finger_yaw_rate_deg_s=60.0, finger_yaw_acceleration_deg_s2=300.0)
    q0 = q_for_hand(START)
    assert abs(KIN.finger_yaw(q0)) < 1e-6                      # starts with the fingers along sim x
    assert core.on_binding('{"objects": [], "goal": [0, 0.6, 0.2], "finger_yaw_deg": 90}') is None
    q, now, cmds, yaws = q0.copy(), 10.0, [], []
    for _ in range(200):                                       # 2.5 s of "stay here" actions
        core.on_joint_state(NAMES, q, now, now)
        cmds.append(core.on_action(np.zeros(4), now))
        q = cmds[-1].q
        yaws.append(core.status()["finger_yaw_commanded_deg"])
        now += core.cfg.period_s
    assert all(c.kind == "move" for c in cmds)
    # the commanded joints carry the commanded yaw (to the IK's orientation tolerance)
    achieved = np.degrees([KIN.finger_yaw(c.q) for c in cmds])
    np.testing.assert_allclose(achieved, yaws, atol=np.degrees(KIN.config.orientation_tolerance))
    yaws = np.array(yaws)
    rates = np.diff(yaws) / core.cfg.period_s
    assert rates.max() <= 60.0 + 1e-6 and rates.min() >= 0.0
    assert np.abs(np.diff(rates)).max() / core.cfg.period_s <= 300.0 * 1.01
    assert yaws[-1] == pytest.approx(90.0, abs=1e-9)
    first = int(np.argmax(yaws >= 90.0 - 1e-3))
    assert 1.5 <= first * core.cfg.period_s <= 2.0                  # 90 deg at 60 deg/s with ramps: ~1.7 s
    np.testing.assert_allclose(HAND.hand_sim(q), START, atol=1e-3)  # the hand stayed put while turning
    # the fingers now open along sim y
    R_sim = CAL.sim_from_base.R @ KIN.fk(q)[1]
    np.testing.assert_allclose(np.abs(R_sim[:, 1]), [0.0, 1.0, 0.0], atol=1e-3)
    assert core.status()["finger_yaw_goal_deg"] == 90.0


def test_finger_yaw_turn_restarts_from_the_measured_yaw_after_a_hold():
    core = _core(FREE, target_base="measured")
    q0 = q_for_hand(START)
    core.on_binding({"objects": [], "goal": [0, 0.6, 0.2], "finger_yaw_deg": -90})
    q, now, _ = _run(core, [np.zeros(4)] * 40, q0)             # half a second: mid-turn
    mid = np.degrees(KIN.finger_yaw(q))
    assert -80.0 < mid < -5.0
    core.set_enabled(False, now)
    core.set_enabled(True, now)
    _, _, cmds = _run(core, [np.zeros(4)], q, t0=now)
    # the first command after the re-enable continues from where the arm is, at most one period of rate away
    assert abs(np.degrees(KIN.finger_yaw(cmds[0].q)) - mid) <= 300.0 * core.cfg.period_s ** 2 + 1e-6


@pytest.mark.parametrize("bad", ['{"finger_yaw_deg": 400}', '{"finger_yaw_deg": "east"}', "not json",
                                 '{"objects": "puck"}'])
def test_a_bad_binding_is_counted_and_keeps_the_finger_yaw(bad):
    core = _core(FREE)
    core.on_binding({"objects": [], "finger_yaw_deg": 45})
    assert core.on_binding(bad) is not None
    assert core.counter.counts["binding_invalid"] == 1 and np.degrees(core.yaw_goal) == pytest.approx(45.0)
    core.on_binding({"objects": []})                           # no finger yaw named: kept
    assert np.degrees(core.yaw_goal) == pytest.approx(45.0)


def test_finger_yaw_config_must_be_positive():
    with pytest.raises(ValueError, match="finger_yaw_rate_deg_s must be a positive number"):
        Sim2RealConfig(finger_yaw_rate_deg_s=0.0)
