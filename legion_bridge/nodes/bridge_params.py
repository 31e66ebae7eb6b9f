"""Parameters shared by the real2sim and sim2real shells (declared with descriptions).

Robot model, calibration (config/calibration.yaml keys), and the timing/staleness keys of
config/limits.yaml; the policy period is chosen by ``legion_mode`` (sim: training period,
real: the slower real-arm period with the same displacement per step).
"""
from __future__ import annotations

from legion_bridge.calibration import Calibration
from legion_bridge.hand import HandFrames
from legion_bridge.robot.description import JointNames
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import load_robot_model
from legion_policy.observation_layout import METAWORLD_CONTROL_PERIOD_S
from legion_policy.ros_io import declare

#: real-arm period used when limits.yaml is not loaded: four training steps (same displacement per step)
DEFAULT_REAL_PERIOD_S = 4 * METAWORLD_CONTROL_PERIOD_S


def declare_cell(node) -> HandFrames:
    """Robot model + calibration -> :class:`HandFrames` (ValueError / FileNotFoundError with a reason)."""
    model = load_robot_model(declare(node, "robot_model", "iiwa7", "iiwa7 | iiwa14 | path of a URDF"))
    p = {
        "sim_from_base_xyz": declare(node, "sim_from_base_xyz", [0.0, 0.0, 0.0],
                                     "robot base position in the sim frame [m] (calibration.yaml)"),
        "sim_from_base_rpy": declare(node, "sim_from_base_rpy", [0.0, 0.0, 0.0],
                                     "robot base roll, pitch, yaw in the sim frame [rad] (calibration.yaml)"),
        "base_from_camera_xyz": declare(node, "base_from_camera_xyz", [0.0, 0.0, 0.0],
                                        "camera position in the robot base frame [m] (calibration.yaml)"),
        "base_from_camera_quat_xyzw": declare(node, "base_from_camera_quat_xyzw", [0.0, 0.0, 0.0, 1.0],
                                              "camera orientation in the robot base frame, (x, y, z, w)"),
        "workspace_min": declare(node, "workspace_min", [-0.5, 0.4, 0.05],
                                 "workspace box lower corner, sim frame, hand point [m]"),
        "workspace_max": declare(node, "workspace_max", [0.5, 1.0, 0.5],
                                 "workspace box upper corner, sim frame, hand point [m]"),
    }
    cal = Calibration.from_params(p)
    return HandFrames(Kinematics(model, sim_from_base=cal.sim_from_base), cal)


def declare_joint_names(node, model) -> JointNames:
    """The arm's joint names on the driver's topics (driver profile ``arm_joint_names``, config/drivers/)."""
    names = declare(node, "arm_joint_names", list(model.joint_names),
                    "the arm's joints A1..A7 as the driver names them on its topics, in that order "
                    "(driver profile, config/drivers/<driver>.yaml)")
    return JointNames.for_model(model, names)


def declare_period(node) -> float:
    """The policy period of this mode [s]."""
    mode = declare(node, "legion_mode", "sim", "sim | real (set by config/modes/<mode>.yaml)")
    sim = declare(node, "policy_period_sim_s", METAWORLD_CONTROL_PERIOD_S,
                  "policy period in simulation [s] (the training control period)")
    real = declare(node, "policy_period_real_s", DEFAULT_REAL_PERIOD_S,
                   "policy period on the real arm [s] (same displacement per step, slower)")
    if mode not in ("sim", "real"):
        raise ValueError(f"legion_mode must be sim or real, got {mode!r}")
    period = float(sim if mode == "sim" else real)
    if not period > 0:
        raise ValueError(f"policy period must be positive, got {period}")
    return period


def stamp_s(stamp) -> float:
    """A builtin_interfaces/Time as seconds."""
    return stamp.sec + stamp.nanosec * 1e-9
