"""Success predicates of the Metaworld v3 tasks, evaluated from an observation.

One :class:`SuccessPredicate` per task (``"push-v3"``, ...), reproducing the
``info['success']`` of Metaworld v3's ``evaluate_state`` (metaworld 3.1.1): the
same positions compared in the same axes against the same threshold, read from
the named fields of an observation layout (:mod:`legion_policy.observation_layout`)
instead of from the simulator. Used by the sequencer, the training evaluation
and the simulated cell.

Two quantities Metaworld uses are not in the observation and are reconstructed:

* ``reach-v3`` compares the fingertip centre (``tcp_center``) with the goal,
  while observation[0:3] is the ``hand`` body. The fingertip centre hangs
  :data:`HAND_TO_TCP_OFFSET_M` below the hand (the gripper points down); measured
  scatter of the true offset is a few millimetres, so near the threshold the
  predicate can differ from Metaworld (see :data:`REACH_TCP_TOLERANCE_M`).
* ``peg-insert-side-v3`` compares the peg head with the goal; the observation
  holds the grasp site and its orientation, and the head is that site plus a
  fixed offset (:data:`PEG_GRASP_TO_HEAD_LOCAL_M`) in the peg frame, so the
  predicate needs the object-1 quaternion (``metaworld39``, not ``compact12``).

Every predicate needs the goal, i.e. an observation with the goal visible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from legion_policy.observation_layout import ObservationLayout, get_layout

#: Fingertip centre minus ``hand`` body position in Metaworld (gripper pointing down), metres.
#: Measured over reach-v3 rollouts: mean (-0.0004, 0.0016, -0.0449), scatter up to ~4 mm in x/y.
HAND_TO_TCP_OFFSET_M = np.array([0.0, 0.0, -0.045])
#: How far the reconstructed fingertip centre may be from Metaworld's (metres): near the
#: reach threshold the predicate may disagree with ``info['success']`` within this band.
REACH_TCP_TOLERANCE_M = 0.006
#: Peg head minus grasp site in the peg's frame (metaworld sawyer_peg_insertion_side.xml:
#: pegHead at (-0.1, 0, 0), pegGrasp at (0.03, 0, 0.01)), metres.
PEG_GRASP_TO_HEAD_LOCAL_M = np.array([-0.13, 0.0, -0.01])
#: Per-axis weights Metaworld applies to the peg-head-to-goal error (x, y, z).
PEG_ERROR_SCALE = np.array([1.0, 2.0, 2.0])


def _norm(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v, axis=-1)


def _quat_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from (x, y, z, w) quaternions (normalised here)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=-2)


# --- the distance each task thresholds (fields: dict of layout field -> array) -----------


def _reach(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return _norm(f["hand_pos"] + HAND_TO_TCP_OFFSET_M - f["goal_pos"])


def _obj_to_goal(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return _norm(f["object1_pos"] - f["goal_pos"])


def _obj_x_to_goal_x(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.abs(f["object1_pos"][..., 0] - f["goal_pos"][..., 0])


def _obj_z_to_goal_z(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.abs(f["object1_pos"][..., 2] - f["goal_pos"][..., 2])


def _peg_head_to_goal(f: Mapping[str, np.ndarray]) -> np.ndarray:
    rot = _quat_xyzw_to_matrix(f["object1_quat"])
    head = f["object1_pos"] + rot @ PEG_GRASP_TO_HEAD_LOCAL_M
    return _norm((head - f["goal_pos"]) * PEG_ERROR_SCALE)


@dataclass(frozen=True)
class SuccessPredicate:
    """``distance(obs) <= threshold`` for one task.

    task: Metaworld v3 task name. threshold: metres (Metaworld's value).
    fields: the layout fields the distance reads. description: what is compared.
    """

    task: str
    threshold: float
    fields: tuple[str, ...]
    description: str
    _distance: Callable[[Mapping[str, np.ndarray]], np.ndarray]

    def check_layout(self, layout: ObservationLayout) -> None:
        """ValueError naming the missing fields if ``layout`` cannot evaluate this predicate."""
        missing = [name for name in self.fields if name not in layout.field_names]
        if missing:
            raise ValueError(f"success predicate of {self.task!r} needs fields {missing} "
                             f"that layout {layout.name!r} does not have")

    def distance(self, obs: np.ndarray, layout: ObservationLayout | str) -> np.ndarray | float:
        """The thresholded distance [m] of one observation (float) or a batch (last axis = layout)."""
        layout = get_layout(layout) if isinstance(layout, str) else layout
        self.check_layout(layout)
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape[-1] != layout.size:
            raise ValueError(f"observation has {obs.shape[-1]} values, layout {layout.name!r} needs {layout.size}")
        d = self._distance({name: layout.get(obs, name) for name in self.fields})
        return float(d) if np.ndim(d) == 0 else d

    def __call__(self, obs: np.ndarray, layout: ObservationLayout | str) -> bool | np.ndarray:
        """True where the task is solved (bool for one observation, bool array for a batch)."""
        d = self.distance(obs, layout)
        return bool(d <= self.threshold) if isinstance(d, float) else d <= self.threshold

    def to_dict(self) -> dict:
        """Manifest entry: the predicate is identified by its task name; the rest documents it."""
        return {"task": self.task, "threshold": self.threshold, "fields": list(self.fields),
                "description": self.description}


_P = SuccessPredicate
#: Metaworld v3 success predicates by task name (thresholds from each env's evaluate_state).
PREDICATES: dict[str, SuccessPredicate] = {p.task: p for p in (
    _P("reach-v3", 0.05, ("hand_pos", "goal_pos"),
       "fingertip centre (hand + HAND_TO_TCP_OFFSET_M) within 0.05 m of the goal (3-D)", _reach),
    _P("push-v3", 0.05, ("object1_pos", "goal_pos"), "puck within 0.05 m of the goal (3-D)", _obj_to_goal),
    _P("pick-place-v3", 0.07, ("object1_pos", "goal_pos"), "object within 0.07 m of the goal (3-D)",
       _obj_to_goal),
    _P("door-open-v3", 0.08, ("object1_pos", "goal_pos"), "door handle x within 0.08 m of the goal x",
       _obj_x_to_goal_x),
    _P("drawer-open-v3", 0.03, ("object1_pos", "goal_pos"), "drawer handle within 0.03 m of the goal (3-D)",
       _obj_to_goal),
    # the env declares _TARGET_RADIUS = 0.04 but evaluate_state reads the base class's
    # TARGET_RADIUS (0.05): 0.05 + 0.015
    _P("drawer-close-v3", 0.065, ("object1_pos", "goal_pos"),
       "drawer handle within 0.05 + 0.015 m of the goal (3-D)", _obj_to_goal),
    _P("button-press-topdown-v3", 0.024, ("object1_pos", "goal_pos"),
       "button top within 0.024 m of the goal height (z only)", _obj_z_to_goal_z),
    _P("peg-insert-side-v3", 0.07, ("object1_pos", "object1_quat", "goal_pos"),
       "peg head within 0.07 m of the goal, errors weighted (1, 2, 2) in x, y, z", _peg_head_to_goal),
    _P("window-open-v3", 0.05, ("object1_pos", "goal_pos"), "window handle x within 0.05 m of the goal x",
       _obj_x_to_goal_x),
    _P("window-close-v3", 0.05, ("object1_pos", "goal_pos"), "window handle x within 0.05 m of the goal x",
       _obj_x_to_goal_x),
)}
del _P


def get_predicate(task: str) -> SuccessPredicate:
    """The predicate of a task; KeyError listing the known tasks if unknown."""
    try:
        return PREDICATES[task]
    except KeyError:
        raise KeyError(f"no success predicate for task {task!r}; known: {sorted(PREDICATES)}") from None


def is_success(task: str, obs: np.ndarray, layout: ObservationLayout | str) -> bool | np.ndarray:
    """Shortcut: ``get_predicate(task)(obs, layout)``."""
    return get_predicate(task)(obs, layout)
