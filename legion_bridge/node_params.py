"""The parameters of the bridge's nodes, defined once (see :mod:`legion_policy.params`).

real2sim, sim2real, description, monitor and recorder declare from these (sim_arm from
:mod:`legion_bridge.sim_arm_params`, which needs the MuJoCo cell: the real arm's nodes do not)
(``legion_policy.nodes.parameters.declare_all``); docs/architecture.md's tables are generated from
them (``python -m legion_bridge.param_docs``). The defaults are these, only: the graph's parameter
files (config/topics.yaml, limits.yaml, calibration.yaml, the node's file, the driver profile and the
mode) override them and never repeat one (test/test_node_params.py); the calibration has none (it is
required). ROS-free.
"""
from __future__ import annotations

import dataclasses

from legion_bridge.calibration import CALIBRATION_KEYS
from legion_bridge.real2sim import Real2SimConfig
from legion_bridge.robot.urdf_model import DEFAULT_MODEL
from legion_bridge.safety import DEFAULT_ACCELERATION_LIMIT, SafetyLimits
from legion_bridge.sim2real import TARGET_BASES, Sim2RealConfig
from legion_policy.observation_layout import LAYOUTS, METAWORLD_CONTROL_PERIOD_S
from legion_policy.params import NON_NEGATIVE, POSITIVE, NodeParams, ParamSpec, Range, merge, topics

#: real-arm period used when limits.yaml is not loaded: four training steps (same displacement per step)
DEFAULT_REAL_PERIOD_S = 4 * METAWORLD_CONTROL_PERIOD_S
#: ``legion_mode`` values (config/modes/<mode>.yaml sets it).
LEGION_MODES = ("sim", "real")
#: sim2real's ``command_interface`` values (legion_bridge.sim.bridge_loop keeps the same tuple).
COMMAND_INTERFACES = ("trajectory", "position")
#: (0, 1]: a fraction that must leave something.
FRACTION = Range(0.0, 1.0, low_open=True)
_R2S = Real2SimConfig()
_S2R = Sim2RealConfig()
_LIMIT = {f.name: f.default for f in dataclasses.fields(SafetyLimits) if f.default is not dataclasses.MISSING}
_MODEL_JOINTS = "the robot model's joint names, joint_a1..joint_a7"


#: What a node started without its calibration is told to pass.
PASS_CALIBRATION = "pass the calibration file (config/calibration.yaml, docs/calibration.md)"

#: Robot model and calibration (config/calibration.yaml) of real2sim and sim2real
#: (``bridge_params.hand_frames``). The calibration has no default: a node started without the file
#: refuses to start (a default would run the safety envelope for a cell nobody calibrated). sim_arm
#: takes the calibration's defaults from the file itself. (Only the ``constraints`` texts document rules:
#: legion_bridge.calibration checks them.)
CELL = (
    ParamSpec("robot_model", "string", DEFAULT_MODEL, "iiwa7 | iiwa14 | path of a URDF"),
    ParamSpec("sim_from_base_xyz", "double[]", None, "robot base position in the sim frame [m] (calibration.yaml)",
              constraints="3 values", required=PASS_CALIBRATION),
    ParamSpec("sim_from_base_rpy", "double[]", None,
              "robot base roll, pitch, yaw in the sim frame [rad] (calibration.yaml)", constraints="3 values",
              required=PASS_CALIBRATION),
    ParamSpec("base_from_camera_xyz", "double[]", None,
              "camera position in the robot base frame [m] (calibration.yaml)", constraints="3 values",
              required=PASS_CALIBRATION),
    ParamSpec("base_from_camera_quat_xyzw", "double[]", None,
              "camera orientation in the robot base frame, (x, y, z, w) (calibration.yaml)",
              constraints="4 values, a rotation", required=PASS_CALIBRATION),
    ParamSpec("workspace_min", "double[]", None,
              "workspace box lower corner, sim frame, hand point [m] (calibration.yaml)",
              constraints="3 values, below workspace_max", required=PASS_CALIBRATION),
    ParamSpec("workspace_max", "double[]", None,
              "workspace box upper corner, sim frame, hand point [m] (calibration.yaml)", constraints="3 values",
              required=PASS_CALIBRATION),
)
assert tuple(p.name for p in CELL[1:]) == CALIBRATION_KEYS

#: The policy period of the mode (``bridge_params.policy_period``; limits.yaml, modes/<mode>.yaml).
PERIOD = (
    ParamSpec("legion_mode", "string", "sim", "sim | real (set by config/modes/<mode>.yaml)", choices=LEGION_MODES),
    ParamSpec("policy_period_sim_s", "double", METAWORLD_CONTROL_PERIOD_S,
              "policy period in simulation [s] (the agent's training control period: the launch argument "
              "`policy_period` sets the agent's control_period_s)", range=POSITIVE),
    ParamSpec("policy_period_real_s", "double", DEFAULT_REAL_PERIOD_S,
              "policy period on the real arm [s] (same displacement per step, slower)", range=POSITIVE),
)


def arm_joint_names(description: str) -> ParamSpec:
    """The driver profile's joint names (config/drivers/<driver>.yaml); the default is the model's own."""
    return ParamSpec("arm_joint_names", "string[]", None, description, computed=_MODEL_JOINTS,
                     constraints="one name per joint of the model, A1 first")


REAL2SIM = NodeParams("real2sim", merge(CELL, PERIOD, (
    ParamSpec("max_joint_state_age_s", "double", _R2S.max_joint_state_age_s, "older joint states are stale [s]",
              range=NON_NEGATIVE),
    ParamSpec("max_gripper_age_s", "double", _R2S.max_gripper_age_s, "older gripper states are stale [s]",
              range=NON_NEGATIVE),
    ParamSpec("max_object_age_s", "double", _R2S.max_object_age_s, "older object poses are stale [s]",
              range=NON_NEGATIVE),
    ParamSpec("max_future_stamp_s", "double", _R2S.max_future_stamp_s, "stamps further ahead are refused [s]",
              range=NON_NEGATIVE),
    ParamSpec("gripper_gap_scale", "double", _R2S.gripper_gap_scale, "finger gap scale before / 0.1 m",
              range=POSITIVE),
    ParamSpec("gripper_gap_offset_m", "double", _R2S.gripper_gap_offset_m, "finger gap offset [m]"),
    ParamSpec("restart_after_periods", "double", _R2S.restart_after_periods,
              "an observation gap this long restarts frame stacking [periods]", range=POSITIVE),
    ParamSpec("agent_path", "string", "",
              "frozen agent whose observation layout is emitted ('' = use 'layout'; launch argument `agent`)"),
    ParamSpec("layout", "string", "metaworld39", "observation layout when agent_path is empty",
              choices=tuple(sorted(LAYOUTS))),
    arm_joint_names("the arm's joints A1..A7 as the driver names them on its topics, in that order "
                    "(driver profile, config/drivers/<driver>.yaml)"),
    ParamSpec("default_binding", "string", "", "binding JSON used until /legion/binding arrives ('' = wait)"),
    ParamSpec("tracked_objects", "string[]", ["object", "goal"],
              "object names (PoseStamped on <prefix>/<name>/pose) to track beyond those of the skill and scene data "
              "(config/skills.yaml, config/scenes/): real2sim tracks the data's names and any name a binding reads"),
    *topics(joint_states_topic="in", gripper_state_topic="in", object_pose_prefix="in", observation_topic="out",
            binding_topic="in"),
    ParamSpec("diagnostics_period_s", "double", 0.5, "diagnostics period [s]", range=POSITIVE),
)))

SIM2REAL = NodeParams("sim2real", merge(CELL, PERIOD, (
    ParamSpec("command_horizon_periods", "double", _S2R.horizon_s / _S2R.period_s,
              "time_from_start of a command, in policy periods", range=POSITIVE),
    ParamSpec("target_base", "string", _S2R.target_base, "base of the target hand", choices=TARGET_BASES),
    ParamSpec("max_target_lead_m", "double", _S2R.max_target_lead_m,
              "how far a commanded target may lead the measured hand [m]", range=POSITIVE),
    ParamSpec("action_timeout_periods", "double", _S2R.action_timeout_periods,
              "watchdog: hold after this many periods without an action", range=POSITIVE),
    ParamSpec("joint_state_timeout_periods", "double", _S2R.joint_state_timeout_periods,
              "watchdog: hold after this many periods without a valid joint state", range=POSITIVE),
    ParamSpec("ik_position_tolerance_m", "double", _S2R.ik_position_tolerance_m,
              "IK solutions missing by more are refused [m]", range=POSITIVE),
    ParamSpec("action_watchdog_disables", "bool", _S2R.action_watchdog_disables,
              "after the action watchdog, motion resumes only after a new enable"),
    ParamSpec("reference_lead_s", "double", _S2R.reference_lead_s,
              "a step starts at the previous command followed in time, at most this much motion at the velocity "
              "limit ahead of the measured joints (covers the feedback delay) [s]; 0 = at the measured joints",
              range=NON_NEGATIVE, constraints="<= the command horizon"),
    ParamSpec("finger_yaw_rate_deg_s", "double", _S2R.finger_yaw_rate_deg_s,
              "fastest turn of the fingers to a binding's finger_yaw_deg [deg/s]", range=POSITIVE),
    ParamSpec("finger_yaw_acceleration_deg_s2", "double", _S2R.finger_yaw_acceleration_deg_s2,
              "acceleration and braking of that turn [deg/s^2]", range=POSITIVE),
    ParamSpec("acceleration_limits", "double[]", [DEFAULT_ACCELERATION_LIMIT] * 7,
              "joint acceleration limits A1..A7 [rad/s^2] (not in KUKA's datasheet: the simulated controller's "
              "setpoint limit)", constraints="one value > 0 per joint"),
    ParamSpec("position_margin", "double", _LIMIT["position_margin"],
              "kept away from every joint position limit [rad]", range=NON_NEGATIVE,
              constraints="leaves a range on every joint"),
    ParamSpec("velocity_scale", "double", _LIMIT["velocity_scale"],
              "fraction of the joint velocity limits a command may use", range=FRACTION),
    ParamSpec("box_tolerance_m", "double", _LIMIT["box_tolerance_m"],
              "slack on the workspace box for a command's hand [m]", range=NON_NEGATIVE),
    ParamSpec("max_joint_state_age_s", "double", _LIMIT["max_joint_state_age_s"],
              "older joint states are refused [s]", range=NON_NEGATIVE),
    ParamSpec("max_future_stamp_s", "double", _LIMIT["max_future_stamp_s"],
              "joint states stamped further ahead are refused [s]", range=NON_NEGATIVE),
    ParamSpec("measured_limit_tolerance", "double", _LIMIT["measured_limit_tolerance"],
              "measured joints beyond a hard limit by more are refused [rad]", range=NON_NEGATIVE),
    ParamSpec("command_interface", "string", COMMAND_INTERFACES[0],
              "trajectory: JointTrajectory on joint_trajectory_topic; position: Float64MultiArray on "
              "position_command_topic (launch argument `command_interface`)", choices=COMMAND_INTERFACES),
    ParamSpec("start_enabled", "bool", False,
              "motion allowed at start (the real robot starts disabled; launch argument `enable`)"),
    arm_joint_names("the arm's joints A1..A7 as the driver names them on its topics, in that order "
                    "(driver profile, config/drivers/<driver>.yaml)"),
    *topics(joint_states_topic="in", action_topic="in", enable_topic="in", joint_trajectory_topic="out",
            position_command_topic="out", gripper_command_topic="out",
            binding_topic="in: its finger_yaw_deg",
            observation_topic="in, only watched: tells the watchdog a policy stall from an input stall"),
    ParamSpec("diagnostics_period_s", "double", 0.5, "diagnostics period [s]", range=POSITIVE),
)))

DESCRIPTION = NodeParams("description", (
    ParamSpec("robot_model", "string", DEFAULT_MODEL, "iiwa7 | iiwa14 | path of a URDF (with the gripper)"),
    arm_joint_names("the arm's joints A1..A7 as the driver names them on its topics, in that order "
                    "(driver profile, config/drivers/<driver>.yaml)"),
    *topics(robot_description_topic="out"),
    ParamSpec("publish_robot_joint_states", "bool", False,
              "also publish arm + finger joint states on robot_joint_states_topic (launch argument `rviz`)"),
    *topics(robot_joint_states_topic="out"),
    ParamSpec("robot_joint_states_rate_hz", "double", 30.0, "largest rate of robot_joint_states_topic [Hz]",
              range=POSITIVE),
    *topics(joint_states_topic="in", gripper_state_topic="in"),
))

#: What a ``$name`` entry of a topic list declares (monitor, recorder).
DOLLAR_TOPICS = ("each `$name` entry of `topics`{also} declares a string parameter `name` (default \"\"; the "
                 "parameter files set it, e.g. `joint_states_topic` in topics.yaml or the driver profile), whose "
                 "value is the topic")



def named_topic(name: str, entry: str) -> ParamSpec:
    """The parameter a ``$name`` entry of a topic list (monitor, recorder) declares at start."""
    return ParamSpec(name, "string", "", f"the topic named by the entry {entry!r} (set by a parameter file)")


MONITOR = NodeParams("monitor", (
    ParamSpec("topics", "string[]", ["/joint_states:sensor_msgs/msg/JointState"],
              "topics to watch, each '/topic:pkg/msg/Type', or '$name:pkg/msg/Type' for the topic parameter "
              "`name` holds"),
    ParamSpec("expected_rates_hz", "double[]", None,
              "expected rate per topic [Hz] (0 = report only), same order as 'topics'",
              computed="0.0 for each topics entry", constraints="one value per topics entry"),
    ParamSpec("tolerance", "double", 0.05, "relative rate error still reported as OK (applied at the next report)",
              range=NON_NEGATIVE, settable=True),
    ParamSpec("period_s", "double", 1.0, "report period [s]", range=POSITIVE),
), dynamic=DOLLAR_TOPICS.format(also=""))

RECORDER = NodeParams("recorder", (
    ParamSpec("bag_path", "string", "",
              "folder of the bag to write (must not exist); '' = runs/bag-<time> in the working folder "
              "(launch argument `bag`)"),
    ParamSpec("topics", "string[]", ["/joint_states"],
              "topics to record: a name, or $name for the topic parameter `name` holds",
              constraints="absolute names"),
    ParamSpec("topic_prefixes", "string[]", [""],
              "record every topic below each prefix (or $name of a parameter); '' = none"),
    ParamSpec("discovery_period_s", "double", 0.5, "how often the graph is looked at for new topics to record [s]",
              range=POSITIVE),
), dynamic=DOLLAR_TOPICS.format(also=" and `topic_prefixes`"))
