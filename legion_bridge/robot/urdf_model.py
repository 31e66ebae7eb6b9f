"""The robot model read from a URDF with the standard-library XML parser (ROS-free).

``load_robot_model("iiwa7" | "iiwa14" | path)`` parses ``urdf/<name>.urdf`` (or any URDF
following the same naming) into a :class:`RobotModel`: the 7-joint arm chain from the
base link ``link_0`` to the tool-centre frame ``tcp``, the joint limits, and the
two-finger gripper. Conventions (see docs/robot.md):

* robot base frame = ``link_0``; joint names ``joint_a1`` .. ``joint_a7``;
* the chain is every URDF joint on the path ``link_0`` -> ``tcp``: the revolute ones
  are the arm joints, fixed ones (flange, gripper mount, tcp) are folded into offsets;
* ``tcp_from_flange`` is the 4x4 pose of ``tcp`` in the flange frame ``tool0``;
* the gripper's finger joints are the prismatic joints outside that path; the finger
  gap is the sum of their positions.

Errors in the file raise :class:`URDFError` with a one-line reason.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from legion_bridge.calibration import rpy_to_matrix
from legion_bridge.paths import urdf_path

#: Robot models shipped in urdf/ (name -> file name).
KNOWN_MODELS = {"iiwa7": "iiwa7.urdf", "iiwa14": "iiwa14.urdf"}
#: The default arm (the LEGION paper's KUKA LBR iiwa 7 R800).
DEFAULT_MODEL = "iiwa7"
#: Names of the arm joints, base to flange (iiwa_ros2 naming).
ARM_JOINT_NAMES = tuple(f"joint_a{i}" for i in range(1, 8))
#: The robot base link (the frame kinematics is expressed in).
BASE_LINK = "link_0"
#: The flange link (iiwa_ros2's tool0).
FLANGE_LINK = "tool0"
#: The tool-centre frame: centre between the fingertip pads.
TCP_LINK = "tcp"
#: Name of the gripper's single joint in /gripper/joint_states (position = finger gap [m]).
GRIPPER_GAP_JOINT = "gripper_finger_gap"


class URDFError(ValueError):
    """The URDF cannot be used as a LEGION robot model (message = one-line reason)."""


@dataclass(frozen=True)
class JointSpec:
    """One URDF joint: ``T_parent_child(q) = T(origin_xyz, origin_rpy) @ motion(axis, q)``."""

    name: str
    type: str  # "revolute" | "continuous" | "prismatic" | "fixed"
    parent: str
    child: str
    origin_xyz: np.ndarray
    origin_rpy: np.ndarray
    axis: np.ndarray  # unit vector in the joint (child) frame
    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf
    effort: float = math.inf

    @property
    def origin(self) -> np.ndarray:
        """4x4 transform parent -> joint frame at q = 0."""
        return make_transform(self.origin_xyz, self.origin_rpy)

    @property
    def movable(self) -> bool:
        return self.type != "fixed"


@dataclass(frozen=True)
class GripperSpec:
    """The two-finger parallel gripper."""

    finger_joint_names: tuple[str, ...]
    finger_lower: np.ndarray  # per finger [m]
    finger_upper: np.ndarray  # per finger [m]
    finger_velocity: np.ndarray  # per finger [m/s]
    finger_effort: np.ndarray  # per finger [N]
    fingers: tuple[JointSpec, ...] = ()

    @property
    def finger_travel(self) -> np.ndarray:
        """Stroke of each finger [m]."""
        return self.finger_upper - self.finger_lower

    @property
    def max_gap(self) -> float:
        """Largest finger gap (all fingers fully open) [m]."""
        return float(np.sum(self.finger_upper))

    def finger_positions(self, gap: float) -> np.ndarray:
        """Symmetric finger joint positions giving the finger gap ``gap`` [m] (clipped to the stroke)."""
        n = len(self.finger_joint_names)
        return np.clip(np.full(n, float(gap) / n), self.finger_lower, self.finger_upper)

    def gap(self, finger_positions) -> float:
        """Finger gap [m] from the finger joint positions."""
        return float(np.sum(np.asarray(finger_positions, dtype=np.float64)))


@dataclass(frozen=True)
class RobotModel:
    """A 7-joint arm with a gripper and a tool-centre frame, as read from a URDF."""

    name: str
    urdf_file: Path | None
    joint_names: tuple[str, ...]
    lower: np.ndarray  # [rad]
    upper: np.ndarray  # [rad]
    velocity_limits: np.ndarray  # [rad/s]
    effort_limits: np.ndarray  # [Nm]
    chain: tuple[JointSpec, ...]  # every joint on the path base -> tcp, fixed ones included
    gripper: GripperSpec
    tcp_from_flange: np.ndarray  # 4x4, pose of tcp in tool0
    base_link: str = BASE_LINK
    flange_link: str = FLANGE_LINK
    tcp_link: str = TCP_LINK
    joints: dict = field(default_factory=dict, repr=False)  # every URDF joint by name
    links: tuple[str, ...] = ()  # every URDF link name

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def arm_joints(self) -> tuple[JointSpec, ...]:
        """The movable joints of the chain, base to tip (joint_a1 .. joint_a7)."""
        return tuple(j for j in self.chain if j.movable)

    @property
    def chain_links(self) -> tuple[str, ...]:
        """Link frames along the chain, base to tcp (``link_0`` .. ``link_7``, ``tool0``, ..., ``tcp``)."""
        return (self.base_link,) + tuple(j.child for j in self.chain)

    def within_limits(self, q, margin: float = 0.0) -> np.ndarray:
        """Whether joint vectors (..., 7) lie inside [lower + margin, upper - margin]."""
        q = np.asarray(q, dtype=np.float64)
        return np.all((q >= self.lower + margin) & (q <= self.upper - margin), axis=-1)

    def clip(self, q, margin: float = 0.0) -> np.ndarray:
        return np.clip(np.asarray(q, dtype=np.float64), self.lower + margin, self.upper - margin)


def make_transform(xyz, rpy) -> np.ndarray:
    """4x4 homogeneous transform from a translation and URDF roll-pitch-yaw (Rz Ry Rx)."""
    T = np.eye(4)
    T[:3, :3] = rpy_to_matrix(rpy)
    T[:3, 3] = np.asarray(xyz, dtype=np.float64).reshape(3)
    return T


def _floats(text: str | None, n: int, what: str, default: tuple | None = None) -> np.ndarray:
    if text is None:
        if default is None:
            raise URDFError(f"{what}: missing")
        return np.asarray(default, dtype=np.float64)
    try:
        v = np.array([float(s) for s in text.split()], dtype=np.float64)
    except ValueError:
        raise URDFError(f"{what}: not numbers: {text!r}") from None
    if v.size != n or not np.all(np.isfinite(v)):
        raise URDFError(f"{what}: needs {n} finite numbers, got {text!r}")
    return v


def _limit_attr(el, key: str, jname: str, default: float | None) -> float:
    txt = el.get(key) if el is not None else None
    if txt is None:
        if default is None:
            raise URDFError(f"joint {jname}: <limit> has no {key}")
        return default
    try:
        v = float(txt)
    except ValueError:
        raise URDFError(f"joint {jname}: limit {key}={txt!r} is not a number") from None
    if not math.isfinite(v):
        raise URDFError(f"joint {jname}: limit {key}={txt!r} is not finite")
    return v


def _parse_joint(el) -> JointSpec:
    name = el.get("name")
    if not name:
        raise URDFError("a <joint> has no name")
    jtype = el.get("type")
    if jtype not in ("revolute", "continuous", "prismatic", "fixed", "floating", "planar"):
        raise URDFError(f"joint {name}: unknown type {jtype!r}")
    parent, child = el.find("parent"), el.find("child")
    if parent is None or child is None or not parent.get("link") or not child.get("link"):
        raise URDFError(f"joint {name}: needs <parent link=...> and <child link=...>")
    origin = el.find("origin")
    xyz = _floats(origin.get("xyz") if origin is not None else None, 3, f"joint {name} origin xyz", (0, 0, 0))
    rpy = _floats(origin.get("rpy") if origin is not None else None, 3, f"joint {name} origin rpy", (0, 0, 0))
    axis_el = el.find("axis")
    axis = _floats(axis_el.get("xyz") if axis_el is not None else None, 3, f"joint {name} axis", (1, 0, 0))
    lower, upper, velocity, effort = -math.inf, math.inf, math.inf, math.inf
    if jtype in ("revolute", "prismatic", "continuous"):
        n = float(np.linalg.norm(axis))
        if n < 1e-9:
            raise URDFError(f"joint {name}: zero axis")
        axis = axis / n
        lim = el.find("limit")
        if jtype in ("revolute", "prismatic"):
            if lim is None:
                raise URDFError(f"joint {name}: {jtype} joint without <limit>")
            lower = _limit_attr(lim, "lower", name, 0.0)
            upper = _limit_attr(lim, "upper", name, 0.0)
        velocity = _limit_attr(lim, "velocity", name, None) if lim is not None else math.inf
        effort = _limit_attr(lim, "effort", name, None) if lim is not None else math.inf
    return JointSpec(name, jtype, parent.get("link"), child.get("link"), xyz, rpy, axis,
                     lower, upper, velocity, effort)


def resolve_urdf(name_or_path: str | Path) -> tuple[str, Path]:
    """(model name, file) for a shipped model name or a URDF path."""
    key = str(name_or_path)
    if key in KNOWN_MODELS:
        return key, urdf_path(KNOWN_MODELS[key])
    p = Path(key)
    if p.suffix.lower() in (".urdf", ".xml") or p.exists():
        return p.stem, p
    raise URDFError(f"unknown robot model {key!r}: use one of {sorted(KNOWN_MODELS)} or a URDF path")


def load_robot_model(name_or_path: str | Path = DEFAULT_MODEL) -> RobotModel:
    """Parse a shipped model ("iiwa7", "iiwa14") or a URDF file into a :class:`RobotModel`."""
    name, path = resolve_urdf(name_or_path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise URDFError(f"URDF file not found: {path}") from None
    model = parse_urdf(text, source=str(path))
    return RobotModel(**{**model.__dict__, "urdf_file": Path(path), "name": model.name or name})


def parse_urdf(text: str, source: str = "<string>") -> RobotModel:
    """Parse URDF text; raises :class:`URDFError` when it is not a usable 7-joint arm with a tcp."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise URDFError(f"{source}: not well-formed XML ({exc})") from None
    if root.tag != "robot":
        raise URDFError(f"{source}: root element is <{root.tag}>, expected <robot>")
    links = tuple(el.get("name") for el in root.findall("link"))
    if len(set(links)) != len(links):
        raise URDFError(f"{source}: duplicate link names")
    joints: dict[str, JointSpec] = {}
    by_child: dict[str, JointSpec] = {}
    for el in root.findall("joint"):
        j = _parse_joint(el)
        if j.name in joints:
            raise URDFError(f"joint {j.name}: defined twice")
        for lk in (j.parent, j.child):
            if lk not in links:
                raise URDFError(f"joint {j.name}: link {lk!r} is not defined")
        if j.child in by_child:
            raise URDFError(f"link {j.child}: has two parent joints ({by_child[j.child].name}, {j.name})")
        joints[j.name] = j
        by_child[j.child] = j
    for required in (BASE_LINK, TCP_LINK, FLANGE_LINK):
        if required not in links:
            raise URDFError(f"{source}: no link named {required!r} (the {'tool-centre' if required == TCP_LINK else 'base' if required == BASE_LINK else 'flange'} frame)")
    # walk tcp -> base
    chain: list[JointSpec] = []
    link = TCP_LINK
    while link != BASE_LINK:
        j = by_child.get(link)
        if j is None:
            raise URDFError(f"{source}: {TCP_LINK!r} is not connected to {BASE_LINK!r} (link {link!r} has no parent joint)")
        chain.append(j)
        link = j.parent
        if len(chain) > len(joints):
            raise URDFError(f"{source}: kinematic loop")
    chain.reverse()
    movable = [j for j in chain if j.movable]
    names = tuple(j.name for j in movable)
    if names != ARM_JOINT_NAMES:
        raise URDFError(f"{source}: the joints between {BASE_LINK} and {TCP_LINK} are {list(names)}, "
                        f"expected the 7 revolute joints {list(ARM_JOINT_NAMES)}")
    for j in movable:
        if j.type != "revolute":
            raise URDFError(f"joint {j.name}: type {j.type!r}, expected 'revolute' (with position limits)")
        if not (j.lower < j.upper):
            raise URDFError(f"joint {j.name}: lower limit {j.lower} is not below upper limit {j.upper}")
        if j.lower < -2 * math.pi or j.upper > 2 * math.pi:
            raise URDFError(f"joint {j.name}: limits [{j.lower}, {j.upper}] rad exceed one turn each way")
        if not (0 < j.velocity < math.inf):
            raise URDFError(f"joint {j.name}: velocity limit {j.velocity} must be positive and finite")
        if not (0 < j.effort < math.inf):
            raise URDFError(f"joint {j.name}: effort limit {j.effort} must be positive and finite")
    flange_idx = [i for i, j in enumerate(chain) if j.child == FLANGE_LINK]
    if not flange_idx:
        raise URDFError(f"{source}: {FLANGE_LINK!r} is not on the chain {BASE_LINK} -> {TCP_LINK}")
    tail = chain[flange_idx[0] + 1:]
    if any(j.movable for j in tail):
        raise URDFError(f"{source}: a movable joint lies between {FLANGE_LINK} and {TCP_LINK}")
    tcp_from_flange = np.eye(4)
    for j in tail:
        tcp_from_flange = tcp_from_flange @ j.origin
    chain_names = {j.name for j in chain}
    fingers = tuple(j for j in joints.values() if j.type == "prismatic" and j.name not in chain_names)
    for f in fingers:
        if not (f.lower < f.upper) or not (0 < f.velocity < math.inf) or not (0 < f.effort < math.inf):
            raise URDFError(f"joint {f.name}: finger limits must have lower < upper and positive velocity/effort")
    gripper = GripperSpec(
        finger_joint_names=tuple(f.name for f in fingers),
        finger_lower=np.array([f.lower for f in fingers]),
        finger_upper=np.array([f.upper for f in fingers]),
        finger_velocity=np.array([f.velocity for f in fingers]),
        finger_effort=np.array([f.effort for f in fingers]),
        fingers=fingers,
    )
    return RobotModel(
        name=root.get("name") or "",
        urdf_file=None,
        joint_names=names,
        lower=np.array([j.lower for j in movable]),
        upper=np.array([j.upper for j in movable]),
        velocity_limits=np.array([j.velocity for j in movable]),
        effort_limits=np.array([j.effort for j in movable]),
        chain=tuple(chain),
        gripper=gripper,
        tcp_from_flange=tcp_from_flange,
        joints=joints,
        links=links,
    )
