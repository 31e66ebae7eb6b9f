"""Per-skill facts the nodes look up by name, read from the skill data (``config/skills.yaml``,
:mod:`legion_policy.skills`), and the policy's built-in move-to skill.

* :func:`quat_order`: the order in which the skill's Metaworld env writes object 1's quaternion into the
  observation (kept bit-for-bit);
* :func:`finger_yaw_deg`: how the robot's gripper is turned for the skill (docs/bridge.md);
* :func:`default_binding`: which tracked objects fill the observation's object slots and which goal, in
  the single-task scenes of the simulated cell (object ``object``, goal ``goal``), a
  :class:`~legion_policy.binding.Binding` without the skill name.

A skill the data does not list gets ``xyzw``, yaw 0 and the single-task binding in that order.
"""
from __future__ import annotations

from legion_policy.binding import MAX_FINGER_YAW_DEG, MAX_TASK_OFFSET_M, Binding  # noqa: F401 (re-exported)

#: Name of the policy's built-in move-to skill (scripted, not learned: legion_policy.policy).
MOVE_TO = "move-to"
#: Observation fields move-to reads (its action and its success predicate).
MOVE_TO_FIELDS = ("hand_pos", "goal_pos")
#: Its binding before a sequence step adds the goal (no objects; the goal is the hand's target).
MOVE_TO_BINDING = Binding(objects=(), goal=None, goal_object=None, quat_order="xyzw")

#: Names of the tracked object and goal in the single-task scenes of the sim cell.
SINGLE_TASK_OBJECT = "object"
SINGLE_TASK_GOAL = "goal"


def _skill(name: str):
    from legion_policy.skills import skill_for_task  # noqa: PLC0415 (skills -> success -> tasks)

    return skill_for_task(name)


def quat_order(task: str) -> str:
    """Quaternion order of ``task``; ``xyzw`` (ROS order) for a skill the data does not know."""
    s = _skill(task)
    return s.quat_order if s is not None else "xyzw"


def finger_yaw_deg(task: str) -> float:
    """Finger yaw ``task`` runs with [deg]; 0 (fingers along sim x) for a skill the data does not know."""
    s = _skill(task)
    return float(s.finger_yaw_deg) if s is not None else 0.0


def default_binding(task: str) -> Binding:
    """Object binding of ``task`` in its single-task scene (no skill name)."""
    return Binding(objects=(SINGLE_TASK_OBJECT,), goal_object=SINGLE_TASK_GOAL, quat_order=quat_order(task),
                   finger_yaw_deg=finger_yaw_deg(task))
