"""The parameters of the sim_arm node, defined once (see :mod:`legion_policy.params`).

Apart from :mod:`legion_bridge.node_params` because it imports the MuJoCo cell (its scenes and the
setpoint generator's defaults), which the real arm's nodes never need. ROS-free.
"""
from __future__ import annotations

import dataclasses

from legion_bridge.node_params import CELL, FRACTION, arm_joint_names
from legion_bridge.robot.urdf_model import DEFAULT_MODEL
from legion_bridge.sim.cell import SCENES
from legion_bridge.sim.sim_arm import SimArmConfig
from legion_policy.params import NON_NEGATIVE, POSITIVE, NodeParams, ParamSpec, Range, merge, topics

_SIM = SimArmConfig()

SIM_ARM = NodeParams("sim_arm", merge((
    ParamSpec("robot_model", "string", DEFAULT_MODEL, "robot model: iiwa7, iiwa14 or a URDF path"),
    ParamSpec("scene", "string", "push-v3",
              "simulated scene: a Metaworld v3 task name or a multi-object scene (launch argument `scene`)",
              choices=SCENES),
    ParamSpec("seed", "int", 0, "seed of the task instances (object placement, goals)", range=Range(0)),
    ParamSpec("real_time_factor", "double", 1.0,
              "simulation speed: 1.0 = real time, 2.0 = twice as fast, <= 0 = as fast as possible"),
    ParamSpec("joint_state_rate_hz", "double", 200.0,
              "rate of /joint_states and /clock in simulation time [Hz] (FRI: 200 Hz)", range=POSITIVE,
              constraints="divides the physics rate"),
    ParamSpec("gripper_state_rate_hz", "double", 100.0, "rate of the gripper state [Hz] (sim time)", range=POSITIVE),
    ParamSpec("object_pose_rate_hz", "double", 50.0, "rate of the object poses [Hz] (sim time)", range=POSITIVE),
    ParamSpec("success_rate_hz", "double", 10.0, "rate of /sim/success [Hz] (sim time)", range=POSITIVE),
    ParamSpec("object_position_noise_std", "double", 0.0,
              "std of Gaussian noise added to published object positions [m] (0 = off)", range=NON_NEGATIVE),
    ParamSpec("object_orientation_noise_std", "double", 0.0,
              "std of a random rotation applied to published object orientations [rad]", range=NON_NEGATIVE),
    ParamSpec("object_pose_delay_s", "double", 0.0,
              "perception latency: poses are published this long after capture [s]", range=NON_NEGATIVE),
    ParamSpec("viewer", "bool", False, "open an interactive MuJoCo viewer window"),
    ParamSpec("video_path", "string", "",
              "write a video of the cell here: gif, or mp4 when imageio-ffmpeg is installed (MUJOCO_GL=egl "
              "headless); a .npz path logs the states for rendering after the run, which keeps the simulation "
              "real time; empty = none (launch argument `video`)", constraints="its folder exists"),
    ParamSpec("video_fps", "double", 20.0, "frames per second of simulation time in the video", range=POSITIVE),
    ParamSpec("video_camera", "string", "free", "camera of the video: 'free' (workspace view) or a scene camera name"),
    ParamSpec("video_size", "int[]", [480, 360], "video width, height [px]"),
    ParamSpec("acceleration_limit", "double", _SIM.acceleration_limit,
              "joint acceleration limit of the position controller's setpoint [rad/s^2]", range=POSITIVE),
    ParamSpec("velocity_fraction", "double", _SIM.velocity_fraction,
              "fraction of the datasheet joint velocity limits the setpoint may use", range=FRACTION),
    *topics(joint_states_topic="out", gripper_state_topic="out", gripper_command_topic="in",
            object_pose_prefix="out", joint_trajectory_topic="in", position_command_topic="in",
            sim_success_topic="out", sim_reset_topic="in"),
), tuple(dataclasses.replace(p, required="", computed="config/calibration.yaml's value") for p in CELL[1:]), (
    arm_joint_names("the arm's joints A1..A7 as the stood-in driver names them, in that order (config/drivers/)"),
)))
