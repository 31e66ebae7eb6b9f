"""What the real2sim, sim2real, description and sim_arm shells build from their declared parameters.

Robot model, calibration (config/calibration.yaml keys), and the timing/staleness keys of
config/limits.yaml; the policy period is chosen by ``legion_mode`` (sim: training period,
real: the slower real-arm period with the same displacement per step). The names, defaults and
descriptions are :data:`legion_bridge.node_params.CELL` and ``PERIOD``, part of each node's spec;
the node declares them with ``legion_policy.nodes.parameters.declare_all``.
"""
from __future__ import annotations

from legion_bridge.calibration import CALIBRATION_KEYS, Calibration
from legion_bridge.hand import HandFrames
from legion_bridge.node_params import LEGION_MODES
from legion_bridge.robot.description import JointNames
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import RobotModel, load_robot_model
from legion_policy.nodes.parameters import Declared


class ModelOf:
    """``robot_model``'s :class:`RobotModel`, read once: the defaults computed from it (``arm_joint_names``,
    sim2real's ``acceleration_limits``) are declared after ``robot_model``, the shell uses it after them.

    ``model(p)``: the model of ``p.robot_model`` (ValueError / FileNotFoundError with a reason).
    """

    def __init__(self) -> None:
        self._model: RobotModel | None = None

    def __call__(self, p: Declared) -> RobotModel:
        if self._model is None:
            self._model = load_robot_model(p.robot_model)
        return self._model

    def joint_names(self, p: Declared) -> list[str]:
        """``arm_joint_names``' computed default: the model's own joint names."""
        return list(self(p).joint_names)


def hand_frames(p: Declared, model: RobotModel) -> HandFrames:
    """Robot model + calibration -> :class:`HandFrames` (ValueError with a reason)."""
    cal = Calibration.from_params(p.pick(*CALIBRATION_KEYS))
    return HandFrames(Kinematics(model, sim_from_base=cal.sim_from_base), cal)


def joint_names(p: Declared, model: RobotModel) -> JointNames:
    """The arm's joint names on the driver's topics (driver profile ``arm_joint_names``, config/drivers/)."""
    return JointNames.for_model(model, p.arm_joint_names)


def policy_period(p: Declared) -> float:
    """The policy period of this mode [s]."""
    if p.legion_mode not in LEGION_MODES:
        raise ValueError(f"legion_mode must be sim or real, got {p.legion_mode!r}")
    period = float(p.policy_period_sim_s if p.legion_mode == "sim" else p.policy_period_real_s)
    if not period > 0:
        raise ValueError(f"policy period must be positive, got {period}")
    return period


def stamp_s(stamp) -> float:
    """A builtin_interfaces/Time as seconds."""
    return stamp.sec + stamp.nanosec * 1e-9
