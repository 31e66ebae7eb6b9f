"""The shipped URDFs against the datasheet facts (reference/kuka-iiwa.md) and the parser's checks."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from legion_bridge.robot import ARM_JOINT_NAMES, URDFError, load_robot_model, parse_urdf
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.paths import urdf_path

# Datasheet facts, restated here on purpose (the test is the independent check of the URDF).
HEIGHTS = {"iiwa7": (0.340, 0.740, 1.140), "iiwa14": (0.360, 0.780, 1.180)}
POS_LIMIT_DEG = (170, 120, 170, 120, 170, 120, 175)
VEL_LIMIT_DEG = {"iiwa7": (98, 98, 100, 130, 140, 180, 180), "iiwa14": (85, 85, 100, 75, 130, 135, 135)}
TORQUE_NM = {"iiwa7": (176, 176, 110, 110, 110, 40, 40), "iiwa14": (320, 320, 176, 176, 110, 40, 40)}
FLANGE_BEYOND_WRIST = 0.126
AXES = ((0, 0, 1), (0, 1, 0), (0, 0, 1), (0, -1, 0), (0, 0, 1), (0, 1, 0), (0, 0, 1))


@pytest.mark.parametrize("name", ["iiwa7", "iiwa14"])
def test_zero_pose_joint_heights_match_datasheet(name):
    kin = Kinematics(load_robot_model(name))
    T = kin.link_poses(np.zeros(7))
    pos = {n: T[i, :3, 3] for i, n in enumerate(kin.link_names)}
    a23, a45, a67 = HEIGHTS[name]
    for link, z in (("link_2", a23), ("link_3", a23), ("link_4", a45), ("link_5", a45),
                    ("link_6", a67), ("link_7", a67), ("tool0", a67 + FLANGE_BEYOND_WRIST)):
        np.testing.assert_allclose(pos[link], [0, 0, z], atol=1e-12, err_msg=link)
    # the arm stands straight up: every frame is on the base z axis, tcp above the flange
    assert pos["tcp"][2] > pos["tool0"][2]
    np.testing.assert_allclose(pos["tcp"][:2], 0, atol=1e-12)


@pytest.mark.parametrize("name", ["iiwa7", "iiwa14"])
def test_limits_match_datasheet(name):
    m = load_robot_model(name)
    assert m.joint_names == tuple(f"joint_a{i}" for i in range(1, 8))
    np.testing.assert_allclose(m.upper, np.radians(POS_LIMIT_DEG), rtol=1e-9)
    np.testing.assert_allclose(m.lower, -np.radians(POS_LIMIT_DEG), rtol=1e-9)
    np.testing.assert_allclose(m.velocity_limits, np.radians(VEL_LIMIT_DEG[name]), rtol=1e-9)
    np.testing.assert_allclose(m.effort_limits, TORQUE_NM[name], rtol=1e-12)


@pytest.mark.parametrize("name", ["iiwa7", "iiwa14"])
def test_axes_and_chain_structure(name):
    kin = Kinematics(name)
    m = kin.model
    # axes at the zero pose (all joint frames aligned with the base) as the datasheet lists them
    np.testing.assert_allclose([j.axis for j in m.arm_joints], AXES, atol=1e-12)
    assert kin.link_names[:8] == tuple(f"link_{i}" for i in range(8))
    assert kin.link_names[-1] == "tcp" and "tool0" in kin.link_names


@pytest.mark.parametrize("name", ["iiwa7", "iiwa14"])
def test_gripper_and_tcp(name):
    m = load_robot_model(name)
    g = m.gripper
    assert len(g.finger_joint_names) == 2
    assert all(j.type == "prismatic" for j in g.fingers)
    # fingers slide in opposite directions along the gripper's y axis
    np.testing.assert_allclose(g.fingers[0].axis, -g.fingers[1].axis, atol=1e-12)
    assert g.max_gap == pytest.approx(0.1)  # Metaworld's opening = gap / 0.1
    np.testing.assert_allclose(g.finger_positions(0.06), [0.03, 0.03])
    assert g.gap(g.finger_positions(0.5)) == pytest.approx(g.max_gap)  # clipped to the stroke
    # tcp straight ahead of the flange, same orientation
    np.testing.assert_allclose(m.tcp_from_flange[:3, :3], np.eye(3), atol=1e-12)
    assert m.tcp_from_flange[:2, 3] == pytest.approx([0, 0])
    assert 0.08 < m.tcp_from_flange[2, 3] < 0.25


def test_masses_and_inertias_are_physical():
    import xml.etree.ElementTree as ET

    for name in ("iiwa7", "iiwa14"):
        root = ET.parse(urdf_path(f"{name}.urdf")).getroot()
        total = 0.0
        for link in root.findall("link"):
            inertial = link.find("inertial")
            if inertial is None:
                continue
            mass = float(inertial.find("mass").get("value"))
            I = inertial.find("inertia")
            d = [float(I.get(k)) for k in ("ixx", "iyy", "izz")]
            assert mass > 0 and all(v > 0 for v in d), link.get("name")
            # triangle inequality of principal moments
            assert d[0] + d[1] >= d[2] and d[1] + d[2] >= d[0] and d[0] + d[2] >= d[1], link.get("name")
            if link.get("name").startswith("link_"):
                total += mass
        assert 15.0 < total < 35.0  # datasheet arm masses: ~22 kg (R800), ~30 kg (R820)


def _edit(text: str, pattern: str, repl: str) -> str:
    out, n = re.subn(pattern, repl, text, count=1)
    assert n == 1, pattern
    return out


@pytest.fixture(scope="module")
def iiwa7_text() -> str:
    return Path(urdf_path("iiwa7.urdf")).read_text()


@pytest.mark.parametrize("pattern,repl,reason", [
    (r'<joint name="joint_a4"', '<joint name="elbow"', "expected the 7 revolute joints"),
    (r'(<joint name="joint_a2" type=")revolute', r"\1continuous", "expected 'revolute'"),
    (r'(<joint name="joint_a3"[\s\S]*?)<limit [^>]*/>', r"\1", "without <limit>"),
    (r'(<joint name="joint_a5"[\s\S]*?<limit lower=")[^"]*', r"\g<1>3.5", "is not below upper"),
    (r'(<joint name="joint_a6"[\s\S]*?velocity=")[^"]*', r"\g<1>0", "velocity limit"),
    (r'(<joint name="joint_a1"[\s\S]*?effort=")[^"]*', r"\g<1>nan", "not finite"),
    (r'<link name="tcp"/>', '<link name="tool_centre"/>', "'tcp'"),
    (r'<robot name="iiwa7">', '<robot name="iiwa7"', "not well-formed XML"),
])
def test_parser_rejects_broken_urdf_with_a_reason(iiwa7_text, pattern, repl, reason):
    with pytest.raises(URDFError, match=re.escape(reason)):
        parse_urdf(_edit(iiwa7_text, pattern, repl))


def test_parser_accepts_the_shipped_text_and_unknown_names_are_clear(iiwa7_text):
    assert parse_urdf(iiwa7_text).joint_names == ARM_JOINT_NAMES
    with pytest.raises(URDFError, match="unknown robot model"):
        load_robot_model("iiwa99")
    with pytest.raises(URDFError, match="not found"):
        load_robot_model("/nonexistent/arm.urdf")


def test_within_limits_and_clip():
    m = load_robot_model("iiwa7")
    q = np.zeros(7)
    q[3] = math.radians(121)
    assert not m.within_limits(q)
    assert m.within_limits(m.clip(q))
    assert m.within_limits(m.clip(q, 0.05), margin=0.05)
