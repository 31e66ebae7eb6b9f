"""The observation layouts and the action spec: defined here ONCE.

Training wrappers, real2sim and the frozen agent's manifest all read these
objects; no other module may repeat the sizes or the order of the fields.

Two layouts are provided:

* ``metaworld39``: bit-for-bit the 39-d observation of the Metaworld v3
  environments: the current frame (hand, gripper opening, two objects with
  position and quaternion), the previous frame (frame stacking), the goal.
* ``compact12``: the paper's KUKA layout: hand, object positions zero-padded to
  two objects, goal.

All positions are in the sim frame (Metaworld world: x right, y away from the
robot, z up, table at z = 0), in metres. Quaternions are stored in the order the
task's Metaworld environment uses (``xyzw`` or ``wxyz``; ``zero`` for tasks that
emit zeros), see :data:`QUAT_ORDERS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

# --- action -------------------------------------------------------------------


@dataclass(frozen=True)
class ActionSpec:
    """The 4-d action of the agent (Metaworld v3 semantics).

    ``names``: dx, dy, dz (hand target displacement) and gripper.
    ``low``/``high``: bounds of every component (the policy output is squashed to them).
    ``position_scale``: metres of hand displacement per unit action per control step
    (Metaworld's mocap moves ``action * 1/100`` m per step).
    ``gripper``: a <= 0 opens, a = +1 closes; the magnitude sets force and speed.
    """

    names: tuple[str, ...] = ("dx", "dy", "dz", "gripper")
    low: float = -1.0
    high: float = 1.0
    position_scale: float = 0.01

    @property
    def size(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "low": self.low, "high": self.high,
                "position_scale": self.position_scale}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ActionSpec":
        return cls(names=tuple(d["names"]), low=float(d["low"]), high=float(d["high"]),
                   position_scale=float(d["position_scale"]))


ACTION_SPEC = ActionSpec()

#: Metaworld control period: timestep 2.5 ms x frame_skip 5.
METAWORLD_CONTROL_PERIOD_S = 0.0125

#: Finger gap (m) that maps to a gripper opening of 1.0 (Metaworld: gap / 0.1, clipped to [0, 1]).
GRIPPER_GAP_AT_FULL_OPENING_M = 0.1

#: Quaternion orders used by Metaworld v3 tasks for object 1 (see metaworld-v3.md).
QUAT_ORDERS = ("xyzw", "wxyz", "zero")

#: Where the observation's "hand" point sits relative to the fingertip centre (tool-centre point),
#: sim frame, gripper pointing down [m]. Metaworld's observation[0:3] is the Sawyer's ``hand`` body,
#: not the fingertip centre (``tcp_center``): measured over random rollouts of every MT10 task the
#: fingertip centre is 0.0450 m below the hand body (x/y scatter < 1 mm, up to 6 mm while pushing).
#: A robot whose tool-centre point is the fingertip centre reports ``hand = tcp + HAND_FROM_TCP_M`` so
#: that the policy sees its fingers where it learned to expect them; sim2real inverts it.
HAND_FROM_TCP_M = (0.0, 0.0, 0.045)

#: Metaworld clips the hand position of every observation it emits from ``step`` to this box
#: (``SawyerXYZEnv._HAND_SPACE``, sim frame, m); the gripper opening to [-1, 1].
METAWORLD_HAND_OBS_LOW = (-0.525, 0.348, -0.0525)
METAWORLD_HAND_OBS_HIGH = (0.525, 1.025, 0.7)


def gripper_opening_from_gap(gap_m: float | np.ndarray) -> np.ndarray:
    """Metaworld's gripper-opening normalisation: finger gap / 0.1 clipped to [0, 1]."""
    return np.clip(np.asarray(gap_m, dtype=np.float64) / GRIPPER_GAP_AT_FULL_OPENING_M, 0.0, 1.0)


def quat_in_order(quat_wxyz: Sequence[float], order: str) -> np.ndarray:
    """Express a (w, x, y, z) quaternion in the given storage order."""
    q = np.asarray(quat_wxyz, dtype=np.float64).reshape(4)
    if order == "wxyz":
        return q.copy()
    if order == "xyzw":
        return np.array([q[1], q[2], q[3], q[0]])
    if order == "zero":
        return np.zeros(4)
    raise ValueError(f"unknown quaternion order {order!r}; expected one of {QUAT_ORDERS}")


def quat_xyzw_in_order(quat_xyzw: Sequence[float], order: str) -> np.ndarray:
    """Express an (x, y, z, w) quaternion (ROS order, e.g. a PoseStamped's) in the given storage order.

    A pure reordering: no normalisation and no sign change, so a quaternion that went
    through ROS unchanged comes out bit-for-bit as the simulator wrote it.
    """
    q = np.asarray(quat_xyzw, dtype=np.float64).reshape(4)
    if order == "xyzw":
        return q.copy()
    if order == "wxyz":
        return np.array([q[3], q[0], q[1], q[2]])
    if order == "zero":
        return np.zeros(4)
    raise ValueError(f"unknown quaternion order {order!r}; expected one of {QUAT_ORDERS}")


# --- observation ---------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One named block of the observation vector."""

    name: str
    size: int
    description: str = field(default="", compare=False)  # documentation only: not part of the identity

    def labels(self) -> list[str]:
        if self.size == 1:
            return [self.name]
        suffixes = {3: ("x", "y", "z"), 4: ("q0", "q1", "q2", "q3")}.get(self.size)
        if suffixes is None:
            suffixes = tuple(str(i) for i in range(self.size))
        return [f"{self.name}.{s}" for s in suffixes]


@dataclass(frozen=True)
class ObservationLayout:
    """An ordered list of named fields: the meaning of every observation element."""

    name: str
    fields: tuple[Field, ...]
    description: str = ""
    #: per-field (low, high) bounds the emitting environment clips to (see :meth:`clip`)
    bounds: Mapping[str, tuple] = field(default_factory=dict, compare=False, repr=False)
    _slices: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        slices, start = {}, 0
        for f in self.fields:
            if f.name in slices:
                raise ValueError(f"layout {self.name!r}: duplicate field {f.name!r}")
            slices[f.name] = slice(start, start + f.size)
            start += f.size
        object.__setattr__(self, "_slices", slices)
        unknown = sorted(set(self.bounds) - set(slices))
        if unknown:
            raise ValueError(f"layout {self.name!r}: bounds for unknown fields {unknown}")

    @property
    def size(self) -> int:
        return sum(f.size for f in self.fields)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def slice(self, name: str) -> slice:
        """Index range of a field; KeyError naming the layout if unknown."""
        try:
            return self._slices[name]
        except KeyError:
            raise KeyError(f"layout {self.name!r} has no field {name!r}; fields: {self.field_names}") from None

    def labels(self) -> list[str]:
        """One label per element, e.g. ``hand_pos.x``; used for the ROS message layout."""
        return [lab for f in self.fields for lab in f.labels()]

    def get(self, obs: np.ndarray, name: str) -> np.ndarray:
        """The field ``name`` of one observation (or of a batch, last axis)."""
        return np.asarray(obs)[..., self.slice(name)]

    def pack(self, values: Mapping[str, Iterable[float]]) -> np.ndarray:
        """Assemble a float64 observation from a value per field (every field required)."""
        out = np.zeros(self.size, dtype=np.float64)
        missing = [f.name for f in self.fields if f.name not in values]
        if missing:
            raise ValueError(f"layout {self.name!r}: missing fields {missing}")
        unknown = sorted(set(values) - set(self._slices))
        if unknown:
            raise ValueError(f"layout {self.name!r}: unknown fields {unknown}")
        for f in self.fields:
            v = np.asarray(values[f.name], dtype=np.float64).reshape(-1)
            if v.size != f.size:
                raise ValueError(f"layout {self.name!r}: field {f.name!r} needs {f.size} values, got {v.size}")
            out[self._slices[f.name]] = v
        return out

    def clip(self, obs: np.ndarray) -> np.ndarray:
        """Clip the bounded fields of an observation (or a batch) as the emitting environment does.

        Metaworld v3 clips every observation ``step`` returns to its observation space (hand
        box, gripper opening in [-1, 1]); fields without bounds pass unchanged.
        """
        out = np.array(obs, dtype=np.float64, copy=True)
        for name, (lo, hi) in self.bounds.items():
            sl = self.slice(name)
            out[..., sl] = np.clip(out[..., sl], lo, hi)
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size,
                "fields": [{"name": f.name, "size": f.size, "description": f.description} for f in self.fields]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ObservationLayout":
        """Rebuild a layout from a manifest entry; it must equal the registered layout of that name."""
        fields = tuple(Field(str(f["name"]), int(f["size"]), str(f.get("description", ""))) for f in d["fields"])
        layout = cls(str(d["name"]), fields)
        if "size" in d and int(d["size"]) != layout.size:
            raise ValueError(f"layout {layout.name!r}: declared size {d['size']} != sum of field sizes {layout.size}")
        known = LAYOUTS.get(layout.name)
        if known is not None:
            if known.fields != layout.fields:
                raise ValueError(f"layout {layout.name!r} does not match this code's definition of it")
            return known  # the registered one, with its bounds
        return layout


def _frame_fields(prefix: str, what: str) -> tuple[Field, ...]:
    return (
        Field(f"{prefix}hand_pos", 3, f"{what}hand position (Metaworld's hand body: fingertip centre "
                                      f"+ HAND_FROM_TCP_M), sim frame [m]"),
        Field(f"{prefix}gripper_opening", 1, f"{what}finger gap / 0.1 m clipped to [0, 1] (1 = open)"),
        Field(f"{prefix}object1_pos", 3, f"{what}object 1 position, sim frame [m]"),
        Field(f"{prefix}object1_quat", 4, f"{what}object 1 orientation in the task's quaternion order"),
        Field(f"{prefix}object2_pos", 3, f"{what}object 2 position, sim frame [m] (zeros if none)"),
        Field(f"{prefix}object2_quat", 4, f"{what}object 2 orientation (zeros if none)"),
    )


#: The frame block that is stacked (current + previous) in the Metaworld layout.
METAWORLD_FRAME_FIELDS = _frame_fields("", "")
_HAND_BOUNDS = (np.array(METAWORLD_HAND_OBS_LOW), np.array(METAWORLD_HAND_OBS_HIGH))
_OPENING_BOUNDS = (-1.0, 1.0)
METAWORLD39 = ObservationLayout(
    "metaworld39",
    METAWORLD_FRAME_FIELDS + _frame_fields("prev_", "previous step: ")
    + (Field("goal_pos", 3, "goal position, sim frame [m] (zeros when the goal is hidden)"),),
    "Metaworld v3 observation: current frame, previous frame, goal",
    bounds={"hand_pos": _HAND_BOUNDS, "gripper_opening": _OPENING_BOUNDS,
            "prev_hand_pos": _HAND_BOUNDS, "prev_gripper_opening": _OPENING_BOUNDS},
)
COMPACT12 = ObservationLayout(
    "compact12",
    (
        Field("hand_pos", 3, "hand position (Metaworld's hand body: fingertip centre + HAND_FROM_TCP_M), sim frame [m]"),
        Field("object1_pos", 3, "object 1 position, sim frame [m]"),
        Field("object2_pos", 3, "object 2 position, sim frame [m] (zeros if none)"),
        Field("goal_pos", 3, "goal position, sim frame [m]"),
    ),
    "The paper's KUKA layout: hand, object positions padded to 6, goal",
    bounds={"hand_pos": _HAND_BOUNDS},
)

LAYOUTS: dict[str, ObservationLayout] = {l.name: l for l in (METAWORLD39, COMPACT12)}


def get_layout(name: str) -> ObservationLayout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown observation layout {name!r}; known: {sorted(LAYOUTS)}") from None


@dataclass
class Frame:
    """What is measured at one instant, in the sim frame."""

    hand_pos: np.ndarray
    gripper_opening: float
    object1_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    object1_quat: np.ndarray = field(default_factory=lambda: np.zeros(4))  # already in the task's order
    object2_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    object2_quat: np.ndarray = field(default_factory=lambda: np.zeros(4))

    def values(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {
            f"{prefix}hand_pos": self.hand_pos, f"{prefix}gripper_opening": [self.gripper_opening],
            f"{prefix}object1_pos": self.object1_pos, f"{prefix}object1_quat": self.object1_quat,
            f"{prefix}object2_pos": self.object2_pos, f"{prefix}object2_quat": self.object2_quat,
        }


class ObservationBuilder:
    """Builds observations of a layout from frames, keeping the previous frame for stacking.

    Metaworld fills the previous frame with the current one at reset; so does
    :meth:`reset` followed by the first :meth:`build`. With ``clip`` (default) the
    layout's bounds are applied as Metaworld applies its observation space, so the
    result equals the environment's observation bit for bit (test_observation_layout.py).
    """

    def __init__(self, layout: ObservationLayout, clip: bool = True) -> None:
        self.layout = layout
        self.clip = clip
        self._previous: Frame | None = None

    def reset(self) -> None:
        self._previous = None

    def build(self, frame: Frame, goal_pos: Sequence[float]) -> np.ndarray:
        previous = self._previous if self._previous is not None else frame
        values = {**frame.values(""), **previous.values("prev_"), "goal_pos": goal_pos}
        self._previous = frame
        obs = self.layout.pack({k: v for k, v in values.items() if k in self.layout._slices})
        return self.layout.clip(obs) if self.clip else obs
