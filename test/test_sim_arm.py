"""The sim_arm core: JTC semantics, velocity-limited joint position control, gripper, reset, rejections."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from legion_bridge.sim.sim_arm import CommandRejected, SimArm, Trajectory

warnings.filterwarnings("ignore", category=UserWarning)
STEADY_STATE_TOL_RAD = 1e-3


@pytest.fixture(scope="module", params=["iiwa7", "iiwa14"])
def sim(request):
    return SimArm("push-v3", robot=request.param, seed=0)


def step_targets(sim: SimArm) -> np.ndarray:
    """Joint targets far apart (gripper-down IK solutions over the workspace, wrist turned), free of the table."""
    hands = np.array([[-0.2, 0.5, 0.3], [0.2, 0.8, 0.2], [0.0, 0.6, 0.25]])
    q, seed = [], sim.joint_positions()
    for h in hands:  # warm-started: the same arm branch, so the joint-space step stays above the table
        res = sim.cell.kin.ik(sim.cell.sim_from_base.inverse().apply(h), seed)
        assert res.success
        q.append(res.q.copy())
        seed = res.q
    q = np.array(q)
    q[:, 6] += [1.0, -1.0, 0.0]  # turn the flange too
    return np.clip(q, sim.lower + 0.05, sim.upper - 0.05)


def arm_contacts(sim: SimArm) -> int:
    m, d = sim.cell.model, sim.cell.data
    arm = sim.cell.arm.body_ids
    return sum(int(m.geom_bodyid[c.geom1] in arm or m.geom_bodyid[c.geom2] in arm) for c in d.contact[:d.ncon])


def run_and_watch(sim: SimArm, seconds: float):
    """Advance, returning the largest |joint velocity| / datasheet limit seen per joint."""
    worst = np.zeros(7)
    for _ in range(int(round(seconds / sim.timestep))):
        sim.step()
        worst = np.maximum(worst, np.abs(sim.joint_velocities()) / sim.robot.velocity_limits)
        assert arm_contacts(sim) == 0  # free motion: nothing but the controller moves the arm
    return worst


def test_step_commands_tracked_to_1mrad_never_above_velocity_limits(sim):
    sim.reset(seed=0)
    worst = np.zeros(7)
    for target in step_targets(sim):
        sim.command_trajectory(sim.joint_names, [0.05], [target])  # a step: far faster than the limits allow
        worst = np.maximum(worst, run_and_watch(sim, 3.0))
        err = np.abs(sim.joint_positions() - target).max()
        assert err < STEADY_STATE_TOL_RAD, err
    assert worst.max() <= 1.0, worst
    assert worst.max() > 0.8  # the limit was actually used


def test_points_are_interpolated_over_time_from_start(sim):
    sim.reset(seed=0)
    q0 = sim.joint_positions()
    p1 = q0 + np.array([0.1, -0.1, 0.1, 0.1, -0.1, 0.1, 0.2])
    p2 = q0 + np.array([0.2, 0.0, -0.1, 0.2, 0.0, 0.2, 0.0])
    t0 = sim.time
    sim.command_trajectory(sim.joint_names, [1.0, 2.0], [p1, p2])
    q_des, _ = sim.trajectory.sample(t0 + 0.5)
    np.testing.assert_allclose(q_des, q0 + 0.5 * (p1 - q0), atol=1e-12)
    q_des, qd_des = sim.trajectory.sample(t0 + 1.5)
    np.testing.assert_allclose(q_des, 0.5 * (p1 + p2), atol=1e-12)
    np.testing.assert_allclose(qd_des, p2 - p1, atol=1e-12)
    sim.advance(1.0)
    assert np.abs(sim.joint_positions() - p1).max() < 0.01  # on time at the first point (within 10 mrad)
    sim.advance(1.5)
    assert np.abs(sim.joint_positions() - p2).max() < STEADY_STATE_TOL_RAD


def test_cubic_interpolation_when_points_carry_velocities():
    q0, qd0 = np.zeros(7), np.zeros(7)
    P = np.array([np.full(7, 1.0), np.full(7, 2.0)])
    V = np.array([np.full(7, 0.5), np.zeros(7)])
    tr = Trajectory(10.0, q0, qd0, np.array([1.0, 3.0]), P, V)
    for t, q, qd in ((10.0, 0.0, 0.0), (11.0, 1.0, 0.5), (13.0, 2.0, 0.0), (20.0, 2.0, 0.0)):
        a, b = tr.sample(t)
        np.testing.assert_allclose(a, q, atol=1e-12)
        np.testing.assert_allclose(b, qd, atol=1e-12)


def test_new_trajectory_replaces_the_running_one(sim):
    sim.reset(seed=0)
    q0 = sim.joint_positions()
    a = q0 + 0.6
    b = q0 - np.array([0.2, 0.1, 0.2, 0.1, 0.2, 0.1, 0.2])
    sim.command_trajectory(sim.joint_names, [3.0], [a])
    sim.advance(0.5)
    sim.command_trajectory(list(reversed(sim.joint_names)), [1.0], [b[::-1]])  # any joint order
    closest_to_a = np.inf
    for _ in range(int(3.0 / sim.timestep)):
        sim.step()
        closest_to_a = min(closest_to_a, np.abs(sim.joint_positions() - a).max())
    assert np.abs(sim.joint_positions() - b).max() < STEADY_STATE_TOL_RAD
    assert closest_to_a > 0.3


@pytest.mark.parametrize("bad, reason", [
    (dict(joint_names=["a1", "a2", "a3", "a4", "a5", "a6", "a7"]), "do not match"),
    (dict(positions=[[0.0] * 6]), "6 positions"),
    (dict(positions=[[np.nan] * 7]), "NaN"),
    (dict(positions=[[0.0, 0.0, 0.0, 2.5, 0.0, 0.0, 0.0]]), "joint_a4 = 2.5000 rad is outside"),
    (dict(times=[0.0]), "time_from_start must be > 0"),
    (dict(times=[1.0, 1.0], positions=[[0.0] * 7, [0.0] * 7]), "strictly increasing"),
    (dict(positions=[]), "no points"),
])
def test_bad_trajectories_are_rejected_and_the_arm_holds(sim, bad, reason):
    sim.reset(seed=0)
    sim.advance(0.2)
    q_before = sim.joint_positions()
    args = dict(joint_names=list(sim.joint_names), times=[0.5], positions=[[0.0] * 7])
    args.update(bad)
    if "times" not in bad and len(args["positions"]) != 1:
        args["times"] = [0.5 * (i + 1) for i in range(len(args["positions"]))]
    n = sim.rejected
    with pytest.raises(CommandRejected, match=reason):
        sim.command_trajectory(args["joint_names"], args["times"], args["positions"])
    assert sim.rejected == n + 1 and reason.split()[0] in sim.last_rejection
    sim.advance(0.5)
    assert np.abs(sim.joint_positions() - q_before).max() < 1e-5


def test_trajectory_start_time_from_the_header_stamp(sim):
    sim.reset(seed=0)
    q0 = sim.joint_positions()
    target = q0 + 0.1
    t = sim.time
    sim.command_trajectory(sim.joint_names, [0.5], [target], start_time=t + 1.0)  # starts in 1 s
    sim.advance(0.9)
    assert np.abs(sim.joint_positions() - q0).max() < 1e-5  # still waiting
    sim.advance(2.0)
    assert np.abs(sim.joint_positions() - target).max() < STEADY_STATE_TOL_RAD
    with pytest.raises(CommandRejected, match="after the simulation time"):  # a wall-clock stamp
        sim.command_trajectory(sim.joint_names, [0.5], [q0], start_time=1.7e9)
    with pytest.raises(CommandRejected, match="ends in the past"):
        sim.command_trajectory(sim.joint_names, [0.5], [q0], start_time=sim.time - 1.0)


def test_forward_position_command(sim):
    sim.reset(seed=0)
    target = sim.joint_positions() + 0.3
    sim.command_positions(target)
    worst = run_and_watch(sim, 2.0)
    assert np.abs(sim.joint_positions() - target).max() < STEADY_STATE_TOL_RAD
    assert worst.max() <= 1.0
    for bad in ([0.0] * 8, [np.inf] + [0.0] * 6, [3.1] + [0.0] * 6):
        with pytest.raises(CommandRejected):
            sim.command_positions(bad)


def test_gripper_commands(sim):
    g = sim.robot.gripper
    stroke_s = float(np.max(g.finger_upper / g.finger_velocity))  # a full stroke at the URDF finger speed
    sim.reset(seed=0)
    sim.command_gripper(1.0)
    sim.advance(1.5 * stroke_s)
    assert sim.gripper_gap() < 0.003
    sim.command_gripper(-1.0)
    sim.advance(1.5 * stroke_s)
    assert sim.gripper_gap() > 0.097
    for bad in (1.5, float("nan")):
        with pytest.raises(CommandRejected, match="gripper"):
            sim.command_gripper(bad)


def test_reset_keeps_time_running_and_can_switch_scene():
    sim = SimArm("reach-v3", seed=2)
    sim.advance(0.3)
    start = sim.joint_positions().copy()
    sim.command_positions(start + 0.2)
    sim.advance(1.0)
    t = sim.time
    sim.reset()
    assert sim.time == pytest.approx(t)
    assert np.abs(sim.joint_positions() - start).max() < 0.05  # back at a hand start
    sim.reset(scene="tabletop")
    assert sim.scene == "tabletop" and sim.time == pytest.approx(t)
    assert set(sim.success()) == {"push-v3", "button-press-topdown-v3", "reach-v3"}
    sim.advance(0.1)
    assert sim.time > t


def test_scripted_push_and_button_press_succeed_in_tabletop():
    """The cell is physically usable: gripper-down Cartesian moves (IK + JTC points, like sim2real) push
    the puck to its goal and press the button; the success predicates flip from False to True."""
    sim = SimArm("tabletop", seed=0)
    cell = sim.cell
    base_from_sim = cell.sim_from_base.inverse()
    q = sim.joint_positions()

    def move_to(target, grip, steps):
        nonlocal q
        sim.command_gripper(grip)
        start = cell.tcp_pose()[0]
        for k in range(steps):  # Metaworld-sized steps: <= 1 cm per 12.5 ms control period
            res = cell.kin.ik(base_from_sim.apply(start + (target - start) * (k + 1) / steps), q)
            q = res.q
            sim.command_trajectory(sim.joint_names, [0.05], [q])
            sim.advance(0.0125)
        sim.advance(0.3)

    assert not any(v["success"] for v in sim.success().values())
    puck, goal = cell.object_pose("puck")[0], cell.object_pose("push_goal")[0]
    d = goal - puck
    d[2] = 0.0
    d /= np.linalg.norm(d)
    move_to(np.r_[(puck - 0.07 * d)[:2], 0.10], 1.0, 60)
    move_to(np.r_[(puck - 0.07 * d)[:2], 0.02], 1.0, 30)
    move_to(np.r_[(goal - 0.02 * d)[:2], 0.02], 1.0, 150)
    assert sim.success()["push-v3"]["success"]
    move_to(np.r_[cell.tcp_pose()[0][:2], 0.25], 1.0, 30)
    button, button_goal = cell.object_pose("button")[0], cell.object_pose("button_goal")[0]
    move_to(np.r_[button[:2], button[2] + 0.05], 1.0, 80)
    assert not sim.success()["button-press-topdown-v3"]["success"]
    move_to(np.r_[button[:2], button_goal[2] - 0.03], 1.0, 40)
    s = sim.success()
    assert s["button-press-topdown-v3"]["success"], s
    assert s["push-v3"]["success"]  # the puck stayed at its goal
