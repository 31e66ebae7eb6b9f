"""Property tests of the safety envelope through the sim2real core (hypothesis).

Random streams of joint states and actions, well-formed and not (NaN, inf, huge values,
wrong lengths, wrong joint names, stale and future stamps), with enable toggles: every
command that leaves sim2real must be inside the joint position limits minus the margin,
within the velocity limit over the command horizon from where its step starts (at most
``reference_lead_s`` of motion at the velocity limit ahead of the measured joints), with its hand
(FK) inside the workspace box (or, where the measured hand is outside it, no further out on any
axis than the measured hand); every bad input must be counted under its reason.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_fixtures import cell, limits, q_for_hand, sim2real_config
from legion_bridge.safety import REASONS, RejectionCounter, SafetyEnvelope, SafetyLimits, check_action
from legion_bridge.sim2real import Sim2RealCore

MODEL, KIN, CAL, HAND, _ = cell()
NAMES = list(MODEL.joint_names)
Q_HOME = q_for_hand([0.0, 0.6, 0.2])
STATS = {"move": 0, "hold": 0, "events": 0}

BAD_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 1e9, -1e9, 1e300])
ACTION_VALUE = st.floats(-1.0, 1.0, allow_nan=False)


def action_strategy():
    good = st.lists(ACTION_VALUE, min_size=4, max_size=4)
    bad_value = st.tuples(st.lists(ACTION_VALUE, min_size=4, max_size=4), st.integers(0, 3), BAD_FLOATS).map(
        lambda t: t[0][:t[1]] + [t[2]] + t[0][t[1] + 1:])
    out_of_range = st.tuples(st.lists(ACTION_VALUE, min_size=4, max_size=4), st.integers(0, 3),
                             st.floats(1.01, 50.0), st.sampled_from([-1, 1])).map(
        lambda t: t[0][:t[1]] + [t[2] * t[3]] + t[0][t[1] + 1:])
    wrong_len = st.lists(ACTION_VALUE, min_size=0, max_size=9).filter(lambda a: len(a) != 4)
    return st.one_of(good, good, good, bad_value, out_of_range, wrong_len).map(lambda a: ("action", a))


def joint_state_strategy():
    """(kind, names, positions, stamp offset): kind says what is wrong ("ok" when nothing)."""
    dq = st.lists(st.floats(-0.6, 0.6, allow_nan=False), min_size=7, max_size=7)
    ok = dq.map(lambda d: ("ok", NAMES, list(Q_HOME + np.array(d)), 0.0))
    shuffled = st.tuples(dq, st.permutations(list(range(7)))).map(
        lambda t: ("ok", [NAMES[i] for i in t[1]], [float((Q_HOME + np.array(t[0]))[i]) for i in t[1]], 0.0))
    extra = dq.map(lambda d: ("ok", NAMES + ["gripper_finger_left_joint"], list(Q_HOME + np.array(d)) + [0.01], 0.0))
    nonfinite = st.tuples(dq, st.integers(0, 6), st.sampled_from([math.nan, math.inf, -math.inf])).map(
        lambda t: ("joint_state_not_finite", NAMES, [v if i != t[1] else t[2] for i, v in enumerate(Q_HOME + t[0])],
                   0.0))
    huge = st.tuples(dq, st.integers(0, 6), st.sampled_from([1e9, -1e9, 4.0, -4.0])).map(
        lambda t: ("joint_state_out_of_limits", NAMES,
                   [v if i != t[1] else t[2] for i, v in enumerate(Q_HOME + t[0])], 0.0))
    wrong_names = st.tuples(dq, st.integers(0, 6)).map(
        lambda t: ("joint_state_wrong_names", NAMES[:t[1]] + ["joint_x"] + NAMES[t[1] + 1:], list(Q_HOME + t[0]), 0.0))
    wrong_len = st.tuples(dq, st.integers(0, 6)).map(
        lambda t: ("joint_state_wrong_size", NAMES, list(Q_HOME + t[0])[:t[1]], 0.0))
    stale = st.tuples(dq, st.floats(0.11, 100.0)).map(lambda t: ("joint_state_stale", NAMES, list(Q_HOME + t[0]), -t[1]))
    future = st.tuples(dq, st.floats(0.06, 100.0)).map(
        lambda t: ("joint_state_from_future", NAMES, list(Q_HOME + t[0]), t[1]))
    return st.one_of(ok, ok, ok, shuffled, extra, nonfinite, huge, wrong_names, wrong_len, stale, future).map(
        lambda t: ("joint_state",) + t)


#: a regular control step: a fresh valid joint state near the last one, then a valid action
GOOD_STEP = st.tuples(st.lists(st.floats(-0.05, 0.05, allow_nan=False), min_size=7, max_size=7),
                      st.lists(ACTION_VALUE, min_size=4, max_size=4)).map(lambda t: ("step",) + t)

EVENTS = st.lists(st.one_of(GOOD_STEP, GOOD_STEP, GOOD_STEP, action_strategy(), joint_state_strategy(),
                            st.booleans().map(lambda b: ("enable", b)),
                            st.floats(0.0, 0.2).map(lambda dt: ("wait", dt))), min_size=5, max_size=40)


def _check_command(env: SafetyEnvelope, cmd, q_measured, horizon, reference_lead_s):
    lim = env.limits
    assert cmd.q.shape == (7,) and np.all(np.isfinite(cmd.q))
    assert np.all(cmd.q >= lim.soft_lower - 1e-12) and np.all(cmd.q <= lim.soft_upper + 1e-12), cmd
    reach = horizon + (reference_lead_s if cmd.kind == "move" else 0.0)  # a hold is the measured joints
    assert np.all(np.abs(cmd.q - q_measured) <= lim.max_velocity * reach * (1 + 1e-9) + 1e-15), cmd
    hand = HAND.hand_sim(cmd.q)
    tol = lim.box_tolerance_m
    # inside the box, or (where the measured hand is outside it) no further out than the measured hand
    hand_m = HAND.hand_sim(q_measured)
    lo, hi = np.minimum(lim.workspace_min - tol, hand_m), np.maximum(lim.workspace_max + tol, hand_m)
    assert np.all(hand >= lo) and np.all(hand <= hi), (hand, hand_m)
    if cmd.gripper is not None:
        assert -1.0 <= cmd.gripper <= 1.0


#: examples of the stream property test (LEGION_PROPERTY_EXAMPLES=2000 for a long run)
STREAM_EXAMPLES = int(os.environ.get("LEGION_PROPERTY_EXAMPLES", "150"))


@settings(max_examples=STREAM_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, start_enabled=st.sampled_from([True, True, False]))
def test_every_emitted_command_is_inside_the_envelope_and_every_rejection_is_counted(events, start_enabled):
    cfg = sim2real_config()
    core = Sim2RealCore(HAND, limits(), cfg, enabled=start_enabled)
    now = 100.0
    emitted = 0
    for ev in events:
        before = dict(core.counter.counts)
        total_before = core.counter.total
        cmd = None
        if ev[0] == "step":
            q = core.measured_q if core.measured_q is not None else Q_HOME
            now += sim2real_config().period_s
            assert core.on_joint_state(NAMES, np.clip(q + np.array(ev[1]), MODEL.lower, MODEL.upper), now, now)
            cmd = core.on_action(ev[2], now)
            if cmd is None or cmd.kind == "hold":
                assert core.counter.total >= total_before + 1, "a valid action that did not move must be counted"
        elif ev[0] == "wait":
            now += ev[1]
            cmd = core.tick(now)
        elif ev[0] == "enable":
            cmd = core.set_enabled(ev[1], now)
        elif ev[0] == "joint_state":
            _, kind, names, pos, stamp_offset = ev
            accepted = core.on_joint_state(names, pos, now + stamp_offset, now)
            assert accepted == (kind == "ok")
            if kind != "ok":
                assert core.counter.counts[kind] == before.get(kind, 0) + 1, (kind, core.counter.counts)
                assert core.counter.total == total_before + 1
            else:
                assert core.counter.total == total_before
        else:
            a = ev[1]
            valid = len(a) == 4 and all(math.isfinite(v) and -1 <= v <= 1 for v in a)
            was_enabled = core.enabled
            cmd = core.on_action(a, now)
            if not valid:
                assert core.counter.total >= total_before + 1
                reason = ("action_wrong_size" if len(a) != 4 else
                          "action_not_finite" if not all(math.isfinite(v) for v in a) else "action_out_of_range")
                assert core.counter.counts[reason] == before.get(reason, 0) + 1
                assert cmd is None or cmd.kind == "hold"
            elif not was_enabled:
                assert cmd is None and core.counter.counts["disabled"] == before.get("disabled", 0) + 1
            elif cmd is None or cmd.kind == "hold":
                assert core.counter.total >= total_before + 1, "a valid action that did not move must be counted"
        if cmd is not None:
            assert core.measured_q is not None
            _check_command(core.envelope, cmd, core.measured_q, cfg.horizon_s, cfg.reference_lead_s)
            assert cmd.kind == "hold" or core.enabled
            emitted += 1
            STATS[cmd.kind] += 1
        STATS["events"] += 1
        if not core.enabled:
            assert cmd is None or cmd.kind == "hold"
    assert set(core.counter.counts) <= set(REASONS)


@settings(max_examples=200, deadline=None)
@given(dq=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=7, max_size=7),
       target=st.lists(st.one_of(st.floats(-10.0, 10.0, allow_nan=False), BAD_FLOATS), min_size=7, max_size=7),
       v_prev=st.lists(st.floats(-5.0, 5.0, allow_nan=False), min_size=7, max_size=7),
       horizon=st.floats(0.005, 0.2), period=st.floats(0.005, 0.1),
       ref=st.one_of(st.none(), st.tuples(st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=7, max_size=7),
                                          st.floats(0.0, 0.05))))
def test_limit_command_never_returns_an_unsafe_command(dq, target, v_prev, horizon, period, ref):
    """Directly on the envelope: arbitrary (even absurd) IK targets, previous velocities and step starts."""
    lim = limits()
    env = SafetyEnvelope(lim, HAND.hand_sim)
    q_meas = np.clip(Q_HOME + np.array(dq) * 0.2, lim.lower, lim.upper)
    lead_s, q_ref = 0.0, None
    if ref is not None:  # a step start up to 1.5x the allowed lead away from the measurement
        lead_s = ref[1]
        q_ref = q_meas + np.array(ref[0]) * lim.max_velocity * lead_s
    before = env.counter.total
    res = env.limit_command(q_meas, np.array(target), np.array(v_prev), horizon, period, q_reference=q_ref,
                            reference_lead_s=lead_s)
    if hasattr(res, "q"):
        assert env.within(res.q, q_meas, horizon + lead_s)
        q0 = q_meas if q_ref is None else q_ref
        assert np.all(np.abs(res.q - q0) <= lim.max_velocity * horizon * (1 + 1e-9) + 1e-15)
        assert env.counter.total == before
        if not res.acceleration_overridden and np.all(np.abs(v_prev) <= lim.max_velocity):
            assert np.all(np.abs(res.velocity - np.array(v_prev)) <= lim.acceleration * period * (1 + 1e-9) + 1e-12)
    else:
        assert env.counter.total == before + 1 and res.reason in REASONS
    if q_ref is not None and np.any(np.abs(q_ref - q_meas) > lim.max_velocity * lead_s * (1 + 1e-6)):
        assert not hasattr(res, "q")  # a start too far ahead is refused
        assert res.reason == ("command_too_fast" if np.all(np.isfinite(target)) else "target_not_finite")


@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.one_of(ACTION_VALUE, BAD_FLOATS, st.floats(allow_nan=True, allow_infinity=True)),
                  min_size=0, max_size=6))
def test_check_action(a):
    res = check_action(a, 4, -1.0, 1.0)
    ok = len(a) == 4 and all(math.isfinite(v) and -1 - 1e-6 <= v <= 1 + 1e-6 for v in a)
    if ok:
        assert isinstance(res, np.ndarray) and np.all(np.abs(res) <= 1.0)
    else:
        assert res.reason in ("action_wrong_size", "action_not_finite", "action_out_of_range")


def test_acceleration_limit_over_consecutive_commands():
    """Full-speed actions from rest: the implied velocity ramps up by at most a_max x period per command."""
    cfg = sim2real_config()
    lim = limits()
    core = Sim2RealCore(HAND, lim, cfg, enabled=True)
    q, now, v_prev = Q_HOME.copy(), 0.0, np.zeros(7)
    for _ in range(30):
        core.on_joint_state(NAMES, q, now, now)
        cmd = core.on_action([1.0, 1.0, 0.0, 0.0], now)
        assert cmd is not None and cmd.kind == "move"
        v = (cmd.q - q) / cfg.horizon_s
        assert np.all(np.abs(v - v_prev) <= lim.acceleration * cfg.period_s * (1 + 1e-9) + 1e-12)
        assert np.all(np.abs(v) <= lim.max_velocity * (1 + 1e-9))
        q, v_prev, now = q + v * cfg.period_s, v, now + cfg.period_s
    assert core.envelope.acceleration_overrides == 0


def test_a_hand_just_outside_the_box_moves_back_in_and_never_further_out():
    """Metaworld starts button-press-topdown's hand at y = 0.40, the box edge; the servo settles
    1.5 mm short. Commands towards the box must go (they used to be refused forever: a dead arm);
    commands further out must not."""
    cfg = sim2real_config()
    lim = limits()
    edge_y = lim.workspace_min[1]
    q = q_for_hand([0.0, edge_y - 0.0015, 0.2])
    core = Sim2RealCore(HAND, lim, cfg, enabled=True)
    now, moves = 0.0, 0
    for _ in range(40):
        core.on_joint_state(NAMES, q, now, now)
        cmd = core.on_action([0.0, 1.0, 0.0, 0.0], now)  # +y: into the box
        assert cmd is not None and cmd.kind == "move", core.counter.counts
        assert HAND.hand_sim(cmd.q)[1] >= HAND.hand_sim(q)[1] - 1e-9
        q, now, moves = cmd.q, now + cfg.period_s, moves + 1
    assert HAND.hand_sim(q)[1] > edge_y + 0.01
    # from outside, a command that would go further out is clipped to the box target and never leaves
    # more than the measured hand did
    env = SafetyEnvelope(lim, HAND.hand_sim)
    q_out = q_for_hand([0.0, edge_y - 0.0015, 0.2])
    further = q_for_hand([0.0, edge_y - 0.02, 0.2])
    res = env.limit_command(q_out, further, np.zeros(7), cfg.horizon_s, cfg.period_s)
    assert not hasattr(res, "q") and res.reason == "outside_workspace"
    assert env.within(q_out, q_out, cfg.horizon_s) and not env.within(q_out)


def test_hold_refuses_a_measured_pose_outside_the_envelope():
    lim = limits()
    env = SafetyEnvelope(lim, HAND.hand_sim)
    assert np.array_equal(env.hold(Q_HOME), Q_HOME)
    q = Q_HOME.copy()
    q[3] = lim.upper[3] - 0.01  # inside the hard limits, outside the margin
    assert env.hold(q) is None
    assert env.hold(np.full(7, np.nan)) is None


def test_limits_validation_names_the_problem():
    model, _, cal, _, params = cell()
    with pytest.raises(ValueError, match="acceleration_limits"):
        SafetyLimits.from_model(model, cal.workspace_min, cal.workspace_max, {})
    with pytest.raises(ValueError, match="acceleration needs 7"):
        SafetyLimits.from_model(model, cal.workspace_min, cal.workspace_max, {"acceleration_limits": [1.0] * 6})
    with pytest.raises(ValueError, match="velocity_scale"):
        limits(velocity_scale=1.5)
    with pytest.raises(ValueError, match="position_margin"):
        limits(position_margin=3.0)
    counter = RejectionCounter()
    with pytest.raises(ValueError, match="unknown rejection reason"):
        counter.add("because")


def test_the_property_test_exercised_moves_and_holds():
    """Runs after the property test (file order): it must have seen real commands, not only rejections."""
    print("commands emitted by the property test:", STATS)
    assert STATS["move"] > 40 and STATS["hold"] >= 1, STATS
