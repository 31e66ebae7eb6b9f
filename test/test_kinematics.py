"""FK / Jacobian / IK of legion_bridge.robot.kinematics against independent computations."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from legion_bridge.calibration import Transform, load_calibration
from legion_bridge.paths import config_path, urdf_path
from legion_bridge.robot import load_robot_model
from legion_bridge.robot.kinematics import GRIPPER_DOWN_R, IKConfig, Kinematics, rotation_error

ARMS = ("iiwa7", "iiwa14")
RNG_SEED = 1234
# MT10 region of the sim frame the tests sample IK targets from (inside Metaworld's hand box)
SIM_BOX_LO = np.array([-0.28, 0.42, 0.03])
SIM_BOX_HI = np.array([0.28, 0.88, 0.25])


def _random_q(kin: Kinematics, n: int, rng) -> np.ndarray:
    return rng.uniform(kin.lower, kin.upper, size=(n, kin.n))


# --------------------------------------------------------------------------- independent FK
def _urdf_chain(name: str):
    """(origin 4x4, axis or None) per joint on link_0 -> tcp, read straight from the XML with scipy."""
    root = ET.parse(urdf_path(f"{name}.urdf")).getroot()
    by_child = {j.find("child").get("link"): j for j in root.findall("joint")}
    chain, link = [], "tcp"
    while link != "link_0":
        j = by_child[link]
        o = j.find("origin")
        T = np.eye(4)
        T[:3, :3] = Rotation.from_euler("xyz", [float(v) for v in o.get("rpy").split()]).as_matrix()
        T[:3, 3] = [float(v) for v in o.get("xyz").split()]
        axis = None if j.get("type") == "fixed" else np.array([float(v) for v in j.find("axis").get("xyz").split()])
        chain.append((j.find("child").get("link"), T, axis))
        link = j.find("parent").get("link")
    return chain[::-1]


def _reference_poses(chain, q) -> dict:
    T, k, out = np.eye(4), 0, {}
    for child, origin, axis in chain:
        T = T @ origin
        if axis is not None:
            J = np.eye(4)
            J[:3, :3] = Rotation.from_rotvec(axis * q[k]).as_matrix()
            T = T @ J
            k += 1
        out[child] = T
    return out


@pytest.mark.parametrize("name", ARMS)
def test_fk_matches_transforms_built_from_the_urdf(name):
    kin = Kinematics(name)
    chain = _urdf_chain(name)
    rng = np.random.default_rng(RNG_SEED)
    Q = _random_q(kin, 300, rng)
    P = kin.link_poses(Q)
    pos, R = kin.fk(Q)
    for i, q in enumerate(Q):
        ref = _reference_poses(chain, q)
        for li, link in enumerate(kin.link_names[1:], start=1):
            np.testing.assert_allclose(P[i, li], ref[link], atol=1e-12, err_msg=link)
        np.testing.assert_allclose(pos[i], ref["tcp"][:3, 3], atol=1e-12)
        np.testing.assert_allclose(R[i], ref["tcp"][:3, :3], atol=1e-12)


@pytest.mark.parametrize("name", ARMS)
def test_fk_matches_mujoco_loading_the_same_urdf(name):
    """MuJoCo's own URDF importer and kinematics agree with ours on every arm link."""
    import mujoco

    m = mujoco.MjModel.from_xml_path(str(urdf_path(f"{name}.urdf")))
    d = mujoco.MjData(m)
    kin = Kinematics(name)
    adr = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j)] for j in kin.model.joint_names]
    bodies = {f"link_{i}": mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"link_{i}") for i in range(1, 8)}
    rng = np.random.default_rng(RNG_SEED + 1)
    Q = _random_q(kin, 500, rng)
    P = kin.link_poses(Q)
    idx = {n: i for i, n in enumerate(kin.link_names)}
    worst = 0.0
    for i, q in enumerate(Q):
        d.qpos[:] = 0
        d.qpos[adr] = q
        mujoco.mj_kinematics(m, d)
        for link, b in bodies.items():
            worst = max(worst, float(np.abs(d.xpos[b] - P[i, idx[link], :3, 3]).max()),
                        float(np.abs(d.xmat[b].reshape(3, 3) - P[i, idx[link], :3, :3]).max()))
    assert worst < 1e-9


@pytest.mark.parametrize("name", ARMS)
def test_jacobian_matches_finite_differences(name):
    kin = Kinematics(name)
    rng = np.random.default_rng(RNG_SEED + 2)
    Q = _random_q(kin, 50, rng)
    J = kin.jacobian(Q)
    eps = 1e-6
    p0, R0 = kin.fk(Q)
    for k in range(kin.n):
        dq = np.zeros(kin.n)
        dq[k] = eps
        pp, Rp = kin.fk(Q + dq)
        pm, Rm = kin.fk(Q - dq)
        np.testing.assert_allclose(J[:, :3, k], (pp - pm) / (2 * eps), atol=1e-8)
        # angular velocity: rotation vector of Rp Rm^T over 2 eps
        w = rotation_error(Rp, Rm) / (2 * eps)
        np.testing.assert_allclose(J[:, 3:, k], w, atol=1e-8)


def test_vectorised_shapes_agree_with_single_calls():
    kin = Kinematics("iiwa7")
    rng = np.random.default_rng(RNG_SEED + 3)
    Q = _random_q(kin, 12, rng).reshape(3, 4, 7)
    p, R = kin.fk(Q)
    assert p.shape == (3, 4, 3) and R.shape == (3, 4, 3, 3)
    assert kin.jacobian(Q).shape == (3, 4, 6, 7)
    assert kin.link_poses(Q).shape == (3, 4, len(kin.link_names), 4, 4)
    p1, R1 = kin.fk(Q[2, 1])
    np.testing.assert_array_equal(p[2, 1], p1)
    np.testing.assert_array_equal(R[2, 1], R1)
    with pytest.raises(ValueError, match="shape"):
        kin.fk(np.zeros(6))


# --------------------------------------------------------------------------- IK
@pytest.fixture(scope="module")
def cell():
    return load_calibration(config_path("calibration.yaml"))


def _sim_targets(n, rng):
    return rng.uniform(SIM_BOX_LO, SIM_BOX_HI, size=(n, 3))


def _elbow_above_shoulder_wrist_line(kin, cal, q) -> np.ndarray:
    """World height of the elbow above the shoulder-wrist line (positive = elbow up)."""
    T = kin.link_poses(q)
    idx = {n: i for i, n in enumerate(kin.link_names)}
    S = cal.sim_from_base.apply(T[..., idx["link_2"], :3, 3])
    E = cal.sim_from_base.apply(T[..., idx["link_4"], :3, 3])
    W = cal.sim_from_base.apply(T[..., idx["link_6"], :3, 3])
    u = (W - S) / np.linalg.norm(W - S, axis=-1, keepdims=True)
    F = S + np.sum((E - S) * u, axis=-1, keepdims=True) * u
    return E[..., 2] - F[..., 2]


@pytest.mark.parametrize("name", ARMS)
def test_ik_gripper_down_in_the_cell(name, cell):
    kin = Kinematics(name, sim_from_base=cell.sim_from_base)
    rng = np.random.default_rng(RNG_SEED + 4)
    targets_sim = _sim_targets(400, rng)
    res = kin.ik(cell.base_from_sim.apply(targets_sim))
    assert res.success.mean() >= 0.99
    ok = res.success
    p, R = kin.fk(res.q[ok])
    np.testing.assert_allclose(cell.sim_from_base.apply(p), targets_sim[ok], atol=1e-4)
    # gripper down in the world, fingers sliding along sim x
    R_sim = cell.sim_from_base.R @ R
    np.testing.assert_allclose(R_sim[:, :, 2], np.broadcast_to([0, 0, -1], (ok.sum(), 3)), atol=1e-3)
    assert np.all(np.abs(np.abs(R_sim[:, 0, 1]) - 1) < 1e-3)
    # joint limits (with the margin) and elbow up, for every answer (failures too)
    m = kin.config.limit_margin
    assert np.all(kin.model.within_limits(res.q, margin=m - 1e-12))
    assert np.all(_elbow_above_shoulder_wrist_line(kin, cell, res.q[ok]) > 0)


@pytest.mark.parametrize("name", ARMS)
def test_finger_yaw_turns_the_fingers_about_world_up_and_is_read_back(name, cell):
    """gripper_down_yawed(yaw): still pointing down, the fingers (tcp y) at ``yaw`` from sim x; every
    workspace point reachable with the fingers along sim y too (handle-press); finger_yaw reads it back."""
    kin = Kinematics(name, sim_from_base=cell.sim_from_base)
    rng = np.random.default_rng(RNG_SEED + 6)
    targets_sim = _sim_targets(200, rng)
    res = kin.ik(cell.base_from_sim.apply(targets_sim), R_target=kin.gripper_down_yawed(np.pi / 2))
    assert res.success.mean() >= 0.99
    R_sim = cell.sim_from_base.R @ kin.fk(res.q[res.success])[1]
    np.testing.assert_allclose(R_sim[:, :, 2], np.broadcast_to([0, 0, -1], R_sim[:, :, 2].shape), atol=1e-3)
    np.testing.assert_allclose(R_sim[:, :, 1], np.broadcast_to([0, 1, 0], R_sim[:, :, 1].shape), atol=1e-3)
    assert np.all(kin.model.within_limits(res.q, margin=kin.config.limit_margin - 1e-12))
    yaws = rng.uniform(-np.pi * 0.95, np.pi * 0.95, size=20)
    for yaw in yaws:
        r = kin.ik(cell.base_from_sim.apply(np.array([0.0, 0.6, 0.15])), R_target=kin.gripper_down_yawed(yaw))
        assert r.success and kin.finger_yaw(r.q) == pytest.approx(yaw, abs=2e-3)
        R = cell.sim_from_base.R @ kin.fk(r.q)[1]
        np.testing.assert_allclose(R[:, 1], [np.cos(yaw), np.sin(yaw), 0.0], atol=2e-3)


def test_default_orientation_is_gripper_down_for_an_upright_base():
    kin = Kinematics("iiwa7")
    np.testing.assert_array_equal(kin.gripper_down_R, GRIPPER_DOWN_R)
    target = np.array([0.55, 0.1, 0.15])
    res = kin.ik(target)
    assert res.success
    p, R = kin.fk(res.q)
    np.testing.assert_allclose(p, target, atol=1e-4)
    np.testing.assert_allclose(R, GRIPPER_DOWN_R, atol=1e-3)
    assert abs(res.q[6]) < np.radians(45)  # flange roll mid-range for a point ahead
    # elbow above the shoulder in the base frame (upright: base z = world up)
    T = kin.link_poses(res.q)
    assert T[4, 2, 3] > T[2, 2, 3]


@pytest.mark.parametrize("name", ARMS)
def test_ik_any_orientation_from_a_nearby_seed(name):
    kin = Kinematics(name)
    rng = np.random.default_rng(RNG_SEED + 5)
    q_true = rng.uniform(kin.lower * 0.8, kin.upper * 0.8, size=(200, 7))
    p, R = kin.fk(q_true)
    seed = q_true + rng.normal(0, 0.15, size=q_true.shape)
    res = kin.ik(p, seed, R_target=R)
    assert res.success.mean() >= 0.99
    p2, R2 = kin.fk(res.q[res.success])
    np.testing.assert_allclose(p2, p[res.success], atol=1e-4)
    assert np.all(np.linalg.norm(rotation_error(R[res.success], R2), axis=-1) < 1e-3)


def test_unreachable_targets_fail_inside_the_limits(cell):
    kin = Kinematics("iiwa7", sim_from_base=cell.sim_from_base)
    shoulder_sim = cell.sim_from_base.apply(kin.link_poses(np.zeros(7))[2, :3, 3])
    far = shoulder_sim + np.array([0.0, 0.0, -1.5])  # beyond the arm's reach
    too_close = shoulder_sim + np.array([0.0, 0.0, -0.3])  # tcp 0.3 m below the shoulder: wrist inside the A4 cone
    res = kin.ik(cell.base_from_sim.apply(np.stack([far, too_close])))
    assert not np.any(res.success)
    assert np.all(res.position_error > 1e-3)
    assert np.all(kin.model.within_limits(res.q))


def test_unreachable_warm_start_gives_up_early(cell):
    """A control loop commanding an unreachable point must not pay the whole iteration budget twice."""
    cfg = IKConfig()
    kin = Kinematics("iiwa7", cfg, sim_from_base=cell.sim_from_base)
    q = kin.ik(cell.base_from_sim.apply([0.0, 0.7, 0.1])).q
    r = kin.ik(cell.base_from_sim.apply([0.0, 0.65, 0.45]), q)  # high, inside the cone below the shoulder
    assert not r.success
    assert r.iterations <= 4 * cfg.stall_iterations < 2 * cfg.max_iterations
    # the best effort moved towards the target
    p0, _ = kin.fk(q)
    p1, _ = kin.fk(r.q)
    target = cell.base_from_sim.apply([0.0, 0.65, 0.45])
    assert np.linalg.norm(p1 - target) < np.linalg.norm(p0 - target)


def test_warm_start_tracks_a_path_smoothly_and_fast(cell):
    kin = Kinematics("iiwa7", sim_from_base=cell.sim_from_base)
    # a 5 mm-per-step path through the workspace, as a control loop would command
    s = np.linspace(0, 1, 150)[:, None]
    path_sim = np.array([-0.2, 0.5, 0.05]) * (1 - s) + np.array([0.2, 0.85, 0.25]) * s
    path = cell.base_from_sim.apply(path_sim)
    q = kin.ik(path[0]).q
    iters = []
    for t in path[1:]:
        r = kin.ik(t, q)
        assert r.success, t
        assert np.max(np.abs(r.q - q)) < 0.1  # no jump to another arm configuration
        iters.append(int(r.iterations))
        q = r.q
    assert np.median(iters) <= 3


def test_failed_warm_start_never_jumps_to_another_configuration(cell):
    cfg = IKConfig()
    kin = Kinematics("iiwa7", cfg, sim_from_base=cell.sim_from_base)
    target = cell.base_from_sim.apply(np.array([0.1, 0.6, 0.1]))
    good = kin.ik(target)
    assert good.success
    # seed in the mirrored configuration (A1 turned by half a turn, arm reaching backwards)
    seed = good.q.copy()
    seed[0] -= np.pi * np.sign(seed[0])
    seed[1], seed[3], seed[5] = -seed[1], -seed[3], -seed[5]
    r = kin.ik(target, seed, max_iterations=3)
    if not r.success:  # only the nearby answer may come back
        assert np.max(np.abs(r.q - kin.model.clip(seed, cfg.limit_margin))) < 3 * cfg.max_step + 1e-9


@pytest.mark.parametrize("bad", [np.array([np.nan, 0, 0]), np.zeros(2)])
def test_ik_rejects_bad_targets(bad):
    kin = Kinematics("iiwa7")
    with pytest.raises(ValueError):
        kin.ik(bad)
    with pytest.raises(ValueError, match="q_seed"):
        kin.ik(np.array([0.5, 0, 0.3]), np.zeros(6))


def test_mounting_sets_world_down_and_up():
    inverted = Transform.from_xyz_rpy([0, 0.65, 1.37], [np.pi, 0, np.pi / 2])
    kin = Kinematics("iiwa14", sim_from_base=inverted)
    np.testing.assert_allclose(inverted.R @ kin.gripper_down_R[:, 2], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(kin.up_axis, [0, 0, -1], atol=1e-12)
    with pytest.raises(ValueError):
        Kinematics("iiwa7", sim_from_base=np.ones((3, 3)))
