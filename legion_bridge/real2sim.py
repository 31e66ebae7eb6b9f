"""real2sim core (ROS-free): robot and perception measurements -> observations in the sim frame.

* joint state -> FK -> tool-centre point in the base frame -> sim frame (calibration) ->
  the observation's hand point (:mod:`legion_bridge.hand`);
* gripper finger gap [m] -> Metaworld's gripper opening (gap / 0.1 clipped to [0, 1]);
* object poses (position + quaternion (x, y, z, w)) in frame ``sim_world``, ``iiwa_base`` or
  ``camera`` -> sim frame (camera through ``base_from_camera``, the paper's camera offset);
  the quaternion of object 1/2 goes into the observation in the binding's order
  (``xyzw`` | ``wxyz`` | ``zero``);
* the binding (``/legion/binding`` JSON, docs/architecture.md) says which tracked objects fill
  the object slots and where the goal is (a fixed point, a tracked object, or hidden), and
  optionally a ``task_offset``: the task instance's shift from the skill's training region,
  subtracted from every position in the observation (hand, bound objects, goal);
* frame stacking and Metaworld's clipping through
  :class:`~legion_policy.observation_layout.ObservationBuilder` (a new binding, or the first
  observation after a gap, starts a new episode: previous frame = current frame).

:meth:`Real2SimCore.observe` returns an observation only when every input it needs is
fresh (younger than its configured age); otherwise the list of what is stale or missing,
which the node reports on /diagnostics instead of publishing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from legion_bridge.calibration import Transform, matrix_to_quat_xyzw, quat_xyzw_to_matrix
from legion_policy.observation_layout import METAWORLD_CONTROL_PERIOD_S
from legion_bridge.hand import HandFrames
from legion_bridge.safety import Rejection, joint_positions_by_name
from legion_policy.binding import Binding
from legion_policy.observation_layout import ObservationBuilder, ObservationLayout, gripper_opening_from_gap

#: Frames an object pose may be given in.
SIM_FRAME, BASE_FRAME, CAMERA_FRAME = "sim_world", "iiwa_base", "camera"


@dataclass(frozen=True)
class Real2SimConfig:
    """Ages and conversions of real2sim (config/real2sim.yaml)."""

    #: observation period (the policy period) [s]: the training control period
    period_s: float = METAWORLD_CONTROL_PERIOD_S
    #: inputs older than these stop the observations [s]
    max_joint_state_age_s: float = 0.1
    max_gripper_age_s: float = 0.25
    max_object_age_s: float = 0.5
    #: stamps further than this in the future are refused (clock mismatch) [s]
    max_future_stamp_s: float = 0.05
    #: the gripper opening is computed from ``gap * gripper_gap_scale + gripper_gap_offset_m``
    #: (Metaworld measures between the claw bodies; a real gripper reports its jaw gap)
    gripper_gap_scale: float = 1.0
    gripper_gap_offset_m: float = 0.0
    #: a gap in the observation stream longer than this many periods restarts frame stacking
    restart_after_periods: float = 4.0

    @classmethod
    def from_params(cls, p: Mapping) -> "Real2SimConfig":
        keys = cls.__dataclass_fields__.keys()
        cfg = cls(**{k: float(v) for k, v in p.items() if k in keys})
        for k in keys:
            v = getattr(cfg, k)
            if not np.isfinite(v) or (v <= 0 and k not in ("gripper_gap_offset_m",)):
                raise ValueError(f"real2sim: {k} must be a positive number, got {v}")
        return cfg


@dataclass
class _Stamped:
    value: object
    stamp: float


class Real2SimCore:
    """Holds the newest measurements and turns them into observations of ``layout``."""

    def __init__(self, hand: HandFrames, layout: ObservationLayout, config: Real2SimConfig,
                 joint_names: Sequence[str], gripper_joint: str) -> None:
        self.hand = hand
        self.layout = layout
        self.cfg = config
        self.joint_names = tuple(joint_names)
        self.gripper_joint = gripper_joint
        self.calibration = hand.calibration
        self._from_frame: dict[str, Transform] = {
            SIM_FRAME: Transform(), BASE_FRAME: self.calibration.sim_from_base,
            CAMERA_FRAME: self.calibration.sim_from_camera,
        }
        self.builder = ObservationBuilder(layout)
        self.binding: Binding | None = None
        self._q: _Stamped | None = None
        self._gap: _Stamped | None = None
        self._objects: dict[str, _Stamped] = {}
        self._last_obs_time = -np.inf
        self.rejections: dict[str, int] = {}
        self.last_rejection = ""
        self.published = 0
        self.last_tcp_sim: np.ndarray | None = None

    # ------------------------------------------------------------------ inputs
    def _reject(self, reason: str, detail: str) -> bool:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        self.last_rejection = f"{reason}: {detail}"
        return False

    def on_joint_state(self, names: Sequence[str], positions, stamp_s: float) -> bool:
        q = joint_positions_by_name(names, positions, self.joint_names)
        if isinstance(q, Rejection):
            return self._reject(q.reason, q.detail)
        if not np.isfinite(stamp_s):
            return self._reject("joint_state_stale", "no stamp")
        self._q = _Stamped(q, float(stamp_s))
        return True

    def on_gripper_state(self, names: Sequence[str], positions, stamp_s: float) -> bool:
        g = joint_positions_by_name(names, positions, (self.gripper_joint,))
        if isinstance(g, Rejection):
            return self._reject("gripper_" + g.reason, g.detail)
        self._gap = _Stamped(float(g[0]), float(stamp_s))
        return True

    def on_object_pose(self, name: str, frame_id: str, position, quat_xyzw, stamp_s: float) -> bool:
        """An object's pose; kept in the sim frame (position, quaternion (x, y, z, w))."""
        p = np.asarray(position, dtype=np.float64).reshape(-1)
        q = np.asarray(quat_xyzw, dtype=np.float64).reshape(-1)
        if p.size != 3 or q.size != 4 or not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
            return self._reject("object_not_finite", f"{name}: {p.tolist()} {q.tolist()}")
        frame = frame_id.lstrip("/")
        T = self._from_frame.get(frame)
        if T is None:
            return self._reject("object_unknown_frame",
                                f"{name}: frame {frame_id!r} (known: {sorted(self._from_frame)})")
        if frame == SIM_FRAME:
            p_sim, q_sim = p, q  # untouched: bit-for-bit what the sim cell published
        else:
            n = float(np.linalg.norm(q))
            if n < 1e-6:  # a "no orientation" pose (zeros): keep zeros
                q_sim = np.zeros(4)
            else:
                q_sim = matrix_to_quat_xyzw(T.R @ quat_xyzw_to_matrix(q))
            p_sim = T.apply(p)
        self._objects[name] = _Stamped((p_sim, q_sim), float(stamp_s))
        return True

    def on_binding(self, data: str | Mapping | Binding) -> bool:
        try:
            binding = Binding.parse(data)
        except ValueError as exc:
            return self._reject("binding_invalid", str(exc))
        if binding != self.binding:
            self.builder.reset()  # a new step: frame stacking restarts like an env reset
        self.binding = binding
        return True

    # ------------------------------------------------------------------ output
    def stale_inputs(self, now_s: float) -> list[str]:
        """What keeps :meth:`observe` from producing an observation now ([] = nothing)."""
        c = self.cfg
        out = []

        def age_ok(item: _Stamped | None, max_age: float, what: str) -> None:
            if item is None:
                out.append(f"{what}: never received")
                return
            age = now_s - item.stamp
            if age > max_age:
                out.append(f"{what}: {age:.3f} s old > {max_age} s")
            elif age < -c.max_future_stamp_s:
                out.append(f"{what}: stamped {-age:.3f} s in the future")

        age_ok(self._q, c.max_joint_state_age_s, "joint_states")
        age_ok(self._gap, c.max_gripper_age_s, "gripper")
        if self.binding is None:
            out.append("binding: none received")
        else:
            for name in self.binding.needed:
                age_ok(self._objects.get(name), c.max_object_age_s, f"object {name}")
        return out

    def observe(self, now_s: float) -> np.ndarray | list[str]:
        """The observation (float64, ``layout`` order) or the list of stale/missing inputs."""
        stale = self.stale_inputs(now_s)
        if stale:
            return stale
        b = self.binding
        if now_s - self._last_obs_time > self.cfg.restart_after_periods * self.cfg.period_s:
            self.builder.reset()
        tcp = self.hand.tcp_sim(self._q.value)
        self.last_tcp_sim = tcp
        gap = self._gap.value * self.cfg.gripper_gap_scale + self.cfg.gripper_gap_offset_m
        # the binding packs the frame (as the sim cell does) and subtracts its task_offset (the task's shift from
        # its training region) from every position
        frame, goal = b.frame(tcp + self.hand.hand_from_tcp, float(gripper_opening_from_gap(gap)),
                              lambda name: self._objects[name].value)
        obs = self.builder.build(frame, goal)
        self._last_obs_time = now_s
        self.published += 1
        return obs

    def status(self) -> dict:
        return {"published": self.published, "binding": "" if self.binding is None else
                json.dumps({"skill": self.binding.skill, "objects": list(self.binding.objects)}),
                "rejected_total": sum(self.rejections.values()), "last_rejection": self.last_rejection,
                **{f"rejected.{k}": v for k, v in sorted(self.rejections.items())}}
