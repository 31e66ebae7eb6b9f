"""The observation's hand point of the robot, in the sim frame (ROS-free).

``hand_sim(q) = sim_from_base(FK_tcp(q)) + HAND_FROM_TCP_M``: the robot's tool-centre
point (fingertip centre) mapped through the calibration into the sim frame, raised to
where Metaworld's observation puts the hand (its ``hand`` body sits
:data:`~legion_policy.observation_layout.HAND_FROM_TCP_M` above the fingertip centre with the
gripper pointing down). real2sim reports it, sim2real inverts it for IK, and the safety
envelope checks the workspace box on it (the box is Metaworld's hand/mocap box).
"""
from __future__ import annotations

import numpy as np

from legion_bridge.calibration import Calibration
from legion_policy.observation_layout import HAND_FROM_TCP_M


class HandFrames:
    """Hand point <-> joints for one robot model and one calibration."""

    def __init__(self, kinematics, calibration: Calibration) -> None:
        self.kin = kinematics
        self.calibration = calibration
        self.sim_from_base = calibration.sim_from_base
        self.base_from_sim = calibration.sim_from_base.inverse()
        self.hand_from_tcp = np.asarray(HAND_FROM_TCP_M, dtype=np.float64)

    def tcp_sim(self, q) -> np.ndarray:
        """Tool-centre point (fingertip centre) in the sim frame (..., 3) [m]."""
        p, _ = self.kin.fk(q)
        return self.sim_from_base.apply(p)

    def hand_sim(self, q) -> np.ndarray:
        """The observation's hand point in the sim frame (..., 3) [m]."""
        return self.tcp_sim(q) + self.hand_from_tcp

    def tcp_base_for_hand(self, hand_sim) -> np.ndarray:
        """The tcp position in the base frame that puts the hand point at ``hand_sim`` (gripper down)."""
        return self.base_from_sim.apply(np.asarray(hand_sim, dtype=np.float64) - self.hand_from_tcp)
