"""Kinematics against pinocchio reading the same URDF, and IK answers against the recorded numpy implementation.

* FK (tcp and every chain frame) and the tcp Jacobian equal pinocchio's own (``buildModelFromUrdf``, frame
  placements, ``computeFrameJacobian`` in LOCAL_WORLD_ALIGNED) on 3000 random configurations per arm.
* ``test/data/ik_reference.npz`` holds IK problems and the answers of the hand-written numpy FK/Jacobian
  the IK ran on until pinocchio replaced it (recorded at commit 4ee67c8 with
  ``python test/test_kinematics_pinocchio.py --record``): cold gripper-down targets in the calibrated
  cell, a warm-started 5 mm path, yawed fingers, any orientation from nearby seeds. Today's IK must give
  the same success flags and the same joints.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from legion_bridge.calibration import load_calibration
from legion_bridge.paths import config_path, urdf_path
from legion_bridge.robot.kinematics import Kinematics

ARMS = ("iiwa7", "iiwa14")
REFERENCE = Path(__file__).parent / "data" / "ik_reference.npz"
# MT10 region of the sim frame (as test_kinematics.py)
SIM_BOX_LO = np.array([-0.28, 0.42, 0.03])
SIM_BOX_HI = np.array([0.28, 0.88, 0.25])
#: joints of an IK answer may differ from the recorded one by this much [rad] (float rounding, amplified by
#: the iterations; a different branch or stopping iteration would show as far more)
Q_TOL = 1e-9


def _pinocchio_arm(name: str):
    import pinocchio as pin

    full = pin.buildModelFromUrdf(str(urdf_path(f"{name}.urdf")))
    fingers = [full.getJointId(n) for n in full.names if n.startswith("gripper_finger")]
    model = pin.buildReducedModel(full, fingers, pin.neutral(full))
    return pin, model, model.createData()


@pytest.mark.parametrize("name", ARMS)
def test_fk_and_jacobian_equal_pinocchio_on_the_same_urdf(name):
    pin, model, data = _pinocchio_arm(name)
    kin = Kinematics(name)
    frames = [model.getFrameId(n) for n in kin.link_names]
    tcp = model.getFrameId("tcp")
    rng = np.random.default_rng(4321)
    Q = rng.uniform(kin.lower, kin.upper, size=(3000, 7))
    P, R = kin.fk(Q)
    J = kin.jacobian(Q)
    L = kin.link_poses(Q)
    worst = dict(pos=0.0, rot=0.0, jac=0.0, links=0.0)
    for i, q in enumerate(Q):
        pin.framesForwardKinematics(model, data, q)
        M = data.oMf[tcp]
        worst["pos"] = max(worst["pos"], float(np.abs(M.translation - P[i]).max()))
        worst["rot"] = max(worst["rot"], float(np.abs(M.rotation - R[i]).max()))
        worst["links"] = max(worst["links"], max(float(np.abs(data.oMf[f].homogeneous - L[i, k]).max())
                                                 for k, f in enumerate(frames)))
        Jp = pin.computeFrameJacobian(model, data, q, tcp, pin.LOCAL_WORLD_ALIGNED)
        worst["jac"] = max(worst["jac"], float(np.abs(Jp - J[i]).max()))
    assert max(worst.values()) < 1e-12, worst


def test_a_urdf_rooted_above_link_0_gives_the_same_kinematics_in_link_0():
    """iiwa_ros2's layout (world -> iiwa_base -> link_0): pinocchio's root is then not link_0; FK, link poses
    and Jacobians stay in link_0."""
    from legion_bridge.robot import parse_urdf

    text = Path(urdf_path("iiwa7.urdf")).read_text()
    head, body = text.split('<link name="link_0"', 1)
    mount = ('<link name="world"/><link name="iiwa_base"/>'
             '<joint name="world_joint" type="fixed"><parent link="world"/><child link="iiwa_base"/>'
             '<origin xyz="0.3 -0.2 1.1" rpy="3.0 0.2 -1.2"/></joint>'
             '<joint name="base_joint" type="fixed"><parent link="iiwa_base"/><child link="link_0"/>'
             '<origin xyz="0 0 0.05" rpy="0 0 0.4"/></joint>')
    pin, _, _ = _pinocchio_arm("iiwa7")
    model = parse_urdf(head + mount + '<link name="link_0"' + body)
    pd = model.pin_model.createData()
    pin.framesForwardKinematics(model.pin_model, pd, pin.neutral(model.pin_model))
    assert np.linalg.norm(pd.oMf[model.pin_model.getFrameId("link_0")].translation) > 1.0  # not pinocchio's root
    mounted, kin = Kinematics(model), Kinematics("iiwa7")
    assert mounted.link_names == kin.link_names
    Q = np.random.default_rng(5).uniform(kin.lower, kin.upper, size=(200, 7))
    for a, b in ((mounted.fk(Q), kin.fk(Q)), ((mounted.jacobian(Q),), (kin.jacobian(Q),)),
                 ((mounted.link_poses(Q),), (kin.link_poses(Q),))):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-12)
    r = mounted.ik(np.array([0.5, 0.1, 0.2]))
    assert r.success
    np.testing.assert_allclose(kin.fk(r.q)[0], [0.5, 0.1, 0.2], atol=1e-4)


def test_urdfdom_reasons_reach_the_error_and_nothing_else_is_printed(capfd):
    from legion_bridge.robot import URDFError, parse_urdf

    text = Path(urdf_path("iiwa7.urdf")).read_text()
    with pytest.raises(URDFError, match=r"^<string>: joint gripper_tcp: link 'nowhere' is not defined$"):
        parse_urdf(text.replace('<child link="tcp"/>', '<child link="nowhere"/>'))
    assert parse_urdf(text).joint_names[0] == "joint_a1"
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------- IK against the recorded answers
def _problems(kin: Kinematics, cal, rng) -> dict:
    """IK problems of every kind the project solves (targets in the base frame)."""
    cold = cal.base_from_sim.apply(rng.uniform(SIM_BOX_LO, SIM_BOX_HI, size=(300, 3)))
    s = np.linspace(0, 1, 150)[:, None]
    path = cal.base_from_sim.apply(np.array([-0.2, 0.5, 0.05]) * (1 - s) + np.array([0.2, 0.85, 0.25]) * s)
    yawed = cal.base_from_sim.apply(rng.uniform(SIM_BOX_LO, SIM_BOX_HI, size=(100, 3)))
    yaw = rng.uniform(-np.pi * 0.95, np.pi * 0.95, size=100)
    q_true = rng.uniform(kin.lower * 0.8, kin.upper * 0.8, size=(200, 7))
    seed = q_true + rng.normal(0, 0.15, size=q_true.shape)
    return dict(cold=cold, path=path, yawed=yawed, yaw=yaw, q_true=q_true, seed=seed)


def _solve_all(kin: Kinematics, pr: dict) -> dict:
    out = {}
    r = kin.ik(pr["cold"])
    out.update(cold_q=r.q, cold_ok=r.success, cold_it=r.iterations)
    single = [kin.ik(t) for t in pr["cold"][:50]]  # one target per call, as cell.arm_start solves
    out.update(single_q=np.array([x.q for x in single]), single_ok=np.array([bool(x.success) for x in single]))
    q, qs, oks = kin.ik(pr["path"][0]).q, [], []
    for t in pr["path"][1:]:  # warm-started control loop, as sim2real solves
        r = kin.ik(t, q)
        q = r.q
        qs.append(q)
        oks.append(bool(r.success))
    out.update(path_q=np.array(qs), path_ok=np.array(oks))
    Rs = np.array([kin.gripper_down_yawed(y) for y in pr["yaw"]])
    r = kin.ik(pr["yawed"], R_target=Rs)
    out.update(yawed_q=r.q, yawed_ok=r.success)
    p, R = kin.fk(pr["q_true"])
    r = kin.ik(p, pr["seed"], R_target=R)
    out.update(any_q=r.q, any_ok=r.success)
    return out


def _kinematics(name: str, cal) -> Kinematics:
    return Kinematics(name, sim_from_base=cal.sim_from_base)


def record(path: Path = REFERENCE) -> None:
    cal = load_calibration(config_path("calibration.yaml"))
    arrays = {}
    for i, name in enumerate(ARMS):
        kin = _kinematics(name, cal)
        pr = _problems(kin, cal, np.random.default_rng(100 + i))
        for k, v in {**pr, **_solve_all(kin, pr)}.items():
            arrays[f"{name}/{k}"] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("name", ARMS)
def test_ik_answers_equal_the_recorded_numpy_implementation(name):
    ref = np.load(REFERENCE)
    cal = load_calibration(config_path("calibration.yaml"))
    kin = _kinematics(name, cal)
    keys = ("cold", "path", "yawed", "yaw", "q_true", "seed")
    pr = {k: ref[f"{name}/{k}"] for k in keys}
    got = _solve_all(kin, pr)
    for kind in ("cold", "single", "path", "yawed", "any"):
        ok_ref, q_ref = ref[f"{name}/{kind}_ok"], ref[f"{name}/{kind}_q"]
        np.testing.assert_array_equal(got[f"{kind}_ok"], ok_ref, err_msg=kind)
        assert ok_ref.mean() > 0.95, kind  # the problems are mostly solvable (so the comparison means something)
        np.testing.assert_allclose(got[f"{kind}_q"], q_ref, rtol=0, atol=Q_TOL, err_msg=kind)
    np.testing.assert_array_equal(got["cold_it"], ref[f"{name}/cold_it"])


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
        print(f"wrote {REFERENCE}")
    else:
        sys.exit(f"usage: {sys.argv[0]} --record")
