"""The MuJoCo arm model generated from the URDF agrees with the URDF and with legion_bridge kinematics."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import load_robot_model
from legion_bridge.sim.mujoco_model import ArmIndex, compile_arm, finger_ctrl

ARMS = ("iiwa7", "iiwa14")
N_CONFIGS = 10_000
FK_TOL_M = 1e-6


@pytest.fixture(scope="module", params=ARMS)
def arm(request):
    robot = load_robot_model(request.param)
    m = compile_arm(robot)
    return robot, m, ArmIndex(m, robot)


def test_fk_matches_mujoco_bodies_10k_random_configurations(arm):
    """Every chain frame (link_0 .. tcp): position to 1e-6 m and rotation to 1e-6, 10,000 configurations."""
    robot, m, idx = arm
    kin = Kinematics(robot)
    d = mujoco.MjData(m)
    rng = np.random.default_rng(12)
    Q = rng.uniform(robot.lower, robot.upper, size=(N_CONFIGS, robot.n_joints))
    poses = kin.link_poses(Q)
    tcp_p, tcp_R = kin.fk(Q)
    pos_err = rot_err = tcp_err = 0.0
    for k in range(N_CONFIGS):
        d.qpos[idx.arm_qpos] = Q[k]
        mujoco.mj_kinematics(m, d)
        pos_err = max(pos_err, np.abs(d.xpos[idx.chain_bodies] - poses[k, :, :3, 3]).max())
        rot_err = max(rot_err, np.abs(d.xmat[idx.chain_bodies].reshape(-1, 3, 3) - poses[k, :, :3, :3]).max())
        tcp_err = max(tcp_err, np.abs(d.site_xpos[idx.tcp_site] - tcp_p[k]).max(),
                      np.abs(d.site_xmat[idx.tcp_site].reshape(3, 3) - tcp_R[k]).max())
    print(f"{robot.name}: max body position error {pos_err:.3g} m, rotation {rot_err:.3g}, tcp {tcp_err:.3g}")
    assert pos_err < FK_TOL_M and rot_err < FK_TOL_M and tcp_err < FK_TOL_M


def test_generated_model_keeps_urdf_limits_masses_and_inertias(arm):
    robot, m, idx = arm
    jids = [m.joint(n).id for n in robot.joint_names]
    np.testing.assert_allclose(m.jnt_range[jids, 0], robot.lower)
    np.testing.assert_allclose(m.jnt_range[jids, 1], robot.upper)
    assert np.all(m.jnt_limited[jids])
    # servo force clamped to the datasheet torque
    np.testing.assert_allclose(m.actuator_forcerange[idx.arm_act, 1], robot.effort_limits)
    # masses and inertias from the URDF <inertial> elements
    import xml.etree.ElementTree as ET
    root = ET.parse(robot.urdf_file).getroot()
    for link in root.findall("link"):
        inertial = link.find("inertial")
        if inertial is None:
            continue
        bid = m.body(link.get("name")).id
        assert m.body_mass[bid] == pytest.approx(float(inertial.find("mass").get("value")))
        I = inertial.find("inertia")
        diag = sorted(float(I.get(k)) for k in ("ixx", "iyy", "izz"))
        assert sorted(m.body_inertia[bid]) == pytest.approx(diag, rel=1e-6)
    total = sum(m.body_mass[1:])
    assert 15.0 < total < 40.0


def test_servo_holds_a_pose_against_gravity(arm):
    """Gravity compensation + position servo: a held pose drifts less than 1e-6 rad over 2 s."""
    robot, m, idx = arm
    d = mujoco.MjData(m)
    q = np.array([0.3, 0.8, -0.4, -1.2, 0.5, 0.9, 0.2])
    d.qpos[idx.arm_qpos] = q
    d.ctrl[idx.arm_act] = q
    mujoco.mj_step(m, d, nstep=int(2.0 / m.opt.timestep))
    assert np.abs(d.qpos[idx.arm_qpos] - q).max() < 1e-6


def test_gripper_metaworld_semantics_and_finger_speed_limit(arm):
    robot, m, idx = arm
    d = mujoco.MjData(m)
    g = robot.gripper
    speeds = []

    stroke_s = float(np.max(g.finger_upper / g.finger_velocity))  # a full stroke at the URDF finger speed

    def run(command, seconds=None):
        seconds = 1.5 * stroke_s if seconds is None else seconds
        d.ctrl[idx.finger_act] = [finger_ctrl(command, u) for u in g.finger_upper]
        for _ in range(int(seconds / m.opt.timestep)):
            mujoco.mj_step(m, d)
            speeds.append(np.abs(d.qvel[idx.finger_dof]).max())
        return float(np.sum(d.qpos[idx.finger_qpos]))

    assert run(-1.0) == pytest.approx(g.max_gap, abs=3e-3)  # open
    assert run(1.0) == pytest.approx(0.0, abs=3e-3)  # close
    assert run(-1.0, 0.5 * stroke_s) < 0.6 * g.max_gap  # no faster than the speed limit
    assert run(1.0) == pytest.approx(0.0, abs=3e-3)
    # 0 opens too (Metaworld: a <= 0 opens), with a weaker force, so more slowly
    assert run(0.0, 0.2) < 0.5 * g.max_gap
    assert run(0.0, 10 * stroke_s) > 0.9 * g.max_gap
    assert max(speeds) <= g.finger_velocity.max() * (1 + 1e-6)
    assert max(speeds) > 0.9 * g.finger_velocity.max()  # and the limit, not the servo, sets the speed
