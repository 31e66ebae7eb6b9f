"""The observation layouts against real Metaworld v3 environments, bit for bit.

For every MT10 task a real environment is stepped (random actions, then its scripted
expert from ``metaworld.policies``) and after every step the 39-d observation is rebuilt
from the environment's MuJoCo state only (body/geom/site poses, the claws, the task's
goal) through :class:`ObservationBuilder`, the path real2sim takes: it must equal the
environment's observation exactly. The object quaternion is handed over in ROS order
(x, y, z, w), as a PoseStamped carries it, and put into the task's order by the layout.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from legion_policy.observation_layout import (ACTION_SPEC, COMPACT12, HAND_FROM_TCP_M, LAYOUTS, METAWORLD39,
                                              ObservationBuilder, ObservationLayout, Frame, get_layout,
                                              gripper_opening_from_gap, quat_in_order, quat_xyzw_in_order)
from legion_policy.tasks import quat_order

metaworld = pytest.importorskip("metaworld")
from metaworld.policies import ENV_POLICY_MAP  # noqa: E402

MT10 = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3")
RANDOM_STEPS = 25
EXPERT_STEPS = 60


def _geom_quat_xyzw(data, geom: str) -> np.ndarray:
    return Rotation.from_matrix(data.geom(geom).xmat.reshape(3, 3)).as_quat()


def _site_quat_xyzw(data, site: str) -> np.ndarray:
    return Rotation.from_matrix(data.site(site).xmat.reshape(3, 3)).as_quat()


def _body_quat_xyzw(data, body: str) -> np.ndarray:
    w, x, y, z = data.body(body).xquat
    return np.array([x, y, z, w])


#: What each task tracks as object 1, read from the MuJoCo state: (position, quaternion (x, y, z, w)).
#: This is what a perception (or the sim cell) publishes as the object's PoseStamped.
OBJECT_POSE = {
    "reach-v3": lambda d: (d.body("obj").xpos, _geom_quat_xyzw(d, "objGeom")),
    "push-v3": lambda d: (d.body("obj").xpos, _geom_quat_xyzw(d, "objGeom")),
    "pick-place-v3": lambda d: (d.body("obj").xpos, _geom_quat_xyzw(d, "objGeom")),
    "door-open-v3": lambda d: (d.geom("handle").xpos, _geom_quat_xyzw(d, "handle")),
    "drawer-open-v3": lambda d: (d.body("drawer_link").xpos + np.array([0.0, -0.16, 0.0]),
                                 _body_quat_xyzw(d, "drawer_link")),
    "drawer-close-v3": lambda d: (d.body("drawer_link").xpos + np.array([0.0, -0.16, 0.05]), np.zeros(4)),
    "button-press-topdown-v3": lambda d: (d.body("button").xpos + np.array([0.0, 0.0, 0.193]),
                                          _body_quat_xyzw(d, "button")),
    "peg-insert-side-v3": lambda d: (d.site("pegGrasp").xpos, _site_quat_xyzw(d, "pegGrasp")),
    "window-open-v3": lambda d: (d.site("handleOpenStart").xpos, np.zeros(4)),
    "window-close-v3": lambda d: (d.site("handleCloseStart").xpos, np.zeros(4)),
}


def _frame_from_state(env, task: str) -> Frame:
    d = env.data
    gap = np.linalg.norm(d.body("rightclaw").xpos - d.body("leftclaw").xpos)
    pos, quat_xyzw = OBJECT_POSE[task](d)
    return Frame(hand_pos=d.body("hand").xpos.copy(), gripper_opening=float(gripper_opening_from_gap(gap)),
                 object1_pos=np.array(pos), object1_quat=quat_xyzw_in_order(quat_xyzw, quat_order(task)))


def _make_env(task: str, seed: int = 3):
    mt1 = metaworld.MT1(task, seed=seed)
    env = mt1.train_classes[task]()
    env.set_task(mt1.train_tasks[0])
    return env


def _goal(env) -> np.ndarray:
    """The goal as the task exposes it (its goal box clips it, as Metaworld's observation space does)."""
    if env._partially_observable:
        return np.zeros(3)
    return np.clip(env._target_pos, env.goal_space.low, env.goal_space.high)


@pytest.mark.parametrize("task", MT10)
def test_metaworld39_rebuilt_from_state_bit_for_bit(task):
    env = _make_env(task)
    obs, _ = env.reset()
    builder = ObservationBuilder(METAWORLD39)
    rebuilt = builder.build(_frame_from_state(env, task), _goal(env))
    np.testing.assert_array_equal(rebuilt, obs, err_msg=f"{task}: reset observation")
    expert = ENV_POLICY_MAP[task]()
    rng = np.random.default_rng(0)
    compared, moved = 0, 0.0
    for step in range(RANDOM_STEPS + EXPERT_STEPS):
        action = rng.uniform(-1, 1, 4) if step < RANDOM_STEPS else expert.get_action(obs)
        prev_obs = obs
        obs, *_ = env.step(action)
        rebuilt = builder.build(_frame_from_state(env, task), _goal(env))
        bad = np.flatnonzero(rebuilt != obs)
        assert bad.size == 0, (f"{task} step {step}: differs at {[METAWORLD39.labels()[i] for i in bad]}: "
                               f"rebuilt {rebuilt[bad]} env {obs[bad]}")
        # frame stacking: the previous block is the last observation's current block
        np.testing.assert_array_equal(METAWORLD39.get(obs, "prev_hand_pos"), METAWORLD39.get(prev_obs, "hand_pos"))
        compared += 1
        moved += float(np.linalg.norm(obs[:3] - prev_obs[:3]))
    assert compared == RANDOM_STEPS + EXPERT_STEPS
    assert moved > 0.05, f"{task}: the hand hardly moved ({moved:.3f} m); the comparison would prove little"
    # the goal is visible in these tasks, and the object quaternion is in the task's order
    assert np.any(METAWORLD39.get(obs, "goal_pos") != 0)
    quat = METAWORLD39.get(obs, "object1_quat")
    if quat_order(task) == "zero":
        assert np.all(quat == 0)
    else:
        assert abs(np.linalg.norm(quat) - 1.0) < 1e-9


@pytest.mark.parametrize("task", ["drawer-open-v3", "push-v3"])
def test_wrong_quaternion_order_is_detected(task):
    """The test above would catch a wrong per-task order: swapping it changes the observation."""
    env = _make_env(task)
    obs, _ = env.reset()
    frame = _frame_from_state(env, task)
    pos, q_xyzw = OBJECT_POSE[task](env.data)
    other = "xyzw" if quat_order(task) == "wxyz" else "wxyz"
    frame.object1_quat = quat_xyzw_in_order(q_xyzw, other)
    rebuilt = ObservationBuilder(METAWORLD39).build(frame, _goal(env))
    assert np.any(rebuilt[METAWORLD39.slice("object1_quat")] != obs[METAWORLD39.slice("object1_quat")])


def test_compact12_is_the_metaworld39_subset():
    """compact12 built from the same frames = hand, object 1, object 2 positions and goal of metaworld39."""
    task = "pick-place-v3"
    env = _make_env(task)
    env.reset()
    b39, b12 = ObservationBuilder(METAWORLD39), ObservationBuilder(COMPACT12)
    for b in (b39, b12):
        b.build(_frame_from_state(env, task), _goal(env))
    rng = np.random.default_rng(1)
    for _ in range(20):
        obs, *_ = env.step(rng.uniform(-1, 1, 4))
        frame, goal = _frame_from_state(env, task), _goal(env)
        o39, o12 = b39.build(frame, goal), b12.build(frame, goal)
        np.testing.assert_array_equal(o39, obs)
        for name in COMPACT12.field_names:
            np.testing.assert_array_equal(COMPACT12.get(o12, name), METAWORLD39.get(o39, name))
        np.testing.assert_array_equal(o12, np.concatenate([obs[0:3], obs[4:7], obs[11:14], obs[36:39]]))


def test_quaternion_orders_and_gripper_normalisation():
    q_xyzw = np.array([0.1, 0.2, 0.3, 0.9])
    np.testing.assert_array_equal(quat_xyzw_in_order(q_xyzw, "wxyz"), [0.9, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(quat_xyzw_in_order(q_xyzw, "xyzw"), q_xyzw)
    np.testing.assert_array_equal(quat_xyzw_in_order(q_xyzw, "zero"), np.zeros(4))
    # the two helpers agree
    np.testing.assert_array_equal(quat_in_order([0.9, 0.1, 0.2, 0.3], "xyzw"), q_xyzw)
    with pytest.raises(ValueError, match="unknown quaternion order"):
        quat_xyzw_in_order(q_xyzw, "zyxw")
    np.testing.assert_array_equal(gripper_opening_from_gap([-0.01, 0.0, 0.05, 0.1, 0.2]), [0, 0, 0.5, 1, 1])


def test_hand_from_tcp_matches_metaworld():
    """HAND_FROM_TCP_M is what Metaworld's gripper has between the hand body and the fingertip centre."""
    env = _make_env("reach-v3")
    env.reset()
    rng = np.random.default_rng(2)
    offsets = []
    for _ in range(60):
        env.step(rng.uniform(-1, 1, 4))
        offsets.append(env.data.body("hand").xpos - env.tcp_center)
    offsets = np.array(offsets)
    assert np.max(np.abs(offsets - np.array(HAND_FROM_TCP_M))) < 2e-3, offsets.mean(0)


def test_builder_frame_stacking_and_clipping():
    b = ObservationBuilder(METAWORLD39)
    f1 = Frame(hand_pos=np.array([0.0, 0.6, 0.2]), gripper_opening=1.0)
    f2 = Frame(hand_pos=np.array([2.0, 0.6, 0.2]), gripper_opening=0.3)  # x beyond Metaworld's hand box
    o1 = b.build(f1, [0.1, 0.8, 0.1])
    np.testing.assert_array_equal(METAWORLD39.get(o1, "prev_hand_pos"), f1.hand_pos)
    o2 = b.build(f2, [0.1, 0.8, 0.1])
    assert METAWORLD39.get(o2, "hand_pos")[0] == 0.525  # clipped as Metaworld clips
    np.testing.assert_array_equal(METAWORLD39.get(o2, "prev_hand_pos"), f1.hand_pos)
    assert METAWORLD39.get(o2, "prev_gripper_opening")[0] == 1.0
    b.reset()
    o3 = b.build(f2, [0, 0, 0])
    np.testing.assert_array_equal(METAWORLD39.get(o3, "prev_hand_pos"), METAWORLD39.get(o3, "hand_pos"))
    assert not np.array_equal(ObservationBuilder(METAWORLD39, clip=False).build(f2, [0, 0, 0])[:3], o3[:3])


def test_layout_round_trips_through_a_manifest_and_rejects_changes():
    for layout in LAYOUTS.values():
        d = json.loads(json.dumps(layout.to_dict()))
        back = ObservationLayout.from_dict(d)
        assert back is layout and back.bounds == layout.bounds
    d = METAWORLD39.to_dict()
    d["fields"][0], d["fields"][1] = d["fields"][1], d["fields"][0]
    with pytest.raises(ValueError, match="does not match"):
        ObservationLayout.from_dict(d)
    d = COMPACT12.to_dict()
    d["size"] = 13
    with pytest.raises(ValueError, match="declared size"):
        ObservationLayout.from_dict(d)
    with pytest.raises(KeyError, match="unknown observation layout"):
        get_layout("nope")
    assert len(METAWORLD39.labels()) == 39 and METAWORLD39.labels()[0] == "hand_pos.x"
    assert ACTION_SPEC.size == 4 and ACTION_SPEC.position_scale == 0.01
