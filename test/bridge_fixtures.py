"""Shared set-up of the bridge tests: the shipped robot model, calibration and limits (no mocks)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from legion_bridge.calibration import load_calibration, read_ros_params
from legion_bridge.hand import HandFrames
from legion_bridge.node_params import SIM2REAL
from legion_bridge.paths import config_path
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import load_robot_model
from legion_bridge.safety import SafetyLimits
from legion_bridge.sim2real import Sim2RealConfig

LIMIT_KEYS = ("acceleration_limits", "position_margin", "velocity_scale", "box_tolerance_m",
              "max_joint_state_age_s", "max_future_stamp_s", "measured_limit_tolerance")


@lru_cache(maxsize=None)
def cell(model_name: str = "iiwa7"):
    """(model, kinematics, calibration, hand frames, sim2real's params: spec defaults + limits.yaml) of the shipped config."""
    cal = load_calibration(config_path("calibration.yaml"))
    model = load_robot_model(model_name)
    kin = Kinematics(model, sim_from_base=cal.sim_from_base)
    params = {**SIM2REAL.defaults(), **read_ros_params(config_path("limits.yaml"))}  # the files only override
    return model, kin, cal, HandFrames(kin, cal), params


def limits(model_name: str = "iiwa7", **overrides) -> SafetyLimits:
    model, _, cal, _, params = cell(model_name)
    p = {k: params[k] for k in LIMIT_KEYS}
    p.update(overrides)
    return SafetyLimits.from_model(model, cal.workspace_min, cal.workspace_max, p)


def sim2real_config(**overrides) -> Sim2RealConfig:
    params = cell()[4]
    period = params["policy_period_sim_s"]
    base = dict(period_s=period, horizon_s=period * params["command_horizon_periods"],
                action_timeout_periods=params["action_timeout_periods"],
                joint_state_timeout_periods=params["joint_state_timeout_periods"],
                ik_position_tolerance_m=params["ik_position_tolerance_m"])
    base.update(overrides)
    return Sim2RealConfig(**base)


def q_for_hand(hand_sim, model_name: str = "iiwa7") -> np.ndarray:
    """Joint positions putting the hand point at ``hand_sim`` (gripper down)."""
    _, kin, _, hf, _ = cell(model_name)
    ik = kin.ik(hf.tcp_base_for_hand(hand_sim))
    assert ik.success, f"test set-up: hand {hand_sim} not reachable"
    return ik.q
