"""Parameters shared by the real2sim and sim2real shells, declared from the node's spec.

Robot model, calibration (config/calibration.yaml keys), and the timing/staleness keys of
config/limits.yaml; the policy period is chosen by ``legion_mode`` (sim: training period,
real: the slower real-arm period with the same displacement per step). The names, defaults and
descriptions are :data:`legion_bridge.node_params.CELL` and ``PERIOD``, part of each node's spec.
"""
from __future__ import annotations

from legion_bridge.calibration import Calibration
from legion_bridge.hand import HandFrames
from legion_bridge.node_params import CELL, LEGION_MODES
from legion_bridge.robot.description import JointNames
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import load_robot_model
from legion_policy.nodes.parameters import declarer
from legion_policy.params import NodeParams


def declare_cell(node, params: NodeParams) -> HandFrames:
    """Robot model + calibration -> :class:`HandFrames` (ValueError / FileNotFoundError with a reason)."""
    d = declarer(node, params)
    model = load_robot_model(d("robot_model"))
    cal = Calibration.from_params({spec.name: d(spec.name) for spec in CELL[1:]})
    return HandFrames(Kinematics(model, sim_from_base=cal.sim_from_base), cal)


def declare_joint_names(node, params: NodeParams, model) -> JointNames:
    """The arm's joint names on the driver's topics (driver profile ``arm_joint_names``, config/drivers/)."""
    names = declarer(node, params)("arm_joint_names", list(model.joint_names))
    return JointNames.for_model(model, names)


def declare_period(node, params: NodeParams) -> float:
    """The policy period of this mode [s]."""
    d = declarer(node, params)
    mode = d("legion_mode")
    sim = d("policy_period_sim_s")
    real = d("policy_period_real_s")
    if mode not in LEGION_MODES:
        raise ValueError(f"legion_mode must be sim or real, got {mode!r}")
    period = float(sim if mode == "sim" else real)
    if not period > 0:
        raise ValueError(f"policy period must be positive, got {period}")
    return period


def stamp_s(stamp) -> float:
    """A builtin_interfaces/Time as seconds."""
    return stamp.sec + stamp.nanosec * 1e-9
