"""Per-task facts of the Metaworld v3 tasks the agent knows, other than success and language.

* :data:`QUAT_ORDER_BY_TASK`: the order in which the task's Metaworld env writes
  object 1's quaternion into the observation (metaworld-v3.md; kept bit-for-bit).
* :func:`default_binding`: which tracked objects fill the observation's object
  slots and which goal, in the single-task scenes of the simulated cell (object
  ``object``, goal ``goal``). The JSON shape is the one of ``/legion/binding``
  (docs/architecture.md) without the ``skill`` key.
* :data:`FINGER_YAW_DEG_BY_TASK`: how the robot's gripper is turned for each skill.
"""
from __future__ import annotations

import json
import math
from typing import Mapping

from legion_policy.observation_layout import QUAT_ORDERS

#: Object-1 quaternion order of each task's observation.
QUAT_ORDER_BY_TASK: dict[str, str] = {
    "reach-v3": "xyzw", "push-v3": "xyzw", "pick-place-v3": "xyzw", "door-open-v3": "xyzw",
    "peg-insert-side-v3": "xyzw",
    "drawer-open-v3": "wxyz", "button-press-topdown-v3": "wxyz",
    "drawer-close-v3": "zero", "window-open-v3": "zero", "window-close-v3": "zero",
    # beyond MT10 (metaworld 3.1.1 _get_quat_objects)
    "handle-press-v3": "zero",
}
assert set(QUAT_ORDER_BY_TASK.values()) <= set(QUAT_ORDERS)

#: Yaw of the gripper's fingers each skill runs with on the robot [deg], about world up (sim +z) from
#: fingers opening along sim x (0, the bridge's default). Metaworld's Sawyer claws open along sim y;
#: the project's gripper body is 14 cm long along its finger axis. A handle-press with the fingers
#: across the lever straddles it and pushes with the palm (ROS-free cores, 20 placements, 150 steps:
#: 8/20 along sim x, 17/20 along sim y), while a drawer-close in the workbench with the fingers
#: along sim y rests the gripper body on the drawer case (4/10 sequences failed), so only
#: handle-press turns. sim2real turns the gripper rate- and acceleration-limited (docs/bridge.md).
#: The two fingers are alike, so every finger axis has a yaw in [-90, 90]: bindings stay in that range,
#: which keeps A7 far from its +-175 deg limits.
FINGER_YAW_DEG_BY_TASK: dict[str, float] = {"handle-press-v3": 90.0}
MAX_FINGER_YAW_DEG = 90.0
assert all(abs(v) <= MAX_FINGER_YAW_DEG for v in FINGER_YAW_DEG_BY_TASK.values())

#: Largest accepted ``task_offset`` component [m]: more than a table's length is a mistake, not a cell.
MAX_TASK_OFFSET_M = 1.0

#: Name of the policy's built-in move-to skill (scripted, not learned: legion_policy.policy).
MOVE_TO = "move-to"
#: Observation fields move-to reads (its action and its success predicate).
MOVE_TO_FIELDS = ("hand_pos", "goal_pos")
#: Its binding before a sequence step adds the goal (no objects; the goal is the hand's target).
MOVE_TO_BINDING = {"objects": [], "goal": None, "goal_object": None, "quat_order": "xyzw"}

#: Names of the tracked object and goal in the single-task scenes of the sim cell.
SINGLE_TASK_OBJECT = "object"
SINGLE_TASK_GOAL = "goal"


def quat_order(task: str) -> str:
    """Quaternion order of ``task``; ``xyzw`` (ROS order) for a task this table does not know."""
    return QUAT_ORDER_BY_TASK.get(task, "xyzw")


def finger_yaw_deg(task: str) -> float:
    """Finger yaw ``task`` runs with [deg]; 0 (fingers along sim x) for a task the table does not list."""
    return float(FINGER_YAW_DEG_BY_TASK.get(task, 0.0))


def default_binding(task: str) -> dict:
    """Object binding of ``task`` in its single-task scene."""
    return {"objects": [SINGLE_TASK_OBJECT], "goal": None, "goal_object": SINGLE_TASK_GOAL,
            "quat_order": quat_order(task), "finger_yaw_deg": finger_yaw_deg(task)}


def parse_binding(data: str | Mapping, where: str = "binding") -> dict:
    """A ``/legion/binding`` message (its JSON text, or the decoded mapping), validated by
    :func:`validate_binding`; ValueError naming the problem."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not JSON: {exc}") from None
    return validate_binding(dict(data) if isinstance(data, Mapping) else data, where)


def _finite_xyz(value) -> list[float] | None:
    """``value`` as three finite floats, or None when it is not that."""
    try:
        xyz = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return xyz if len(xyz) == 3 and all(math.isfinite(v) for v in xyz) else None


def validate_binding(binding: dict, where: str = "binding") -> dict:
    """Check the shape of a binding; ValueError naming the problem.

    Keys: ``objects`` (tracked names filling the object slots), ``goal`` ([x, y, z]) or
    ``goal_object`` (a tracked name), ``quat_order``, and optionally ``task_offset``
    ([dx, dy, dz], sim frame, metres): where this task instance sits relative to where the
    skill was trained. real2sim subtracts it from every position it puts in the observation
    (hand, bound objects, goal), so the policy sees the task in its training region; the
    displacement actions and the distance-based success predicates do not change under
    the shift. Kept only when given. ``finger_yaw_deg`` (optional, degrees in [-90, 90]): the
    gripper's finger yaw for this step (:data:`FINGER_YAW_DEG_BY_TASK`); sim2real turns the
    gripper there within its rate limits; absent = keep the current one. Kept only when given.
    """
    if not isinstance(binding, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(binding).__name__}")
    unknown = sorted(set(binding) - {"skill", "objects", "goal", "goal_object", "quat_order", "task_offset",
                                      "finger_yaw_deg"})
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")
    objects = binding.get("objects", [])
    if not isinstance(objects, list) or len(objects) > 2 or not all(isinstance(o, str) and o for o in objects):
        raise ValueError(f"{where}: 'objects' must be a list of at most 2 object names, got {objects!r}")
    goal = binding.get("goal")
    if goal is not None:
        goal = _finite_xyz(goal) if isinstance(goal, (list, tuple)) else None
        if goal is None:
            raise ValueError(f"{where}: 'goal' must be [x, y, z] or null, got {binding['goal']!r}")
    goal_object = binding.get("goal_object")
    if goal_object is not None and not (isinstance(goal_object, str) and goal_object):
        raise ValueError(f"{where}: 'goal_object' must be an object name or null, got {goal_object!r}")
    if goal is not None and goal_object is not None:
        raise ValueError(f"{where}: give either 'goal' or 'goal_object', not both")
    order = binding.get("quat_order", "xyzw")
    if order not in QUAT_ORDERS:
        raise ValueError(f"{where}: 'quat_order' must be one of {QUAT_ORDERS}, got {order!r}")
    out = {"objects": list(objects), "goal": goal, "goal_object": goal_object, "quat_order": order}
    if binding.get("task_offset") is not None:
        off = _finite_xyz(binding["task_offset"])
        if off is None or not all(abs(v) <= MAX_TASK_OFFSET_M for v in off):
            raise ValueError(f"{where}: 'task_offset' must be [dx, dy, dz] in metres, each within "
                             f"+-{MAX_TASK_OFFSET_M} m, got {binding['task_offset']!r}")
        out["task_offset"] = off
    if binding.get("finger_yaw_deg") is not None:
        yaw = binding["finger_yaw_deg"]
        try:
            yaw = float(yaw)
        except (TypeError, ValueError):
            yaw = float("nan")
        if isinstance(binding["finger_yaw_deg"], bool) or not (math.isfinite(yaw) and abs(yaw) <= MAX_FINGER_YAW_DEG):
            raise ValueError(f"{where}: 'finger_yaw_deg' must be an angle in degrees within +-{MAX_FINGER_YAW_DEG:g} "
                             f"(the fingers are alike: every finger axis has one), got {binding['finger_yaw_deg']!r}")
        out["finger_yaw_deg"] = yaw
    if "skill" in binding:
        out = {"skill": binding["skill"], **out}
    return out
