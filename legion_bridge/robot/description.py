"""The robot description a driver's clients see, and the driver's joint names (ROS-free).

The robot model (``urdf/<model>.urdf``, :mod:`legion_bridge.robot.urdf_model`) names the arm's joints
``joint_a1`` .. ``joint_a7`` (iiwa_ros2). Another driver names the same joints its own way
(lbr_fri_ros2_stack: ``lbr_A1`` .. ``lbr_A7``); a driver profile (``config/drivers/<name>.yaml``) gives
those names as ``arm_joint_names``, A1..A7 in order. The nodes translate at their edges with
:class:`JointNames`; kinematics, limits and the simulated cell keep the model's names and numbers.

:func:`robot_description` is the URDF text published on ``/robot_description``: the model's file with
the gripper, its arm joints renamed to the driver's names (so robot_state_publisher turns the driver's
``/joint_states`` into TF).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Sequence

from legion_bridge.robot.urdf_model import RobotModel, URDFError, load_robot_model, resolve_urdf


@dataclass(frozen=True)
class JointNames:
    """The arm's joints as the robot model and as the driver name them (same order, A1..A7)."""

    model: tuple[str, ...]
    driver: tuple[str, ...]

    @classmethod
    def for_model(cls, model: RobotModel, driver_names: Sequence[str] | None = None) -> "JointNames":
        """ValueError (one line) unless ``driver_names`` are as many distinct, non-empty names as the
        model's arm joints; empty or None: the model's own names."""
        names = tuple(str(n) for n in (driver_names or ()))
        if not names:
            return cls(tuple(model.joint_names), tuple(model.joint_names))
        if len(names) != model.n_joints or len(set(names)) != len(names) or not all(n.strip() for n in names):
            raise ValueError(f"arm_joint_names must be {model.n_joints} distinct names (A1..A7 in order), "
                             f"got {list(names)}")
        return cls(tuple(model.joint_names), names)

    @property
    def identity(self) -> bool:
        return self.model == self.driver

    def to_model(self, names: Sequence[str]) -> list[str]:
        """A message's joint names in the model's naming. Other names pass unchanged, except a model name
        that is not the driver's (``joint_a1`` from another driver), which becomes ``?joint_a1``: a
        message with the wrong driver's names is refused as missing joints, never taken for the arm."""
        table = dict(zip(self.driver, self.model))
        foreign = set(self.model) - set(self.driver)
        return [table.get(n, "?" + n if n in foreign else n) for n in names]

    def to_driver(self, names: Sequence[str]) -> list[str]:
        """Model joint names in the driver's naming (other names pass unchanged)."""
        table = dict(zip(self.model, self.driver))
        return [table.get(n, n) for n in names]


def robot_description(robot_model: str, driver_names: Sequence[str] | None = None) -> str:
    """The URDF text of ``robot_model`` (a shipped model name or a URDF path) with the gripper, its arm
    joints named as the driver names them. URDFError / ValueError with a one-line reason."""
    model = load_robot_model(robot_model)
    names = JointNames.for_model(model, driver_names)
    _, path = resolve_urdf(robot_model)
    text = path.read_text()
    if names.identity:
        return text
    clash = set(names.driver) & (set(model.joints) - set(names.model))
    if clash:
        raise ValueError(f"arm_joint_names {sorted(clash)} are already joints of {path.name}")
    root = ET.fromstring(text)
    table = dict(zip(names.model, names.driver))
    for el in root.iter():
        if el.tag == "joint" and el.get("name") in table:
            el.set("name", table[el.get("name")])
        elif el.tag == "mimic" and el.get("joint") in table:
            el.set("joint", table[el.get("joint")])
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def description_joint_names(urdf_text: str) -> list[str]:
    """Names of the movable joints of a URDF text (what /joint_states must name for TF), in file order."""
    try:
        root = ET.fromstring(urdf_text)
    except ET.ParseError as exc:
        raise URDFError(f"robot description is not well-formed XML ({exc})") from None
    return [el.get("name") for el in root.findall("joint") if el.get("type") not in ("fixed", None)]
