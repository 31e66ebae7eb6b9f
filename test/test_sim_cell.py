"""The simulated cell: Metaworld v3 scenes with the Sawyer replaced by the iiwa, placement, tracking, success."""
from __future__ import annotations

import warnings

import mujoco
import numpy as np
import pytest

from legion_bridge.sim.cell import START_RAISE_MAX_M, START_RAISE_STEP_M, TABLETOP, TASK_OBJECTS, TASK_SKILLS, Cell
from legion_policy.observation_layout import HAND_FROM_TCP_M, quat_in_order
from legion_bridge.sim.mujoco_model import METAWORLD_GRIPPER_NAMES
from legion_policy.tasks import finger_yaw_deg, quat_order

warnings.filterwarnings("ignore", category=UserWarning)
SAWYER_BODIES = ("base", "mocap", "right_hand", "rightclaw_it")


@pytest.mark.parametrize("task", sorted(TASK_OBJECTS))
def test_task_scene_matches_metaworld_instance(task):
    """Sawyer gone, iiwa in; object/goal as Metaworld computes obs[4:11] and obs[36:39]; hand at the start."""
    cell = Cell(task, seed=7)
    names = {cell.model.body(i).name for i in range(cell.model.nbody)}
    assert not names & set(SAWYER_BODIES)
    assert "iiwa/link_0" in names and "iiwa/tcp" in names
    # the names Metaworld's reward code reads on the Sawyer now belong to the iiwa's gripper
    arm = cell.arm.body_ids
    for name, (kind, _) in METAWORLD_GRIPPER_NAMES.items():
        obj = getattr(cell.model, kind)(name)
        body = obj.id if kind == "body" else int((cell.model.site_bodyid if kind == "site" else cell.model.geom_bodyid)[obj.id])
        assert body in arm, (name, cell.model.body(body).name)
    env = cell._placers[task].env  # the Metaworld env that drew this instance
    mujoco.mj_forward(env.model, env.data)
    obs = env._get_obs()
    p, q = cell.object_pose("object")
    np.testing.assert_allclose(p, obs[4:7], atol=1e-9)
    mw_q = obs[7:11]
    ours = quat_in_order(np.r_[q[3], q[:3]], quat_order(task))
    assert min(np.abs(ours - mw_q).max(), np.abs(ours + mw_q).max()) < 1e-6  # q and -q: same rotation
    np.testing.assert_allclose(cell.object_pose("goal")[0], obs[36:39], atol=1e-9)
    # the hand (tcp + HAND_FROM_TCP_M) starts where Metaworld's does, raised by whole START_RAISE_STEP_M only as
    # far as a contact-free start needs (the arm touches nothing at reset), gripper pointing down, open; the skill
    # data's training hand start is Metaworld's
    np.testing.assert_allclose(TASK_SKILLS[task].hand_start, env.hand_init_pos, atol=1e-6)
    raise_m = cell.hand_pos() - env.hand_init_pos - [0.0, 0.0, TASK_SKILLS[task].start_lift_m]
    np.testing.assert_allclose(raise_m[:2], 0.0, atol=1e-3)
    steps = raise_m[2] / START_RAISE_STEP_M
    assert -1e-3 < raise_m[2] <= START_RAISE_MAX_M + 1e-3 and abs(steps - round(steps)) < 0.1
    np.testing.assert_allclose(cell.instance["hand_start"], cell.hand_pos(), atol=1e-3)
    assert not cell.arm_contacts()
    _, R = cell.tcp_pose()
    assert R[:, 2] @ np.array([0.0, 0.0, -1.0]) > 0.999
    # the fingers (sliding along tcp y) turned as the task runs on the robot (handle-press: along sim y)
    yaw = np.radians(finger_yaw_deg(task))
    assert abs(R[:, 1] @ np.array([np.cos(yaw), np.sin(yaw), 0.0])) > 0.999
    assert cell.gripper_gap() > 0.095
    assert cell.success()[task]["success"] is False
    # the arm starts free of the scene: no contact of any arm body after a few steps
    cell.step(40)
    m, d = cell.model, cell.data
    touching = [(m.body(m.geom_bodyid[c.geom1]).name, m.body(m.geom_bodyid[c.geom2]).name)
                for c in d.contact[:d.ncon]
                if m.geom_bodyid[c.geom1] in cell.arm.body_ids or m.geom_bodyid[c.geom2] in cell.arm.body_ids]
    assert not touching


def test_reset_is_seeded():
    cell = Cell("push-v3", seed=3)
    a = cell.object_poses()
    cell.reset()
    b = cell.object_poses()
    cell.reset(seed=3)
    c = cell.object_poses()
    assert np.abs(a["object"][0] - b["object"][0]).max() > 1e-3  # a new instance
    np.testing.assert_allclose(a["object"][0], c["object"][0], atol=1e-12)  # same seed, same instance
    np.testing.assert_allclose(a["goal"][0], c["goal"][0], atol=1e-12)


def test_push_success_from_the_policy_predicate():
    cell = Cell("push-v3", seed=1)
    assert cell.success()["push-v3"]["success"] is False
    goal = cell.object_pose("goal")[0]
    jnt = cell.model.joint("objjoint")
    a = jnt.qposadr[0]
    cell.data.qpos[a:a + 3] = goal
    mujoco.mj_forward(cell.model, cell.data)
    s = cell.success()["push-v3"]
    assert s["success"] is True and s["distance"] < 1e-6


def test_tabletop_objects_coexist_apart_and_reachable():
    cell = Cell(TABLETOP, seed=0)
    assert set(cell.tracked) == {"puck", "button", "push_goal", "button_goal", "reach_goal"}
    assert set(cell.tasks) == {"push-v3", "button-press-topdown-v3", "reach-v3"}
    for seed in range(5):
        cell.reset(seed=seed)
        cell.step(200)  # let things settle: nothing may be pushed by a neighbour
        m, d = cell.model, cell.data
        puck = m.body("obj").id
        box_bodies = {m.body(n).id for n in ("button/box", "button/buttonbox", "button/button")}
        for c in d.contact[:d.ncon]:
            pair = {m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]}
            assert not (puck in pair and pair & box_bodies), "puck touches the button box"
        pts = {k: cell.object_pose(k)[0] for k in cell.tracked}
        # the puck (radius 0.02) and its path to the goal stay clear of the button box (half-width 0.12)
        assert max(pts["puck"][0], pts["push_goal"][0]) + 0.02 + 0.02 < pts["button"][0] - 0.12
        # a hand at the reach goal (gripper body half-length 0.07 along sim x) stays clear of the box:
        # seed 3 put the goal at x 0.10 against a box edge at x 0.096 before the reach placement's offset (config/scenes/tabletop.yaml)
        assert pts["reach_goal"][0] + 0.07 + 0.01 < pts["button"][0] - 0.12, (seed, pts["reach_goal"], pts["button"])
        # every object and goal is reachable with the gripper down (tcp at the point)
        targets = np.array(list(pts.values()))
        targets[:, 2] = np.maximum(targets[:, 2], 0.02)
        res = cell.kin.ik(cell.sim_from_base.inverse().apply(targets))
        assert np.all(res.success), dict(zip(pts, res.position_error))
    s = cell.success()
    assert set(s) == {"push-v3", "button-press-topdown-v3", "reach-v3"}


def test_unknown_scene_is_rejected_with_the_list():
    with pytest.raises(ValueError, match="unknown scene 'push-v9'"):
        Cell("push-v9")


def test_workbench_objects_coexist_apart_and_reachable():
    """drawer-close, button-press and reach in one scene: no object touches another over ten
    placements, each skill sees its task where Metaworld puts it (tracked pose - the layout offset
    lies in the training range), and every object and goal is reachable gripper-down."""
    from legion_bridge.sim.cell import MULTI_OBJECT_SCENES, WORKBENCH

    layout = MULTI_OBJECT_SCENES[WORKBENCH]
    cell = Cell(WORKBENCH, seed=0)
    assert set(cell.tasks) == {"drawer-close-v3", "handle-press-v3", "reach-v3"}
    assert set(cell.tracked) == {"drawer", "handle", "puck", "drawer_goal", "handle_goal", "reach_goal"}
    off = {p.object: np.asarray(p.offset) for p in layout.placements}
    off.update({p.goal: np.asarray(p.offset) for p in layout.placements})
    m = cell.model
    roots = {name: m.body(name).id for name in ("drawer", "handle/box", "reach/obj")}
    for seed in range(10):
        cell.reset(seed=seed)
        cell.step(200)
        d = cell.data
        for c in d.contact[:d.ncon]:
            pair = {int(m.body_rootid[m.geom_bodyid[c.geom1]]), int(m.body_rootid[m.geom_bodyid[c.geom2]])}
            assert len(pair & set(roots.values())) < 2, f"seed {seed}: two objects touch"
        pts = {k: cell.object_pose(k)[0] for k in cell.tracked}
        seen = {k: pts[k] - off[k] for k in pts}
        # Metaworld's ranges: drawer and handle box x [-0.1, 0.1]; reach goal box
        assert abs(seen["drawer"][0]) <= 0.1 + 1e-6 and abs(seen["handle"][0] + 0.0) <= 0.1 + 1e-6
        assert np.all(seen["reach_goal"] >= [-0.1, 0.8, 0.05]) and np.all(seen["reach_goal"] <= [0.1, 0.9, 0.3])
        # the drawer's right edge (half-width 0.118) >= 4 cm left of the handle box (half-width 0.087)
        assert pts["drawer"][0] + 0.118 + 0.04 <= pts["handle"][0] - 0.087 + 1e-6
        # a hand at a reach goal (gripper half-width 0.03 along y) stays in front of the closed drawer's
        # handle and of the lever (its front 2.2 cm before the tracked handle point)
        assert pts["reach_goal"][1] + 0.03 < min(pts["drawer_goal"][1], pts["handle"][1] - 0.022)
        targets = np.array(list(pts.values()))
        targets[:, 2] = np.maximum(targets[:, 2], 0.02)
        res = cell.kin.ik(cell.sim_from_base.inverse().apply(targets))
        assert np.all(res.success), dict(zip(pts, res.position_error))
    np.testing.assert_allclose(cell.hand_pos(), layout.hand_start, atol=1e-3)


def test_real2sim_subscribes_to_every_name_the_sim_scenes_track():
    """real2sim subscribes to legion_policy.skills.tracked_names (plus its tracked_objects parameter): every name a
    scene of the cell tracks is in it, from the data, no hand-kept list."""
    from legion_bridge.sim.cell import MULTI_OBJECT_SCENES
    from legion_policy.skills import tracked_names

    names = set(tracked_names())
    assert {"object", "goal"} <= names
    for name, scene in MULTI_OBJECT_SCENES.items():
        assert set(scene.tracked) <= names, (name, set(scene.tracked) - names)
    assert set(Cell(TABLETOP, seed=0).tracked) == set(MULTI_OBJECT_SCENES[TABLETOP].tracked)


def test_a_start_inside_an_object_is_raised_until_the_arm_touches_nothing(monkeypatch):
    """handle-press without its 4 cm start lift: Metaworld starts the Sawyer's hand 3 cm above the lever, where our
    fingers (4.5 cm below the hand point) would be inside it; the cell raises that start in START_RAISE_STEP_M
    steps until contact-free, the same rule for every task (reach's start touches nothing and stays), and a given
    hand start is left as given."""
    import dataclasses

    import legion_bridge.sim.cell as cell_module

    unlifted = dataclasses.replace(TASK_SKILLS["handle-press-v3"], start_lift_m=0.0)
    monkeypatch.setitem(cell_module.TASK_SKILLS, "handle-press-v3", unlifted)
    cell = Cell("handle-press-v3", seed=0)
    assert cell.skills["handle-press-v3"].start_lift_m == 0.0
    env = cell._placers["handle-press-v3"].env
    raised = []
    for seed in range(10):
        cell.reset(seed)
        raised.append(cell.hand_pos()[2] - env.hand_init_pos[2])
        assert not cell.arm_contacts()
        q = cell.arm_start(env.hand_init_pos, cell.skills["handle-press-v3"].finger_yaw_deg)  # Metaworld's start
        cell.data.qpos[cell.arm.arm_qpos] = q
        mujoco.mj_forward(cell.model, cell.data)
        assert bool(cell.arm_contacts()) == (raised[-1] > 1e-3)  # raised exactly when Metaworld's start touches
    assert max(raised) > 0.005 and max(raised) <= START_RAISE_MAX_M + 1e-3
    reach = Cell("reach-v3", seed=0)
    np.testing.assert_allclose(reach.hand_pos(), reach._placers["reach-v3"].env.hand_init_pos, atol=1e-3)
    cell.reset(0, hand_start=env.hand_init_pos)  # a given start (random hand starts, sequences) is not moved
    np.testing.assert_allclose(cell.hand_pos(), env.hand_init_pos, atol=1e-3)
