"""sim2real core (ROS-free): policy actions -> safe joint commands for the robot.

Per action (Metaworld semantics, :data:`~legion_policy.observation_layout.ACTION_SPEC`):

1. validate the action (size, finite, in [-1, 1]) and the latest joint state (names, finite,
   limits, age): else reject (counted) and hold;
2. target hand = base + ``action[:3] * position_scale``, where base is the measured hand
   (``target_base: measured``) or the last commanded target (``commanded``: Metaworld's
   mocap, which accumulates; kept within ``max_target_lead_m`` of the measured hand);
3. clip the target to the calibrated workspace box (sim frame);
4. sim -> base frame, IK (gripper down, the fingers at the commanded yaw) seeded by the step's start;
   a failed IK holds. The binding (``/legion/binding``) may name the step's ``finger_yaw_deg``
   (a skill's ``finger_yaw_deg`` in config/skills.yaml): the commanded yaw slews there from the
   measured one at most ``finger_yaw_rate_deg_s``, accelerating and braking at
   ``finger_yaw_acceleration_deg_s2`` (with the flange down a yaw is A7 alone), one period per action;
5. the safety envelope (:mod:`legion_bridge.safety`) bounds the joint step (position limits
   minus a margin, velocity over the command horizon, acceleration between commands) and
   checks the commanded hand is in the box. The step starts where the previous command has
   the controller now (:meth:`Sim2RealCore.reference`), not at the measured joints, which
   trail it by the feedback delay; at most ``reference_lead_s`` of motion ahead of them;
6. command: the joint positions to reach ``horizon_s`` from now, and the gripper command
   ``action[3]`` (<= 0 open, +1 close).

Nothing moves until enabled (no command at all while disabled; disabling sends one hold).
Watchdog (:meth:`Sim2RealCore.tick`, every period): no fresh action within
``action_timeout_periods`` or no fresh joint state within ``joint_state_timeout_periods``
-> hold the (last valid) measured position. After joint states return, motion resumes with the
next action; after the actions stopped (a policy loss) motion also needs a new enable
(``action_watchdog_disables``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from legion_bridge.hand import HandFrames
from legion_bridge.safety import (CommandResult, Rejection, RejectionCounter, SafetyEnvelope, SafetyLimits,
                                  check_action)
from legion_policy.binding import Binding
from legion_policy.observation_layout import ACTION_SPEC, METAWORLD_CONTROL_PERIOD_S, ActionSpec

TARGET_BASES = ("measured", "commanded")


@dataclass(frozen=True)
class Sim2RealConfig:
    """Timing and behaviour of sim2real (config/sim2real.yaml)."""

    #: policy period: time between actions [s] (also the acceleration-limit interval)
    period_s: float = METAWORLD_CONTROL_PERIOD_S
    #: time_from_start of every command [s]: the controller reaches the point in this time
    horizon_s: float = 2 * METAWORLD_CONTROL_PERIOD_S
    #: base of the target hand: "measured" hand or last "commanded" target
    target_base: str = "commanded"
    #: with target_base "commanded": how far the target may lead the measured hand [m]
    max_target_lead_m: float = 0.05
    #: watchdog: hold when the newest action is older than this many periods
    action_timeout_periods: float = 8.0
    #: watchdog: hold when the newest valid joint state is older than this many periods
    joint_state_timeout_periods: float = 8.0
    #: IK result refused when the tcp misses the target by more than this [m]
    ik_position_tolerance_m: float = 2e-3
    #: the action watchdog also disables motion: after a policy loss, motion resumes only after a
    #: new enable (/legion/enable true), not merely because actions come back
    action_watchdog_disables: bool = True
    #: a command's step starts where the previous command has the controller now (its desired
    #: position, which the measured joints trail by the feedback delay: joint state -> action ->
    #: command), kept within this much motion at the velocity limit of the measured joints [s];
    #: 0 = every step starts at the measured joints (each command then loses the delay's motion)
    reference_lead_s: float = METAWORLD_CONTROL_PERIOD_S  # one training period
    #: fastest turn of the fingers' yaw between two bindings' finger_yaw_deg [deg/s] (A7; below its
    #: datasheet limit x velocity_scale, which the envelope enforces on everything anyway)
    finger_yaw_rate_deg_s: float = 60.0
    #: acceleration and braking of that turn [deg/s^2]
    finger_yaw_acceleration_deg_s2: float = 300.0

    def __post_init__(self) -> None:
        if self.target_base not in TARGET_BASES:
            raise ValueError(f"target_base must be one of {TARGET_BASES}, got {self.target_base!r}")
        object.__setattr__(self, "action_watchdog_disables", bool(self.action_watchdog_disables))
        for name in ("period_s", "horizon_s", "max_target_lead_m", "action_timeout_periods",
                     "joint_state_timeout_periods", "ik_position_tolerance_m",
                     "finger_yaw_rate_deg_s", "finger_yaw_acceleration_deg_s2"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"sim2real: {name} must be a positive number, got {v}")
        if not (np.isfinite(self.reference_lead_s) and 0 <= self.reference_lead_s <= self.horizon_s):
            raise ValueError(f"sim2real: reference_lead_s must be in [0, horizon_s = {self.horizon_s}], "
                             f"got {self.reference_lead_s}")

    @classmethod
    def from_params(cls, p: Mapping) -> "Sim2RealConfig":
        keys = cls.__dataclass_fields__.keys()
        conv = {"target_base": str, "action_watchdog_disables": bool}
        return cls(**{k: conv.get(k, float)(v) for k, v in p.items() if k in keys})


@dataclass
class Command:
    """What sim2real sends: joint positions to reach in ``horizon_s``, and maybe a gripper command."""

    kind: str  # "move" | "hold"
    q: np.ndarray
    horizon_s: float
    gripper: float | None = None
    reason: str = ""


@dataclass
class _State:
    q: np.ndarray | None = None  # last valid measured joints
    q_time: float = -np.inf  # when it was received (node clock) [s]
    q_resumed_time: float = -np.inf  # when joint states came back after a gap [s]
    obs_time: float = -np.inf  # newest observation seen on the observation topic (if subscribed) [s]
    obs_resumed_time: float = -np.inf  # when observations came back after a gap [s]
    action_time: float = -np.inf
    v_prev: np.ndarray | None = None
    target_hand: np.ndarray | None = None  # last commanded target (sim frame)
    last_command_time: float = -np.inf
    # the last move as the controller runs it: from ref_from at last_command_time to ref_to in horizon_s
    # (None after a hold: the next step starts at the measured joints)
    ref_from: np.ndarray | None = None
    ref_to: np.ndarray | None = None
    # finger yaw: the commanded one and its rate (None: from the measured joints at the next move) [rad, rad/s]
    yaw: float | None = None
    yaw_rate: float = 0.0
    holding: bool = True
    enabled: bool = False


class Sim2RealCore:
    """The sim2real pipeline; the node feeds it messages and publishes what it returns."""

    def __init__(self, hand: HandFrames, limits: SafetyLimits, config: Sim2RealConfig,
                 action_spec: ActionSpec = ACTION_SPEC, enabled: bool = False) -> None:
        self.hand = hand
        self.kin = hand.kin
        self.cfg = config
        self.spec = action_spec
        self.envelope = SafetyEnvelope(limits, hand.hand_sim)
        self.limits = limits
        self.s = _State(enabled=bool(enabled))
        self.sent_moves = 0
        self.sent_holds = 0
        self.last_ik_error = float("nan")
        #: the finger yaw the binding asks for [rad]; 0 = fingers along sim x until a binding names one
        self.yaw_goal = 0.0

    # ------------------------------------------------------------------ status
    @property
    def counter(self) -> RejectionCounter:
        return self.envelope.counter

    @property
    def enabled(self) -> bool:
        return self.s.enabled

    @property
    def holding(self) -> bool:
        return self.s.holding

    @property
    def measured_q(self) -> np.ndarray | None:
        return None if self.s.q is None else self.s.q.copy()

    def measured_hand(self) -> np.ndarray | None:
        return None if self.s.q is None else self.hand.hand_sim(self.s.q)

    # ------------------------------------------------------------------ inputs
    def on_joint_state(self, names: Sequence[str], positions, stamp_s: float | None, now_s: float) -> bool:
        """Store a joint state if it is valid (else counted); True when accepted."""
        q = self.envelope.check_joint_state(names, positions, stamp_s, now_s)
        if isinstance(q, Rejection):
            return False
        if not self._joint_state_fresh(now_s):
            self.s.q_resumed_time = now_s
        self.s.q, self.s.q_time = q, now_s
        return True

    def on_observation(self, now_s: float) -> None:
        """An observation went to the policy: with these the action watchdog blames only the policy
        (observations flowing, no actions) and not an upstream stall (observations stopped)."""
        if now_s - self.s.obs_time > self.cfg.action_timeout_periods * self.cfg.period_s:
            self.s.obs_resumed_time = now_s
        self.s.obs_time = now_s

    def on_binding(self, data: str | Mapping | Binding) -> str | None:
        """A /legion/binding (JSON or dict): takes its ``finger_yaw_deg`` as the yaw goal when it names one.
        Returns None when accepted, else the reason (counted; the yaw goal is unchanged)."""
        try:
            b = Binding.parse(data)
        except ValueError as exc:
            self.counter.add("binding_invalid", str(exc))
            return str(exc)
        if b.finger_yaw_deg is not None:
            self.yaw_goal = math.radians(b.finger_yaw_deg)
        return None

    def _slew_yaw(self, q_start: np.ndarray) -> float:
        """The next commanded finger yaw [rad]: one period of a rate- and acceleration-limited turn
        toward :attr:`yaw_goal`, starting from the measured yaw after a hold or an enable."""
        s, cfg = self.s, self.cfg
        if s.yaw is None:
            s.yaw, s.yaw_rate = self.kin.finger_yaw(q_start), 0.0
        dt = cfg.period_s
        vmax = math.radians(cfg.finger_yaw_rate_deg_s)
        acc = math.radians(cfg.finger_yaw_acceleration_deg_s2)
        err = self.yaw_goal - s.yaw
        # the fastest rate toward the goal that still stops there braking at ``acc`` in steps of dt
        # (the discrete form of sqrt(2 acc err): v dt + (v - acc dt) dt + ... <= err), within the rate limit
        ad = acc * dt
        want = math.copysign(min(vmax, ad * (math.sqrt(0.25 + 2.0 * abs(err) / (ad * dt)) - 0.5)), err)
        rate = float(np.clip(want, s.yaw_rate - ad, s.yaw_rate + ad))
        step = rate * dt
        if abs(step) >= abs(err):   # arrives this period (also when already there: err 0)
            s.yaw, s.yaw_rate = self.yaw_goal, 0.0
        else:
            s.yaw, s.yaw_rate = s.yaw + step, rate
        return s.yaw

    def set_enabled(self, enabled: bool, now_s: float) -> Command | None:
        """Enable or disable motion; disabling returns a hold (stop now)."""
        was = self.s.enabled
        self.s.enabled = bool(enabled)
        if was and not enabled:
            return self._hold(now_s, "disabled")
        if enabled and not was:  # the action watchdog re-arms with the first action
            self.s.holding, self.s.target_hand, self.s.v_prev = True, None, None
            self.s.ref_from = self.s.ref_to = None
            self.s.yaw = None
            self.s.action_time = -np.inf
        return None

    def on_action(self, action, now_s: float) -> Command | None:
        """A policy action: the command to send, a hold, or None (disabled / nothing safe to send)."""
        a = check_action(action, self.spec.size, self.spec.low, self.spec.high)
        if isinstance(a, Rejection):
            self.envelope.reject(a)
            return self._hold(now_s, a.reason) if self.s.enabled else None
        if not self.s.enabled:
            self.counter.add("disabled", "action while disabled")
            return None
        if not self._joint_state_fresh(now_s):
            self.counter.add("joint_state_missing", "no fresh valid joint state")
            return self._hold(now_s, "joint_state_missing")
        self.s.action_time = now_s
        return self._move(a, now_s)

    def tick(self, now_s: float) -> Command | None:
        """Watchdog, called every period: a hold when the action or joint-state stream went quiet.

        Joint states missing, or observations missing (when :meth:`on_observation` is fed) -> hold;
        motion resumes with the next action once they are back. Actions missing while joint
        states (and observations) flow, after actions had flowed since the last enable -> a policy
        loss: hold and, with ``action_watchdog_disables``, disable. Actions get one timeout of grace
        after joint states or observations come back.
        """
        if not self.s.enabled:
            return None
        cfg = self.cfg
        if not self._joint_state_fresh(now_s):
            if self.s.holding:
                return None
            self.counter.add("watchdog", "joint states stopped")
            return self._hold(now_s, "watchdog: joint states")
        timeout = cfg.action_timeout_periods * cfg.period_s
        since = max(self.s.action_time, self.s.q_resumed_time, self.s.obs_resumed_time)
        if self.s.obs_time > -np.inf and now_s - self.s.obs_time > timeout:
            # observations stopped too (real2sim found a stale input): not the policy's fault
            if self.s.holding:
                return None
            self.counter.add("watchdog", "observations and actions stopped")
            return self._hold(now_s, "watchdog: no observations")
        if self.s.action_time > -np.inf and now_s - since > timeout:
            if self.s.holding and not cfg.action_watchdog_disables:
                return None
            self.counter.add("watchdog", "actions stopped")
            hold = self._hold(now_s, "watchdog: actions")
            if cfg.action_watchdog_disables:
                self.s.enabled = False
                if hold is not None:
                    hold.reason += " (disabled until the next enable)"
            return hold
        return None

    # ------------------------------------------------------------------ internals
    def _joint_state_fresh(self, now_s: float) -> bool:
        return self.s.q is not None and now_s - self.s.q_time <= self.cfg.joint_state_timeout_periods * self.cfg.period_s

    def _hold(self, now_s: float, reason: str) -> Command | None:
        """Stop at the measured position; sent once (None when already holding: nothing new to say)."""
        already = self.s.holding
        self.s.holding, self.s.v_prev, self.s.target_hand = True, None, None
        self.s.ref_from = self.s.ref_to = None
        self.s.yaw = None  # the arm stops: the turn restarts from the measured yaw
        if self.s.q is None or already:
            return None
        q = self.envelope.hold(self.s.q)
        if q is None:
            return None
        self.sent_holds += 1
        self.s.last_command_time = now_s
        return Command("hold", q, self.cfg.horizon_s, None, reason)

    def reference(self, now_s: float) -> np.ndarray | None:
        """Where the last move has the controller's desired position at ``now_s`` (JTC semantics: linear
        from where it started to its point over the horizon), kept within ``reference_lead_s`` of motion
        of the measured joints; None when the next step starts at the measured joints."""
        s, cfg = self.s, self.cfg
        if cfg.reference_lead_s <= 0 or s.ref_to is None or s.q is None:
            return None
        u = float(np.clip((now_s - s.last_command_time) / cfg.horizon_s, 0.0, 1.0))
        ref = s.ref_from + u * (s.ref_to - s.ref_from)
        lead = self.limits.max_velocity * cfg.reference_lead_s
        return s.q + np.clip(ref - s.q, -lead, lead)

    def _move(self, a: np.ndarray, now_s: float) -> Command | None:
        cfg, lim = self.cfg, self.limits
        q_meas = self.s.q
        hand_meas = self.hand.hand_sim(q_meas)
        q_ref = self.reference(now_s)
        q_start = q_meas if q_ref is None else q_ref
        if cfg.target_base == "commanded" and self.s.target_hand is not None:
            base = self.s.target_hand
            lead = base - hand_meas
            n = float(np.linalg.norm(lead))
            if n > cfg.max_target_lead_m:
                base = hand_meas + lead * (cfg.max_target_lead_m / n)
        else:
            base = hand_meas
        target = np.clip(base + a[:3] * self.spec.position_scale, lim.workspace_min, lim.workspace_max)
        R = self.kin.gripper_down_yawed(self._slew_yaw(q_start))
        ik = self.kin.ik(self.hand.tcp_base_for_hand(target), q_start, R_target=R)
        self.last_ik_error = float(ik.position_error)
        if not float(ik.position_error) <= cfg.ik_position_tolerance_m:
            self.envelope.reject(Rejection("ik_failed", f"target {target.round(4).tolist()} missed by "
                                                        f"{float(ik.position_error):.4f} m"))
            return self._hold(now_s, "ik_failed")
        v_prev = self.s.v_prev if self.s.v_prev is not None else np.zeros_like(q_meas)
        # the acceleration interval is the policy period (actions are paced by the policy's timer), not the
        # gap between this node's clock readings: in the simulated graph that clock advances in /clock ticks
        # (5 ms) and reads 5-20 ms between actions 12.5 ms apart, and a min(period, gap) only ever shrank
        # the allowance (it cost reach through the graph within 150 steps a few of 20 episodes: bench_transfer)
        res = self.envelope.limit_command(q_meas, ik.q, v_prev, cfg.horizon_s, cfg.period_s, q_reference=q_ref,
                                          reference_lead_s=cfg.reference_lead_s)
        if isinstance(res, Rejection):
            return self._hold(now_s, res.reason)
        self.s.v_prev, self.s.target_hand, self.s.holding = res.velocity, target, False
        self.s.ref_from, self.s.ref_to = q_start, res.q
        self.s.last_command_time = now_s
        self.sent_moves += 1
        return Command("move", res.q, cfg.horizon_s, float(a[3]), "")

    def status(self) -> dict:
        """Counters and state for /diagnostics."""
        return {"enabled": self.s.enabled, "holding": self.s.holding, "sent_moves": self.sent_moves,
                "sent_holds": self.sent_holds, "rejected_total": self.counter.total,
                "acceleration_overridden": self.envelope.acceleration_overrides,
                "last_ik_error_m": self.last_ik_error,
                "finger_yaw_goal_deg": math.degrees(self.yaw_goal),
                "finger_yaw_commanded_deg": float("nan") if self.s.yaw is None else math.degrees(self.s.yaw),
                "last_rejection": "" if self.counter.last is None else ": ".join(self.counter.last),
                **self.counter.as_dict()}
