"""Success predicates of the Metaworld v3 tasks, evaluated from an observation.

One :class:`SuccessPredicate` per task (``"push-v3"``, ...), reproducing the
``info['success']`` of Metaworld v3's ``evaluate_state`` (metaworld 3.1.1): the
same positions compared in the same axes against the same threshold, read from
the named fields of an observation layout (:mod:`legion_policy.observation_layout`)
instead of from the simulator. Used by the sequencer, the training evaluation
and the simulated cell. A skill of ``config/skills.yaml`` names its predicate as data: a
distance kind of :data:`PREDICATE_KINDS` (the functions the table below is built from) with
its parameters and threshold (:func:`predicate_from_spec`).

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

Every predicate needs the goal, i.e. an observation with the goal visible. 45 of the 50
Metaworld v3 tasks have a predicate; :data:`UNOBSERVABLE_TASKS` names the others and why
(their success depends on joint angles or contacts that the observation does not hold).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from legion_policy.observation_layout import HAND_FROM_TCP_M, ObservationLayout, get_layout
from legion_policy.tasks import MOVE_TO, MOVE_TO_FIELDS

#: Fingertip centre minus ``hand`` body position in Metaworld (gripper pointing down), metres:
#: the layout's HAND_FROM_TCP_M reversed (measured over reach-v3 rollouts here: mean
#: (-0.0004, 0.0016, -0.0449), scatter up to ~4 mm in x/y).
HAND_TO_TCP_OFFSET_M = -np.asarray(HAND_FROM_TCP_M, dtype=np.float64)
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


def _axes(obj: str = "object1_pos", axes: tuple[int, ...] = (0, 1, 2), obj_offset=None, scale=None,
          goal_z: float | None = None) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    """Distance between ``obj`` (+ offset) and the goal over ``axes``, optionally per-axis scaled,
    with the goal height optionally replaced by ``goal_z`` (as some envs do)."""
    def distance(f: Mapping[str, np.ndarray]) -> np.ndarray:
        o = f[obj] if obj_offset is None else f[obj] + np.asarray(obj_offset)
        g = f["goal_pos"]
        if goal_z is not None:
            g = np.concatenate([g[..., :2], np.full(g.shape[:-1] + (1,), goal_z)], axis=-1)
        diff = o - g
        if scale is not None:
            diff = diff * np.asarray(scale)
        diff = diff[..., list(axes)]
        return np.abs(diff[..., 0]) if len(axes) == 1 else _norm(diff)
    return distance


def _goal_z_above_obj_z(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return f["goal_pos"][..., 2] - f["object1_pos"][..., 2]


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
    strict: bool = False   # Metaworld compares with "<" (True) or "<=" (False)

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
        ok = d < self.threshold if self.strict else d <= self.threshold
        return bool(ok) if isinstance(d, float) else ok

    def to_dict(self) -> dict:
        """Manifest entry: the predicate is identified by its task name; the rest documents it."""
        return {"task": self.task, "threshold": self.threshold, "strict": self.strict,
                "fields": list(self.fields), "description": self.description}


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
    # --- the rest of Metaworld v3 (MT50) where the compared positions are in the observation ---
    _P("reach-wall-v3", 0.05, ("hand_pos", "goal_pos"),
       "fingertip centre (hand + HAND_TO_TCP_OFFSET_M) within 0.05 m of the goal (3-D)", _reach),
    *[_P(t, thr, ("object1_pos", "goal_pos"), f"object within {thr} m of the goal (3-D)", _obj_to_goal)
      for t, thr in (("bin-picking-v3", 0.05), ("coffee-pull-v3", 0.07), ("coffee-push-v3", 0.07),
                     ("dial-turn-v3", 0.07), ("door-close-v3", 0.08), ("faucet-close-v3", 0.07),
                     ("hand-insert-v3", 0.05), ("handle-pull-side-v3", 0.08), ("peg-unplug-side-v3", 0.07),
                     ("pick-out-of-hole-v3", 0.07), ("pick-place-wall-v3", 0.07),
                     ("plate-slide-back-side-v3", 0.07), ("plate-slide-back-v3", 0.07),
                     ("plate-slide-side-v3", 0.07), ("plate-slide-v3", 0.07), ("push-back-v3", 0.07),
                     ("push-wall-v3", 0.07), ("shelf-place-v3", 0.07), ("soccer-v3", 0.07), ("sweep-v3", 0.05))],
    *[_P(t, thr, ("object1_pos", "goal_pos"), f"object y within {thr} m of the goal y", _axes(axes=(1,)))
      for t, thr in (("button-press-v3", 0.02), ("button-press-wall-v3", 0.03), ("coffee-button-v3", 0.02))],
    *[_P(t, thr, ("object1_pos", "goal_pos"), f"object z within {thr} m of the goal z", _obj_z_to_goal_z)
      for t, thr in (("button-press-topdown-wall-v3", 0.024), ("door-lock-v3", 0.02),
                     ("handle-press-side-v3", 0.02), ("handle-press-v3", 0.02), ("handle-pull-v3", 0.05))],
    _P("door-unlock-v3", 0.02, ("object1_pos", "goal_pos"), "lock x within 0.02 m of the goal x", _obj_x_to_goal_x),
    _P("sweep-into-v3", 0.05, ("object1_pos", "goal_pos"), "object within 0.05 m of the goal in x-y",
       _axes(axes=(0, 1))),
    _P("box-close-v3", 0.08, ("object1_pos", "goal_pos"), "lid closer than 0.08 m to the goal (3-D)",
       _obj_to_goal, strict=True),
    _P("disassemble-v3", 0.0, ("object1_pos", "goal_pos"), "wrench z above the goal z", _goal_z_above_obj_z,
       strict=True),
    _P("basketball-v3", 0.08, ("object1_pos", "goal_pos"),
       "ball within 0.08 m of the goal xy at z 0.3, z error doubled", _axes(scale=(1.0, 1.0, 2.0), goal_z=0.3)),
    _P("faucet-open-v3", 0.07, ("object1_pos", "goal_pos"),
       "faucet handle + (-0.04, 0, 0.03) within 0.07 m of the goal", _axes(obj_offset=(-0.04, 0.0, 0.03))),
)}

#: Metaworld v3 tasks whose success depends on simulator state that the observation does not hold.
UNOBSERVABLE_TASKS: dict[str, str] = {
    "assembly-v3": "wrench centre site (not the observed grip point) aligned and hooked on the peg",
    "hammer-v3": "nail joint position",
    "lever-pull-v3": "lever joint angle",
    "stick-pull-v3": "whether the stick end is inserted into the handle (contact geometry)",
    "stick-push-v3": "container within 0.12 m of the goal AND the stick grasped (finger contact)",
}
del _P


def _hand_to_goal(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return _norm(f["hand_pos"] - f["goal_pos"])


#: Predicates of the policy's built-in (scripted) skills: not Metaworld tasks.
BUILTIN_PREDICATES: dict[str, SuccessPredicate] = {p.task: p for p in (
    SuccessPredicate(MOVE_TO, 0.02, MOVE_TO_FIELDS, "hand within 0.02 m of the goal (3-D)", _hand_to_goal),
)}


#: Distance kinds a skill spec may name (``success: {kind: ..., threshold: ...}`` in config/skills.yaml): kind ->
#: (the layout fields it reads, the distance function's factory taking the kind's parameters). They are the
#: functions :data:`PREDICATES` is built from, so a spec naming the kind and threshold of a task's row gives
#: the same numbers bit for bit (test_skills.py).
PREDICATE_KINDS: dict[str, tuple[tuple[str, ...], Callable[..., Callable]]] = {
    "reach": (("hand_pos", "goal_pos"), lambda: _reach),
    "hand_to_goal": (MOVE_TO_FIELDS, lambda: _hand_to_goal),
    "object_to_goal": (("object1_pos", "goal_pos"), lambda: _obj_to_goal),
    "object_x_to_goal_x": (("object1_pos", "goal_pos"), lambda: _obj_x_to_goal_x),
    "object_z_to_goal_z": (("object1_pos", "goal_pos"), lambda: _obj_z_to_goal_z),
    "goal_z_above_object_z": (("object1_pos", "goal_pos"), lambda: _goal_z_above_obj_z),
    "peg_head_to_goal": (("object1_pos", "object1_quat", "goal_pos"), lambda: _peg_head_to_goal),
    # object 1 (+ obj_offset) to the goal over ``axes``, optionally per-axis ``scale``d, goal height ``goal_z``
    "axes": (("object1_pos", "goal_pos"),
             lambda axes=(0, 1, 2), obj_offset=None, scale=None, goal_z=None: _axes(
                 axes=tuple(int(a) for a in axes), obj_offset=None if obj_offset is None else tuple(obj_offset),
                 scale=None if scale is None else tuple(scale), goal_z=None if goal_z is None else float(goal_z))),
}


def predicate_from_spec(task: str, kind: str, threshold: float, strict: bool = False, description: str = "",
                        **params) -> SuccessPredicate:
    """A predicate from a skill spec's data: distance ``kind`` of :data:`PREDICATE_KINDS` with its parameters,
    ``threshold`` [m], ``strict`` (Metaworld's ``<``). ValueError naming the problem."""
    if kind not in PREDICATE_KINDS:
        raise ValueError(f"unknown success kind {kind!r} (kinds: {', '.join(PREDICATE_KINDS)})")
    fields, factory = PREDICATE_KINDS[kind]
    try:
        distance = factory(**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"success kind {kind!r}: bad parameters {sorted(params)} ({exc})") from None
    return SuccessPredicate(task, float(threshold), tuple(fields), description or f"{kind} <= {threshold:g} m",
                            distance, bool(strict))


def get_predicate(task: str) -> SuccessPredicate:
    """The predicate of a task (or built-in skill); KeyError listing the known tasks if unknown."""
    try:
        return PREDICATES[task] if task in PREDICATES else BUILTIN_PREDICATES[task]
    except KeyError:
        raise KeyError(f"no success predicate for task {task!r}; "
                       f"known: {sorted(PREDICATES)} and built-in {sorted(BUILTIN_PREDICATES)}") from None


def is_success(task: str, obs: np.ndarray, layout: ObservationLayout | str) -> bool | np.ndarray:
    """Shortcut: ``get_predicate(task)(obs, layout)``."""
    return get_predicate(task)(obs, layout)
