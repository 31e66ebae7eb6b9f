"""The real2sim core: FK + calibration, object frames and quaternion order, binding, staleness, stacking."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from bridge_fixtures import cell, q_for_hand
from legion_bridge.calibration import Calibration, Transform
from legion_bridge.hand import HandFrames
from legion_bridge.real2sim import Binding, Real2SimConfig, Real2SimCore
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import GRIPPER_GAP_JOINT
from legion_policy.observation_layout import COMPACT12, HAND_FROM_TCP_M, METAWORLD39

MODEL, KIN, CAL, HAND, PARAMS = cell()
NAMES = MODEL.joint_names
CFG = Real2SimConfig(max_joint_state_age_s=0.1, max_gripper_age_s=0.25, max_object_age_s=0.5)
BINDING = {"skill": "push-v3", "objects": ["puck"], "goal": None, "goal_object": "push_goal", "quat_order": "xyzw"}


def _core(layout=METAWORLD39, hand=HAND, cfg=CFG):
    return Real2SimCore(hand, layout, cfg, NAMES, GRIPPER_GAP_JOINT)


def _feed(core, t, q, gap=0.1, puck=((0.05, 0.7, 0.02), (0, 0, 0, 1)), goal=((0.0, 0.85, 0.02), (0, 0, 0, 1))):
    core.on_joint_state(NAMES, q, t)
    core.on_gripper_state([GRIPPER_GAP_JOINT], [gap], t)
    core.on_object_pose("puck", "sim_world", *puck, t)
    core.on_object_pose("push_goal", "sim_world", *goal, t)


def test_hand_is_fk_through_the_calibration_plus_the_metaworld_hand_offset():
    rng = np.random.default_rng(0)
    core = _core()
    core.on_binding(json.dumps(BINDING))
    for _ in range(20):
        q = rng.uniform(MODEL.lower, MODEL.upper)
        _feed(core, 1.0, q)
        obs = core.observe(1.0)
        p_base, _ = KIN.fk(q)
        tcp_sim = CAL.sim_from_base.R @ p_base + CAL.sim_from_base.t
        np.testing.assert_allclose(core.last_tcp_sim, tcp_sim, atol=1e-12)
        np.testing.assert_allclose(METAWORLD39.get(obs, "hand_pos"),
                                   np.clip(tcp_sim + HAND_FROM_TCP_M, (-0.525, 0.348, -0.0525), (0.525, 1.025, 0.7)),
                                   atol=1e-12)


def test_hand_reaches_a_commanded_sim_point():
    core = _core()
    core.on_binding(BINDING)
    target = np.array([0.05, 0.7, 0.15])
    _feed(core, 1.0, q_for_hand(target))
    np.testing.assert_allclose(METAWORLD39.get(core.observe(1.0), "hand_pos"), target, atol=1e-4)


def test_objects_in_every_frame_and_quaternion_orders():
    """The same physical pose given in the sim, base and camera frames gives the same observation."""
    cam = Transform.from_xyz_rpy([0.3, -0.2, 0.4], [0.2, -0.5, 1.1])
    cal = Calibration(CAL.sim_from_base, cam, CAL.workspace_min, CAL.workspace_max)
    hand = HandFrames(Kinematics(MODEL, sim_from_base=cal.sim_from_base), cal)
    p_sim = np.array([0.05, 0.7, 0.02])
    R_sim = Rotation.from_euler("xyz", [0.1, 0.2, 0.7]).as_matrix()
    q_sim = Rotation.from_matrix(R_sim).as_quat()  # x, y, z, w
    base_from_sim = cal.sim_from_base.inverse()
    cam_from_sim = cal.sim_from_camera.inverse()
    poses = {
        "sim_world": (p_sim, q_sim),
        "iiwa_base": (base_from_sim.apply(p_sim), Rotation.from_matrix(base_from_sim.R @ R_sim).as_quat()),
        "camera": (cam_from_sim.apply(p_sim), Rotation.from_matrix(cam_from_sim.R @ R_sim).as_quat()),
    }
    q = q_for_hand([0.0, 0.6, 0.2])
    for order in ("xyzw", "wxyz", "zero"):
        for frame, (p, quat) in poses.items():
            core = Real2SimCore(hand, METAWORLD39, CFG, NAMES, GRIPPER_GAP_JOINT)
            core.on_binding({**BINDING, "quat_order": order})
            _feed(core, 1.0, q)
            assert core.on_object_pose("puck", frame, p, quat, 1.0)
            obs = core.observe(1.0)
            np.testing.assert_allclose(METAWORLD39.get(obs, "object1_pos"), p_sim, atol=1e-12)
            got = METAWORLD39.get(obs, "object1_quat")
            if order == "zero":
                assert np.all(got == 0)
                continue
            xyzw = got if order == "xyzw" else np.roll(got, -1)
            assert abs(abs(np.dot(xyzw, q_sim)) - 1.0) < 1e-12, (frame, order)  # same rotation (up to sign)
    # the sim frame passes the quaternion through untouched (bit for bit), in the task's order
    core = _core()
    core.on_binding({**BINDING, "quat_order": "wxyz"})
    _feed(core, 1.0, q, puck=(p_sim, q_sim))
    np.testing.assert_array_equal(METAWORLD39.get(core.observe(1.0), "object1_quat"), [q_sim[3], *q_sim[:3]])
    assert not core.on_object_pose("puck", "world_of_warcraft", p_sim, q_sim, 1.0)
    assert core.rejections["object_unknown_frame"] == 1
    assert not core.on_object_pose("puck", "sim_world", [np.nan, 0, 0], q_sim, 1.0)


def test_binding_goal_sources_and_second_object():
    q = q_for_hand([0.0, 0.6, 0.2])
    core = _core()
    core.on_binding(BINDING)
    _feed(core, 1.0, q)
    np.testing.assert_array_equal(METAWORLD39.get(core.observe(1.0), "goal_pos"), [0.0, 0.85, 0.02])
    core.on_binding({"objects": ["puck", "push_goal"], "goal": [0.1, 0.8, 0.3], "goal_object": None, "quat_order": "xyzw"})
    obs = core.observe(1.0)
    np.testing.assert_array_equal(METAWORLD39.get(obs, "goal_pos"), [0.1, 0.8, 0.3])
    np.testing.assert_array_equal(METAWORLD39.get(obs, "object2_pos"), [0.0, 0.85, 0.02])
    core.on_binding({"objects": [], "goal": None, "goal_object": None, "quat_order": "zero"})
    obs = core.observe(1.0)
    assert np.all(METAWORLD39.get(obs, "goal_pos") == 0) and np.all(METAWORLD39.get(obs, "object1_pos") == 0)
    for bad in ("{not json", json.dumps({"objects": ["a", "b", "c"]}), json.dumps({"quat_order": "zyx"}),
                json.dumps({"goal": [1, 2], "objects": []}), json.dumps({"goal": [0, 0, 0], "goal_object": "x"}),
                json.dumps({"goal": [None, 0.6, 0.2]}), "[1, 2]"):
        assert not core.on_binding(bad)   # refused and counted, never a traceback out of the callback
    assert core.rejections["binding_invalid"] == 7
    assert core.binding.quat_order == "zero"  # the last valid binding stays
    with pytest.raises(ValueError, match="not JSON"):
        Binding.parse("{")


def test_staleness_of_any_input_stops_observations_and_names_it():
    q = q_for_hand([0.0, 0.6, 0.2])
    core = _core()
    assert any("binding" in s for s in core.observe(0.0))
    core.on_binding(BINDING)
    assert set(s.split(":")[0] for s in core.observe(0.0)) == {"joint_states", "gripper", "object puck",
                                                             "object push_goal"}
    _feed(core, 1.0, q)
    assert isinstance(core.observe(1.05), np.ndarray)
    stale = core.observe(1.0 + CFG.max_joint_state_age_s + 0.01)
    assert [s.split(":")[0] for s in stale] == ["joint_states"]
    core.on_joint_state(NAMES, q, 1.2)
    core.on_gripper_state([GRIPPER_GAP_JOINT], [0.1], 1.2)
    stale = core.observe(1.2 + 0.05)
    assert isinstance(stale, np.ndarray)
    stale = core.observe(1.0 + CFG.max_object_age_s + 0.01)
    assert sorted(s.split(":")[0] for s in stale) == ["gripper", "joint_states", "object puck", "object push_goal"]
    # a stamp from the future (mismatched clocks) is not fresh either
    _feed(core, 5.0, q)
    assert all("future" in s for s in core.observe(4.0))
    # wrong joint names / sizes are refused and counted
    assert not core.on_joint_state(["a"] * 7, q, 5.0)
    assert not core.on_joint_state(NAMES, q[:6], 5.0)
    assert not core.on_gripper_state(["finger"], [0.05], 5.0)
    assert core.rejections == {"joint_state_wrong_names": 1, "joint_state_wrong_size": 1,
                               "gripper_joint_state_wrong_names": 1}


def test_frame_stacking_gripper_opening_and_restart():
    q1, q2 = q_for_hand([0.0, 0.6, 0.2]), q_for_hand([0.0, 0.61, 0.2])
    core = _core()
    core.on_binding(BINDING)
    _feed(core, 1.0, q1, gap=0.1)
    o1 = core.observe(1.0)
    np.testing.assert_array_equal(METAWORLD39.get(o1, "prev_hand_pos"), METAWORLD39.get(o1, "hand_pos"))
    _feed(core, 1.0125, q2, gap=0.05)
    o2 = core.observe(1.0125)
    np.testing.assert_array_equal(METAWORLD39.get(o2, "prev_hand_pos"), METAWORLD39.get(o1, "hand_pos"))
    assert METAWORLD39.get(o2, "gripper_opening")[0] == pytest.approx(0.5)
    assert METAWORLD39.get(o2, "prev_gripper_opening")[0] == 1.0
    # a gap of several periods starts a new episode: previous = current
    _feed(core, 2.0, q1)
    o3 = core.observe(2.0)
    np.testing.assert_array_equal(METAWORLD39.get(o3, "prev_hand_pos"), METAWORLD39.get(o3, "hand_pos"))
    # the gripper gap conversion parameters
    core2 = _core(cfg=Real2SimConfig(gripper_gap_scale=1.0, gripper_gap_offset_m=0.03))
    core2.on_binding(BINDING)
    _feed(core2, 1.0, q1, gap=0.0)
    assert METAWORLD39.get(core2.observe(1.0), "gripper_opening")[0] == pytest.approx(0.3)


def test_compact_layout():
    core = _core(layout=COMPACT12)
    core.on_binding(BINDING)
    _feed(core, 1.0, q_for_hand([0.0, 0.6, 0.2]))
    obs = core.observe(1.0)
    assert obs.shape == (12,)
    np.testing.assert_allclose(COMPACT12.get(obs, "hand_pos"), [0.0, 0.6, 0.2], atol=1e-4)
    np.testing.assert_array_equal(COMPACT12.get(obs, "object1_pos"), [0.05, 0.7, 0.02])
    np.testing.assert_array_equal(COMPACT12.get(obs, "goal_pos"), [0.0, 0.85, 0.02])


def test_config_validation():
    with pytest.raises(ValueError, match="max_object_age_s"):
        Real2SimConfig.from_params({"max_object_age_s": -1})
    assert Real2SimConfig.from_params({"period_s": 0.05, "other": "x"}).period_s == 0.05


def test_task_offset_shifts_every_position_and_nothing_else():
    """A task placed away from its training region: the observation shows it where training saw it,
    so distances (the success predicates) and displacement actions mean the same."""
    from legion_policy.success import PREDICATES

    q = q_for_hand([0.1, 0.62, 0.18])
    plain, shifted = _core(layout=COMPACT12), _core(layout=COMPACT12)
    offset = [0.3, -0.1, 0.0]
    plain.on_binding(BINDING)
    assert shifted.on_binding({**BINDING, "task_offset": offset})
    for core in (plain, shifted):
        _feed(core, 1.0, q)
    a, b = plain.observe(1.0), shifted.observe(1.0)
    for name in ("hand_pos", "object1_pos", "goal_pos"):
        np.testing.assert_allclose(COMPACT12.get(b, name), COMPACT12.get(a, name) - offset, atol=1e-12)
    np.testing.assert_array_equal(COMPACT12.get(b, "object2_pos"), [0, 0, 0])  # padding stays padding
    np.testing.assert_allclose(shifted.last_tcp_sim, plain.last_tcp_sim, atol=0)  # the arm is where it is
    pred = PREDICATES["push-v3"]
    assert pred(a, COMPACT12) == pred(b, COMPACT12)
    # 39-d layout: quaternions and gripper untouched, the stacked previous frame shifted too
    full = _core()
    full.on_binding({**BINDING, "task_offset": offset})
    _feed(full, 1.0, q)
    c = full.observe(1.0)
    ref = _core()
    ref.on_binding(BINDING)
    _feed(ref, 1.0, q)
    d = ref.observe(1.0)
    for name in ("object1_quat", "gripper_opening", "prev_object1_quat"):
        np.testing.assert_array_equal(METAWORLD39.get(c, name), METAWORLD39.get(d, name))
    np.testing.assert_allclose(METAWORLD39.get(c, "prev_object1_pos"), METAWORLD39.get(d, "prev_object1_pos") - offset)
    # bad offsets are rejected with a reason, the previous binding stays
    for bad in ([0.1, 0.2], [0, 0, float("nan")], [5.0, 0, 0], "left"):
        assert not full.on_binding({**BINDING, "task_offset": bad})
        assert "task_offset" in full.last_rejection
    assert full.binding.task_offset == tuple(offset)
