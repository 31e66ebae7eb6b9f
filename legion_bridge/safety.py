"""The safety envelope of sim2real (ROS-free): what may leave the bridge towards the robot.

Every joint command passes :meth:`SafetyEnvelope.limit_command`, which returns either a
command inside all hard limits or a rejection with its reason:

* joint position limits minus ``position_margin`` (URDF limits of the robot model);
* joint velocity: ``|q_cmd - q_start| <= velocity_scale * v_max * horizon``, where the step starts
  at the measured joints or at the controller's expected desired position (``q_reference``, at
  most ``velocity_scale * v_max * reference_lead_s`` ahead of the measurement);
* joint acceleration: the implied velocity changes by at most ``a_max * period`` from the
  previous command's (enforced by clamping while it is compatible with the position and
  velocity limits; where it is not, e.g. braking before a position limit, the position and
  velocity limits win and the event is counted as ``acceleration_overridden``);
* the workspace box (sim frame, the observation's hand point, config/calibration.yaml):
  the commanded configuration's hand (forward kinematics) must lie inside it, within
  ``box_tolerance_m``.

Inputs are validated before they are used: :meth:`SafetyEnvelope.check_joint_state`
(size, joint names, NaN/inf, outside the joint limits, stale or future stamps) and
:func:`check_action` (size, NaN/inf, outside the action range). Every rejection is
counted by reason in a :class:`RejectionCounter` that the node publishes on /diagnostics.
A hold (the measured position, zero velocity) is the answer to any rejection; stopping is
exempt from the acceleration limit.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

#: Joint acceleration limit used when the limits file gives none [rad/s^2] (not in KUKA's datasheet).
DEFAULT_ACCELERATION_LIMIT = 10.0

#: Fraction of the acceleration limit planned for braking towards a target (the rest is slack for
#: the discrete command steps and the controller's lag).
BRAKING_FRACTION = 0.5

#: Reasons a :class:`RejectionCounter` may count (diagnostics keys ``rejected.<reason>``).
REASONS = (
    "action_wrong_size", "action_not_finite", "action_out_of_range", "action_stale",
    "joint_state_wrong_size", "joint_state_wrong_names", "joint_state_not_finite",
    "joint_state_out_of_limits", "joint_state_stale", "joint_state_from_future", "joint_state_missing",
    "target_not_finite", "ik_failed", "command_out_of_limits", "command_too_fast", "outside_workspace",
    "disabled", "watchdog", "binding_invalid",
)


class RejectionCounter:
    """Counts rejections by reason; ``last`` keeps the most recent (reason, detail)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.last: tuple[str, str] | None = None

    def add(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        self.counts[reason] += 1
        self.last = (reason, detail)

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def as_dict(self) -> dict[str, int]:
        return {f"rejected.{r}": int(self.counts.get(r, 0)) for r in REASONS}


@dataclass(frozen=True)
class Rejection:
    """Why an input or a command was refused."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class SafetyLimits:
    """Numbers of the envelope (SI units; joint arrays in ``joint_names`` order)."""

    joint_names: tuple[str, ...]
    lower: np.ndarray  # hard position limits [rad]
    upper: np.ndarray
    velocity: np.ndarray  # hard velocity limits [rad/s]
    acceleration: np.ndarray  # [rad/s^2]
    workspace_min: np.ndarray  # sim frame [m], applies to the hand point
    workspace_max: np.ndarray
    #: kept away from every position limit [rad]
    position_margin: float = 0.05
    #: fraction of the hard velocity limits a command may use
    velocity_scale: float = 0.5
    #: slack on the workspace box for the commanded configuration's hand [m] (IK residual)
    box_tolerance_m: float = 1e-3
    #: a joint state older than this is stale [s]
    max_joint_state_age_s: float = 0.1
    #: a joint state stamped further than this in the future is refused (clock mismatch) [s]
    max_future_stamp_s: float = 0.05
    #: measured positions may exceed the hard limits by this much before the state is refused [rad]
    measured_limit_tolerance: float = 0.02

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in ("lower", "upper", "velocity", "acceleration"):
            v = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if v.size != n or not np.all(np.isfinite(v)):
                raise ValueError(f"safety limits: {name} needs {n} finite values, got {v.tolist()}")
            object.__setattr__(self, name, v)
        for name in ("workspace_min", "workspace_max"):
            v = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if v.size != 3 or not np.all(np.isfinite(v)):
                raise ValueError(f"safety limits: {name} needs 3 finite values")
            object.__setattr__(self, name, v)
        if np.any(self.velocity <= 0) or np.any(self.acceleration <= 0):
            raise ValueError("safety limits: velocity and acceleration limits must be positive")
        if np.any(self.workspace_min >= self.workspace_max):
            raise ValueError("safety limits: workspace_min must be below workspace_max")
        if not 0 < self.velocity_scale <= 1:
            raise ValueError(f"safety limits: velocity_scale must be in (0, 1], got {self.velocity_scale}")
        if self.position_margin < 0 or np.any(self.upper - self.lower <= 2 * self.position_margin):
            raise ValueError(f"safety limits: position_margin {self.position_margin} leaves no range")
        for name in ("box_tolerance_m", "max_joint_state_age_s", "max_future_stamp_s", "measured_limit_tolerance"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"safety limits: {name} must be a non-negative number")

    @property
    def soft_lower(self) -> np.ndarray:
        return self.lower + self.position_margin

    @property
    def soft_upper(self) -> np.ndarray:
        return self.upper - self.position_margin

    @property
    def max_velocity(self) -> np.ndarray:
        """The velocity a command may use [rad/s]."""
        return self.velocity_scale * self.velocity

    @classmethod
    def from_model(cls, model, workspace_min, workspace_max, params: Mapping | None = None) -> "SafetyLimits":
        """Limits of a :class:`~legion_bridge.robot.urdf_model.RobotModel` plus ``params``.

        ``params`` (config/limits.yaml): ``acceleration_limits`` (7 values, rad/s^2),
        ``position_margin``, ``velocity_scale``, ``box_tolerance_m``, ``max_joint_state_age_s``,
        ``max_future_stamp_s``, ``measured_limit_tolerance``.
        """
        p = dict(params or {})
        acc = p.pop("acceleration_limits", None)
        if acc is None:
            raise ValueError("safety limits: missing parameter 'acceleration_limits'")
        known = {"position_margin", "velocity_scale", "box_tolerance_m", "max_joint_state_age_s",
                 "max_future_stamp_s", "measured_limit_tolerance"}
        kwargs = {k: float(v) for k, v in p.items() if k in known}
        return cls(tuple(model.joint_names), model.lower, model.upper, model.velocity_limits, acc,
                   workspace_min, workspace_max, **kwargs)


def check_action(action: Sequence[float] | np.ndarray, size: int, low: float, high: float,
                 tolerance: float = 1e-6) -> np.ndarray | Rejection:
    """A validated action (float64) or the reason it is refused (wrong size, NaN/inf, out of range)."""
    try:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        return Rejection("action_wrong_size", f"not a numeric vector: {exc}")
    if a.size != size:
        return Rejection("action_wrong_size", f"{a.size} values, expected {size}")
    if not np.all(np.isfinite(a)):
        return Rejection("action_not_finite", f"NaN or inf in {a.tolist()}")
    if np.any(a < low - tolerance) or np.any(a > high + tolerance):
        return Rejection("action_out_of_range", f"{a.tolist()} outside [{low}, {high}]")
    return np.clip(a, low, high)


def joint_positions_by_name(names: Sequence[str], positions, expected: Sequence[str]) -> np.ndarray | Rejection:
    """Positions of the ``expected`` joints in that order from a JointState's names/positions.

    Each expected joint must appear exactly once (other joints are ignored); every value finite.
    """
    names = list(names)
    try:
        pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return Rejection("joint_state_wrong_size", "positions are not numbers")
    if pos.size != len(names):
        return Rejection("joint_state_wrong_size", f"{len(names)} names, {pos.size} positions")
    missing = [n for n in expected if names.count(n) != 1]
    if missing:
        return Rejection("joint_state_wrong_names", f"joints {missing} missing or repeated in {names[:10]}")
    q = pos[[names.index(n) for n in expected]]
    if not np.all(np.isfinite(q)):
        return Rejection("joint_state_not_finite", f"NaN or inf in {q.tolist()}")
    return q


def check_stamp(stamp_s: float | None, now_s: float, max_age_s: float, max_future_s: float,
                what: str = "joint_state") -> Rejection | None:
    """None if ``stamp_s`` is fresh; else the rejection (``<what>_stale`` / ``<what>_from_future``)."""
    if stamp_s is None or not np.isfinite(stamp_s):
        return Rejection(f"{what}_stale", "no stamp")
    age = now_s - stamp_s
    if age > max_age_s:
        return Rejection(f"{what}_stale", f"{age:.3f} s old > {max_age_s} s")
    if age < -max_future_s:
        return Rejection(f"{what}_from_future", f"stamped {-age:.3f} s in the future")
    return None


@dataclass
class CommandResult:
    """A command that passed the envelope."""

    q: np.ndarray  # joint positions to reach at the end of the horizon [rad]
    velocity: np.ndarray  # implied velocity (q - q_measured) / horizon [rad/s]
    hand_sim: np.ndarray  # the command's hand point in the sim frame (FK) [m]
    scaled: bool = False  # a limit shortened the step
    acceleration_overridden: bool = False


@dataclass
class SafetyEnvelope:
    """Validates inputs and bounds commands; see the module docstring.

    ``hand_of``: function q (7,) -> the hand point in the sim frame (FK + calibration), used
    for the workspace check of every command.
    """

    limits: SafetyLimits
    hand_of: Callable[[np.ndarray], np.ndarray]
    counter: RejectionCounter = field(default_factory=RejectionCounter)
    acceleration_overrides: int = 0

    def reject(self, rej: Rejection) -> Rejection:
        self.counter.add(rej.reason, rej.detail)
        return rej

    # ------------------------------------------------------------------ inputs
    def check_joint_state(self, names: Sequence[str], positions: Sequence[float], stamp_s: float | None,
                          now_s: float) -> np.ndarray | Rejection:
        """Joint positions in the model's order, or a (counted) rejection.

        Every expected joint must appear exactly once (extra joints, e.g. a gripper's, are
        ignored); positions finite and inside the hard limits (+ ``measured_limit_tolerance``);
        the stamp no older than ``max_joint_state_age_s`` and not in the future.
        """
        lim = self.limits
        q = joint_positions_by_name(names, positions, lim.joint_names)
        if isinstance(q, Rejection):
            return self.reject(q)
        tol = lim.measured_limit_tolerance
        if np.any(q < lim.lower - tol) or np.any(q > lim.upper + tol):
            return self.reject(Rejection("joint_state_out_of_limits", f"{q.round(4).tolist()}"))
        stale = check_stamp(stamp_s, now_s, lim.max_joint_state_age_s, lim.max_future_stamp_s)
        if stale is not None:
            return self.reject(stale)
        return q

    # ------------------------------------------------------------------ commands
    def hold(self, q_measured: np.ndarray) -> np.ndarray | None:
        """The hold command (stay at the measured position), or None where even that would leave the
        envelope (measured outside the soft limits or the box): then nothing is sent and the
        controller keeps its last, checked, command."""
        q = np.asarray(q_measured, dtype=np.float64)
        lim = self.limits
        if not np.all(np.isfinite(q)) or np.any(q < lim.soft_lower) or np.any(q > lim.soft_upper):
            return None
        hand = np.asarray(self.hand_of(q), dtype=np.float64)
        tol = lim.box_tolerance_m
        if np.any(hand < lim.workspace_min - tol) or np.any(hand > lim.workspace_max + tol):
            return None
        return q.copy()

    def box_from(self, q_measured: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The box a command's hand must stay in, starting from ``q_measured``: the workspace box
        (+ tolerance), widened on each axis just to the measured hand where that is outside.

        So a hand that is (slightly) outside the box, say after jogging or a servo settling 1.5 mm
        short of Metaworld's hand start on the box edge, may move back in (the IK target is always
        inside the box), and no command takes it further out than it already is."""
        lim = self.limits
        lo, hi = lim.workspace_min - lim.box_tolerance_m, lim.workspace_max + lim.box_tolerance_m
        if q_measured is None:
            return lo, hi
        hand_m = np.asarray(self.hand_of(np.asarray(q_measured, dtype=np.float64)), dtype=np.float64)
        if not np.all(np.isfinite(hand_m)):
            return lo, hi
        return np.minimum(lo, hand_m), np.maximum(hi, hand_m)

    def within(self, q: np.ndarray, q_measured: np.ndarray | None = None, horizon_s: float | None = None) -> bool:
        """Whether ``q`` satisfies the hard rules (soft position limits, the box of :meth:`box_from`
        ``q_measured``, and the velocity limit from ``q_measured`` over ``horizon_s`` when given):
        the property every sent command has."""
        lim = self.limits
        q = np.asarray(q, dtype=np.float64)
        if q.shape != lim.lower.shape or not np.all(np.isfinite(q)):
            return False
        if np.any(q < lim.soft_lower - 1e-12) or np.any(q > lim.soft_upper + 1e-12):
            return False
        if q_measured is not None and horizon_s is not None:
            if np.any(np.abs(q - q_measured) > lim.max_velocity * horizon_s * (1 + 1e-9)):
                return False
        hand = np.asarray(self.hand_of(q), dtype=np.float64)
        box_lo, box_hi = self.box_from(q_measured)
        return bool(np.all(hand >= box_lo) and np.all(hand <= box_hi))

    def limit_command(self, q_measured: np.ndarray, q_target: np.ndarray, v_previous: np.ndarray,
                      horizon_s: float, period_s: float, q_reference: np.ndarray | None = None,
                      reference_lead_s: float = 0.0) -> CommandResult | Rejection:
        """Bound a joint target to the envelope; a (counted) rejection if it cannot be made safe.

        ``q_measured``: validated joint state. ``q_target``: the IK solution. ``v_previous``: the
        previous command's implied velocity (zeros after a hold). ``horizon_s``: time_from_start
        of the command. ``period_s``: time between commands (for the acceleration limit).
        ``q_reference``: where the controller's desired position is expected now (the previous
        command followed in time, ahead of the measurement by the feedback delay); the step is
        planned from it instead of from ``q_measured``. It may lead the measurement by at most
        ``reference_lead_s`` of motion at the velocity limit, so a command never implies more than
        ``velocity_scale * v_max * (horizon + reference_lead_s) / horizon`` from the measured state.
        """
        lim = self.limits
        qm = np.asarray(q_measured, dtype=np.float64)
        qt = np.asarray(q_target, dtype=np.float64)
        vp = np.asarray(v_previous, dtype=np.float64)
        if qt.shape != qm.shape or not np.all(np.isfinite(qt)):
            return self.reject(Rejection("target_not_finite", f"target {np.ravel(qt).tolist()}"))
        if not (horizon_s > 0 and period_s > 0 and reference_lead_s >= 0):
            raise ValueError(f"horizon ({horizon_s}) and period ({period_s}) must be positive, "
                             f"reference_lead_s ({reference_lead_s}) >= 0")
        vmax = lim.max_velocity
        q0 = qm  # where the step starts
        if q_reference is not None:
            qr = np.asarray(q_reference, dtype=np.float64)
            if qr.shape != qm.shape or not np.all(np.isfinite(qr)):
                raise ValueError(f"q_reference must be {qm.size} finite positions")
            if np.any(np.abs(qr - qm) > vmax * reference_lead_s * (1 + 1e-9)):
                return self.reject(Rejection("command_too_fast", f"reference leads the measurement by "
                                             f"{np.abs(qr - qm).max():.4f} rad"))
            q0 = qr  # plan the step from the reference
        vp = np.clip(np.where(np.isfinite(vp), vp, 0.0), -vmax, vmax)
        # velocity wanted to reach the (soft-clipped) target within the horizon, no faster than a
        # stop at the target allows (|v| <= sqrt(2 a_brake d)): without this the acceleration limit
        # makes every approach overshoot and ring around the target
        # All joints are slowed by ONE factor (the most constrained joint's), never each by its own:
        # per-joint clipping would turn the step's direction (a straight move to the target would
        # leave its line, e.g. out of the workspace box), while a common factor keeps the hand
        # heading where the policy asked.
        d = np.clip(qt, lim.soft_lower, lim.soft_upper) - q0
        v_brake = np.sqrt(2.0 * BRAKING_FRACTION * lim.acceleration * np.abs(d))
        v_full = d / horizon_s
        moving = np.abs(v_full) > 0
        caps = np.minimum(v_brake, vmax)[moving] / np.abs(v_full[moving])
        v_want = v_full * (min(1.0, float(caps.min())) if caps.size else 1.0)
        # hard: velocity limits and the soft position limits at the end of the horizon
        lo = np.maximum(-vmax, (lim.soft_lower - q0) / horizon_s)
        hi = np.minimum(vmax, (lim.soft_upper - q0) / horizon_s)
        # soft: acceleration (the change from the previous velocity, scaled by one common factor),
        # where compatible with the hard bounds
        dv = lim.acceleration * period_s
        delta = v_want - vp
        changing = np.abs(delta) > dv
        v_acc = vp + delta * (float((dv[changing] / np.abs(delta[changing])).min()) if changing.any() else 1.0)
        alo, ahi = np.maximum(lo, vp - dv), np.minimum(hi, vp + dv)
        feasible = alo <= ahi
        overridden = bool(np.any(~feasible & ((v_want < vp - dv) | (v_want > vp + dv))))
        lo_f, hi_f = np.where(feasible, alo, lo), np.where(feasible, ahi, hi)
        v = np.minimum(np.maximum(v_acc, lo_f), hi_f)  # lo > hi (cannot get back inside): caught below
        q_cmd = q0 + v * horizon_s
        # final verification of the hard limits (the rules above must guarantee them)
        if np.any(q_cmd < lim.soft_lower - 1e-12) or np.any(q_cmd > lim.soft_upper + 1e-12):
            return self.reject(Rejection("command_out_of_limits", f"{q_cmd.round(4).tolist()}"))
        if (np.any(np.abs(q_cmd - q0) > vmax * horizon_s * (1 + 1e-9))
                or np.any(np.abs(q_cmd - qm) > vmax * (horizon_s + reference_lead_s) * (1 + 1e-9))):
            return self.reject(Rejection("command_too_fast", f"step {np.abs(q_cmd - qm).max():.4f} rad"))
        hand = np.asarray(self.hand_of(q_cmd), dtype=np.float64)
        box_lo, box_hi = self.box_from(qm)
        if not np.all(np.isfinite(hand)) or np.any(hand < box_lo) or np.any(hand > box_hi):
            return self.reject(Rejection("outside_workspace", f"hand {hand.round(4).tolist()} outside the box"))
        if overridden:
            self.acceleration_overrides += 1
        return CommandResult(q=q_cmd, velocity=v, hand_sim=hand, scaled=bool(np.any(v != v_want)),
                             acceleration_overridden=overridden)
