"""Robot model (URDF) and kinematics of the KUKA LBR iiwa with its gripper: ROS-free (pinocchio + numpy).

* :func:`load_robot_model` / :class:`RobotModel` (``urdf_model``): the URDF as pinocchio reads it, checked.
* :class:`Kinematics` (``kinematics``): pinocchio's FK and Jacobian, the project's gripper-down IK of the tcp.
"""
from legion_bridge.robot.urdf_model import (  # noqa: F401
    ARM_JOINT_NAMES,
    DEFAULT_MODEL,
    GRIPPER_GAP_JOINT,
    KNOWN_MODELS,
    GripperSpec,
    JointSpec,
    RobotModel,
    URDFError,
    load_robot_model,
    parse_urdf,
)

__all__ = ["ARM_JOINT_NAMES", "DEFAULT_MODEL", "GRIPPER_GAP_JOINT", "KNOWN_MODELS", "GripperSpec",
           "JointSpec", "RobotModel", "URDFError", "load_robot_model", "parse_urdf",
           "Kinematics", "IKResult", "GRIPPER_DOWN_R"]


def __getattr__(name):  # lazy: kinematics is imported on first use
    if name in ("Kinematics", "IKResult", "GRIPPER_DOWN_R", "IKConfig"):
        from legion_bridge.robot import kinematics

        return getattr(kinematics, name)
    raise AttributeError(name)
