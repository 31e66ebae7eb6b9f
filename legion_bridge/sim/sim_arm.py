"""The ROS-free simulator core of the sim_arm node: what the real iiwa_ros2 controllers accept.

:class:`SimArm` runs a :class:`legion_bridge.sim.cell.Cell` and accepts

* joint trajectories with the semantics of a ros2_controllers JointTrajectoryController
  (:meth:`SimArm.command_trajectory`): a new trajectory replaces the running one, starting
  from the current desired state at its start time (now, or the message's header stamp);
  points are interpolated over ``time_from_start`` (linear between positions, cubic
  Hermite when every point carries velocities); after the last point the arm holds it.
  ``joint_names`` must be the controller's seven joints (any order), ``time_from_start``
  strictly increasing and > 0, positions finite and inside the joint limits; anything else
  raises :class:`CommandRejected` with the reason and the running motion continues;
* forward position commands (:meth:`SimArm.command_positions`, a Float64MultiArray of 7
  positions in joint order): the new desired position, reached as fast as the limits allow;
* gripper commands in [-1, 1] with Metaworld's semantics (:meth:`SimArm.command_gripper`).

Joint-level position control: the desired trajectory is passed through a setpoint
generator that never moves faster than the datasheet velocity limits (from the URDF) nor
accelerates harder than :attr:`SimArmConfig.acceleration_limit`, and that converges on the
desired position without overshoot; each joint's servo tracks that setpoint (with velocity
feed-forward) in MuJoCo. A trajectory that asks for more than the limits is followed late,
never faster (the real KUKA would stop with an error instead).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from legion_bridge.calibration import Calibration
from legion_bridge.robot.urdf_model import RobotModel
from legion_bridge.sim.cell import Cell


#: A trajectory whose header stamp lies further in the future than this is rejected [s]: the
#: sender's clock is not the simulation clock (use_sim_time off), and a real JTC would wait for it.
MAX_START_DELAY_S = 5.0


class CommandRejected(ValueError):
    """A command the controller refuses (message = the reason); the running motion continues."""


@dataclass(frozen=True)
class SimArmConfig:
    """Setpoint generator of the simulated joint position controller."""

    #: joint acceleration limit of the setpoint [rad/s^2] (the datasheet gives none; smooths steps)
    acceleration_limit: float = 10.0
    #: fraction of the datasheet velocity limits the setpoint may use: the servo's transients
    #: add up to ~2 % on top of the setpoint velocity (measured, test_sim_arm.py), so 0.95
    #: keeps the simulated joints under the datasheet limits
    velocity_fraction: float = 0.95
    #: gain [1/s] of the final exponential approach to the desired position (below the
    #: braking curve); with it the setpoint decelerates at most at the acceleration limit
    approach_gain: float = 20.0

    def __post_init__(self):
        if not (self.acceleration_limit > 0 and 0 < self.velocity_fraction <= 1.0 and self.approach_gain > 0):
            raise ValueError(f"invalid SimArmConfig {self}")


class Trajectory:
    """A desired joint trajectory (JTC interpolation), sampled at absolute sim times."""

    def __init__(self, start_time: float, q0: np.ndarray, qd0: np.ndarray, times: np.ndarray,
                 positions: np.ndarray, velocities: np.ndarray | None):
        self.start_time = float(start_time)
        self.t = np.concatenate([[0.0], times])
        self.q = np.vstack([q0, positions])
        self.qd = None if velocities is None else np.vstack([qd0, velocities])

    @property
    def end_time(self) -> float:
        return self.start_time + float(self.t[-1])

    @classmethod
    def hold(cls, t: float, q: np.ndarray) -> "Trajectory":
        return cls(t, q, np.zeros_like(q), np.empty(0), np.empty((0, q.size)), None)

    def sample(self, time: float) -> tuple[np.ndarray, np.ndarray]:
        """Desired positions and velocities at ``time``."""
        s = time - self.start_time
        zero = np.zeros(self.q.shape[1])
        if self.t.size == 1:
            return self.q[0].copy(), zero
        if s <= 0.0:
            return self.q[0].copy(), zero if self.qd is None else self.qd[0].copy()
        if s >= self.t[-1]:
            return self.q[-1].copy(), zero if self.qd is None else self.qd[-1].copy()
        k = int(np.searchsorted(self.t, s, side="right")) - 1
        h = self.t[k + 1] - self.t[k]
        u = (s - self.t[k]) / h
        q0, q1 = self.q[k], self.q[k + 1]
        if self.qd is None:
            return q0 + u * (q1 - q0), (q1 - q0) / h
        v0, v1 = self.qd[k] * h, self.qd[k + 1] * h
        h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
        d00, d10, d01, d11 = 6 * u**2 - 6 * u, 3 * u**2 - 4 * u + 1, -6 * u**2 + 6 * u, 3 * u**2 - 2 * u
        q = h00 * q0 + h10 * v0 + h01 * q1 + h11 * v1
        qd = (d00 * q0 + d10 * v0 + d01 * q1 + d11 * v1) / h
        return q, qd


class SetpointGenerator:
    """Moves a joint setpoint towards a desired trajectory under velocity and acceleration limits."""

    def __init__(self, velocity_limit: np.ndarray, acceleration_limit: float, approach_gain: float):
        self.vmax = np.asarray(velocity_limit, dtype=np.float64)
        self.amax = float(acceleration_limit)
        self.k = float(approach_gain)
        self.q = np.zeros_like(self.vmax)
        self.qd = np.zeros_like(self.vmax)
        self.qdd = np.zeros_like(self.vmax)

    def reset(self, q: np.ndarray) -> None:
        self.q = np.asarray(q, dtype=np.float64).copy()
        self.qd = np.zeros_like(self.q)
        self.qdd = np.zeros_like(self.q)

    def step(self, q_des: np.ndarray, qd_des: np.ndarray, dt: float) -> None:
        e = q_des - self.q
        ae = np.abs(e)
        # approach speed: exponential near the target, braking curve (half the acceleration
        # limit, leaving the other half to follow the trajectory) further out
        v_corr = np.sign(e) * np.minimum(self.k * ae, np.sqrt(self.amax * ae))
        v_target = np.minimum(np.maximum(qd_des + v_corr, -self.vmax), self.vmax)
        a_dt = self.amax * dt
        dv = np.minimum(np.maximum(v_target - self.qd, -a_dt), a_dt)
        qd = np.minimum(np.maximum(self.qd + dv, -self.vmax), self.vmax)
        self.qdd = (qd - self.qd) / dt
        self.qd = qd
        self.q = self.q + self.qd * dt


class SimArm:
    """The simulated iiwa + gripper cell with JTC / forward-position / gripper command semantics."""

    def __init__(self, scene: str = "push-v3", robot: RobotModel | str = "iiwa7",
                 calibration: Calibration | str | Path | None = None, seed: int = 0,
                 config: SimArmConfig | None = None):
        self.config = config or SimArmConfig()
        self.cell = Cell(scene, robot, calibration, seed)
        self.robot = self.cell.robot
        self.joint_names: tuple[str, ...] = self.robot.joint_names
        self.lower, self.upper = self.robot.lower.copy(), self.robot.upper.copy()
        self.velocity_limits = self.robot.velocity_limits * self.config.velocity_fraction
        self.setpoint = SetpointGenerator(self.velocity_limits, self.config.acceleration_limit,
                                          self.config.approach_gain)
        self.rejected = 0
        self.last_rejection = ""
        self._hold_here()

    # ------------------------------------------------------------------ state
    @property
    def scene(self) -> str:
        return self.cell.scene

    @property
    def time(self) -> float:
        """Simulation time [s] (monotonic across resets)."""
        return self.cell.time

    @property
    def timestep(self) -> float:
        return self.cell.timestep

    def joint_positions(self) -> np.ndarray:
        return self.cell.joint_positions()

    def joint_velocities(self) -> np.ndarray:
        return self.cell.joint_velocities()

    def joint_efforts(self) -> np.ndarray:
        return self.cell.joint_efforts()

    def gripper_gap(self) -> float:
        return self.cell.gripper_gap()

    def object_poses(self):
        return self.cell.object_poses()

    def success(self) -> dict:
        return self.cell.success()

    def desired(self) -> tuple[np.ndarray, np.ndarray]:
        """The running trajectory's desired positions and velocities now."""
        return self.trajectory.sample(self.time)

    # ------------------------------------------------------------------ commands
    def _reject(self, reason: str):
        self.rejected += 1
        self.last_rejection = reason
        raise CommandRejected(reason)

    def _check_positions(self, q: np.ndarray, what: str) -> None:
        if q.shape != (len(self.joint_names),):
            self._reject(f"{what}: {q.size} positions for {len(self.joint_names)} joints")
        if not np.all(np.isfinite(q)):
            self._reject(f"{what}: positions contain NaN or inf")
        bad = np.flatnonzero((q < self.lower) | (q > self.upper))
        if bad.size:
            i = int(bad[0])
            self._reject(f"{what}: {self.joint_names[i]} = {q[i]:.4f} rad is outside its limits "
                         f"[{self.lower[i]:.4f}, {self.upper[i]:.4f}]")

    def command_trajectory(self, joint_names: Sequence[str], times_from_start: Sequence[float],
                           positions: Sequence[Sequence[float]],
                           velocities: Sequence[Sequence[float]] | None = None,
                           start_time: float | None = None) -> None:
        """Replace the running trajectory (JTC semantics); CommandRejected with the reason if invalid.

        ``positions[i]`` / ``velocities[i]`` are ordered like ``joint_names``; ``velocities``
        is used only when every point has them. ``start_time`` (sim time; None = now) is the
        message's header stamp.
        """
        names = list(joint_names)
        if sorted(names) != sorted(self.joint_names) or len(set(names)) != len(names):
            self._reject(f"joint_names {names} do not match the controller's joints {list(self.joint_names)}")
        order = [names.index(n) for n in self.joint_names]
        if len(positions) == 0:
            self._reject("trajectory has no points")
        if len(times_from_start) != len(positions):
            self._reject(f"{len(times_from_start)} times for {len(positions)} points")
        t = np.asarray(times_from_start, dtype=np.float64)
        if not np.all(np.isfinite(t)) or t[0] <= 0.0 or np.any(np.diff(t) <= 0.0):
            self._reject(f"time_from_start must be > 0 and strictly increasing, got {t.tolist()}")
        P = np.empty((len(positions), len(names)))
        for i, p in enumerate(positions):
            p = np.asarray(p, dtype=np.float64).reshape(-1)
            if p.size != len(names):
                self._reject(f"point {i}: {p.size} positions for {len(names)} joint names")
            P[i] = p[order]
            self._check_positions(P[i], f"point {i}")
        V = None
        if velocities is not None and len(velocities) == len(positions) and all(len(v) for v in velocities):
            V = np.empty_like(P)
            for i, v in enumerate(velocities):
                v = np.asarray(v, dtype=np.float64).reshape(-1)
                if v.size != len(names) or not np.all(np.isfinite(v)):
                    self._reject(f"point {i}: velocities must be {len(names)} finite numbers")
                V[i] = v[order]
        now = self.time
        start = now if start_time is None or start_time <= 0.0 else float(start_time)
        if start - now > MAX_START_DELAY_S:
            self._reject(f"header.stamp {start:.3f} s is {start - now:.1f} s after the simulation time "
                         f"{now:.3f} s (is the sender using sim time? set use_sim_time, or send a zero stamp)")
        if start + t[-1] < now:
            self._reject(f"trajectory ends in the past (start {start:.3f} s + {t[-1]:.3f} s < now {now:.3f} s)")
        q0, qd0 = self.setpoint.q.copy(), self.setpoint.qd.copy()
        self.trajectory = Trajectory(start, q0, qd0, t, P, V)

    def command_positions(self, positions: Sequence[float]) -> None:
        """Forward position controller: the new desired joint positions (joint order)."""
        q = np.asarray(positions, dtype=np.float64).reshape(-1)
        self._check_positions(q, "position command")
        self.trajectory = Trajectory.hold(self.time, q)

    def command_gripper(self, command: float) -> None:
        """Gripper command in [-1, 1] (Metaworld: <= 0 opens, +1 closes, magnitude = force)."""
        c = float(command)
        if not np.isfinite(c) or not -1.0 <= c <= 1.0:
            self._reject(f"gripper command {c} is not in [-1, 1]")
        self.cell.set_gripper(c)

    # ------------------------------------------------------------------ simulation
    def step(self, n: int = 1) -> None:
        """Advance ``n`` physics steps (setpoint update + servo targets + mj_step each); then the poses of bodies,
        geoms and sites are those of the final joints. The sim_arm node's simulation thread and
        legion_bridge.sim.bridge_loop (the training environment, the benches) both advance the cell with this."""
        dt = self.timestep
        for _ in range(int(n)):
            q_des, qd_des = self.trajectory.sample(self.time + dt)
            self.setpoint.step(q_des, qd_des, dt)
            self.cell.set_arm_ctrl(self.setpoint.q, self.setpoint.qd, self.setpoint.qdd)
            self.cell.step(1)
        # what is read after the step (tcp, object poses, Metaworld's reward code) is of the joints now,
        # as real2sim's FK of the published joint state is
        self.cell.refresh_kinematics()

    def advance(self, seconds: float) -> None:
        self.step(int(round(seconds / self.timestep)))

    def _hold_here(self) -> None:
        q = self.cell.joint_positions()
        self.setpoint.reset(q)
        self.trajectory = Trajectory.hold(self.time, q)

    def reset(self, scene: str | None = None, seed: int | None = None, variation=None, hand_start=None) -> None:
        """New task instance (same or another scene); sim time keeps running; the arm holds its start pose.
        ``variation``, ``hand_start``: see :meth:`legion_bridge.sim.cell.Cell.reset` (single-task scenes)."""
        t = self.time
        if scene is not None and scene != self.cell.scene:
            self.cell = Cell(scene, self.robot, self.cell.calibration, self.cell._seed if seed is None else seed)
            if variation is not None or hand_start is not None:
                self.cell.reset(variation=variation, hand_start=hand_start)
        else:
            self.cell.reset(seed, variation=variation, hand_start=hand_start)
        self.cell.data.time = t
        self._hold_here()
