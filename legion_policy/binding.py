"""The object binding (ROS-free): one typed class for ``/legion/binding`` and every user of it.

A :class:`Binding` says, for one skill running now, which tracked objects fill the observation's
object slots, where the goal is (a fixed point, a tracked object, or hidden), the quaternion order
of the skill's observation, and optionally the task instance's ``task_offset`` from the skill's
training region and the gripper's ``finger_yaw_deg``. The sequencer and the policy publish it,
real2sim and sim2real read it, the simulated cell evaluates its success predicates with it, and
agent manifests store it. The wire format (JSON on ``/legion/binding``, docs/architecture.md)::

    {"skill": str, "objects": [names], "goal": [x, y, z] or null, "goal_object": name or null,
     "quat_order": "xyzw"|"wxyz"|"zero", "task_offset": [dx, dy, dz] (optional),
     "finger_yaw_deg": deg in [-90, 90] (optional)}

:meth:`Binding.parse` validates it (ValueError naming the problem); :meth:`Binding.to_dict` /
:meth:`Binding.to_json` write it back, optional keys only where given.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import numpy as np

from legion_policy.observation_layout import QUAT_ORDERS, Frame, quat_xyzw_in_order

#: Largest accepted ``task_offset`` component [m]: more than a table's length is a mistake, not a cell.
MAX_TASK_OFFSET_M = 1.0
#: The two fingers are alike, so every finger axis has a yaw in [-90, 90] (keeps A7 far from its limits).
MAX_FINGER_YAW_DEG = 90.0
#: Keys of the wire format.
BINDING_KEYS = ("skill", "objects", "goal", "goal_object", "quat_order", "task_offset", "finger_yaw_deg")


def _finite_xyz(value) -> tuple[float, float, float] | None:
    """``value`` as three finite floats, or None when it is not that."""
    if not isinstance(value, (list, tuple)):
        return None
    try:
        xyz = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return xyz if len(xyz) == 3 and all(math.isfinite(v) for v in xyz) else None  # type: ignore[return-value]


@dataclass(frozen=True)
class Binding:
    """Which tracked objects fill the observation and where the goal is (validated by :meth:`parse`).

    ``task_offset`` [dx, dy, dz] (sim frame, m): where this task instance sits relative to where the skill was
    trained; real2sim subtracts it from every position it puts in the observation (hand, bound objects, goal),
    so the policy sees the task in its training region (the displacement actions and the distance-based
    success predicates do not change under the shift); None = not given (no shift). ``finger_yaw_deg``: the
    gripper's finger yaw for this step; sim2real turns the gripper there within its rate limits; None = keep
    the current one.
    """

    skill: str | None = None
    objects: tuple[str, ...] = ()
    goal: tuple[float, float, float] | None = None
    goal_object: str | None = None
    quat_order: str = "xyzw"
    task_offset: tuple[float, float, float] | None = None
    finger_yaw_deg: float | None = None

    # ------------------------------------------------------------------ reading
    @classmethod
    def parse(cls, data: "str | Mapping | Binding", where: str = "binding") -> "Binding":
        """A binding from its JSON text, its decoded mapping or a Binding; ValueError naming the problem."""
        if isinstance(data, Binding):
            return data
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} is not JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(BINDING_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}")
        skill = data.get("skill")
        if skill is not None and not isinstance(skill, str):
            raise ValueError(f"{where}: 'skill' must be a skill name, got {skill!r}")
        objects = data.get("objects", [])
        if (not isinstance(objects, (list, tuple)) or len(objects) > 2
                or not all(isinstance(o, str) and o for o in objects)):
            raise ValueError(f"{where}: 'objects' must be a list of at most 2 object names, got {objects!r}")
        goal = data.get("goal")
        if goal is not None:
            goal = _finite_xyz(goal)
            if goal is None:
                raise ValueError(f"{where}: 'goal' must be [x, y, z] or null, got {data['goal']!r}")
        goal_object = data.get("goal_object")
        if goal_object is not None and not (isinstance(goal_object, str) and goal_object):
            raise ValueError(f"{where}: 'goal_object' must be an object name or null, got {goal_object!r}")
        if goal is not None and goal_object is not None:
            raise ValueError(f"{where}: give either 'goal' or 'goal_object', not both")
        order = data.get("quat_order", "xyzw")
        if order not in QUAT_ORDERS:
            raise ValueError(f"{where}: 'quat_order' must be one of {QUAT_ORDERS}, got {order!r}")
        offset = None
        if data.get("task_offset") is not None:
            offset = _finite_xyz(data["task_offset"])
            if offset is None or not all(abs(v) <= MAX_TASK_OFFSET_M for v in offset):
                raise ValueError(f"{where}: 'task_offset' must be [dx, dy, dz] in metres, each within "
                                 f"+-{MAX_TASK_OFFSET_M} m, got {data['task_offset']!r}")
        yaw = None
        if data.get("finger_yaw_deg") is not None:
            raw = data["finger_yaw_deg"]
            try:
                yaw = float(raw)
            except (TypeError, ValueError):
                yaw = float("nan")
            if isinstance(raw, bool) or not (math.isfinite(yaw) and abs(yaw) <= MAX_FINGER_YAW_DEG):
                raise ValueError(f"{where}: 'finger_yaw_deg' must be an angle in degrees within "
                                 f"+-{MAX_FINGER_YAW_DEG:g} (the fingers are alike: every finger axis has one), "
                                 f"got {raw!r}")
        return cls(skill=skill, objects=tuple(objects), goal=goal, goal_object=goal_object, quat_order=order,
                   task_offset=offset, finger_yaw_deg=yaw)

    # ------------------------------------------------------------------ writing
    def to_dict(self, with_skill: bool = True) -> dict[str, Any]:
        """The wire format's mapping (``skill`` only when set and ``with_skill``; optional keys only when set)."""
        out: dict[str, Any] = {}
        if with_skill and self.skill is not None:
            out["skill"] = self.skill
        out.update({"objects": list(self.objects), "goal": None if self.goal is None else list(self.goal),
                    "goal_object": self.goal_object, "quat_order": self.quat_order})
        if self.task_offset is not None:
            out["task_offset"] = list(self.task_offset)
        if self.finger_yaw_deg is not None:
            out["finger_yaw_deg"] = self.finger_yaw_deg
        return out

    def to_json(self) -> str:
        """The ``/legion/binding`` message text."""
        return json.dumps(self.to_dict())

    # ------------------------------------------------------------------ use
    @property
    def needed(self) -> tuple[str, ...]:
        """Tracked names this binding reads."""
        return self.objects + ((self.goal_object,) if self.goal_object else ())

    @property
    def offset(self) -> tuple[float, float, float]:
        """``task_offset``, (0, 0, 0) when not given."""
        return self.task_offset if self.task_offset is not None else (0.0, 0.0, 0.0)

    def frame(self, hand_pos, gripper_opening: float,
              pose: Callable[[str], tuple[np.ndarray, np.ndarray]]) -> tuple[Frame, np.ndarray]:
        """The observation frame and goal of this binding (what real2sim and the sim cell both pack with
        :class:`~legion_policy.observation_layout.ObservationBuilder`): ``pose(name)`` gives a tracked object's
        (position, quaternion (x, y, z, w)) in the sim frame; the bound objects fill the object slots in order,
        their quaternions in :attr:`quat_order`; the goal is :attr:`goal`, the pose of :attr:`goal_object` or
        zeros; :attr:`offset` is subtracted from every position (hand, objects, goal)."""
        offset = np.asarray(self.offset)
        frame = Frame(hand_pos=np.asarray(hand_pos) - offset, gripper_opening=float(gripper_opening))
        for slot, name in zip((1, 2), self.objects):
            p, q = pose(name)
            setattr(frame, f"object{slot}_pos", np.array(p) - offset)
            setattr(frame, f"object{slot}_quat", quat_xyzw_in_order(q, self.quat_order))
        if self.goal is not None:
            goal = np.array(self.goal) - offset
        elif self.goal_object is not None:
            goal = np.array(pose(self.goal_object)[0]) - offset
        else:
            goal = np.zeros(3)
        return frame, goal

    def merged(self, override: Mapping | None, where: str = "binding") -> "Binding":
        """This binding with the keys of ``override`` (a partial wire mapping) replaced, validated again: a
        given ``goal`` clears ``goal_object`` and the other way round."""
        if not override:
            return self
        if not isinstance(override, Mapping):
            raise ValueError(f"{where}: 'binding' must be a mapping")
        merged = {**self.to_dict(), **override}
        if override.get("goal") is not None:
            merged["goal_object"] = None
        if override.get("goal_object") is not None:
            merged["goal"] = None
        return Binding.parse(merged, where)

    def with_(self, **changes) -> "Binding":
        """A copy with fields changed (not validated: for values that are already valid)."""
        return replace(self, **changes)
