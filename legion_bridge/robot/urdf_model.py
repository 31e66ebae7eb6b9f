"""The robot model: a URDF read by pinocchio, checked against the project's conventions (ROS-free).

``load_robot_model("iiwa7" | "iiwa14" | path)`` reads ``urdf/<name>.urdf`` (or any URDF following the
same naming) with pinocchio's URDF parser into a :class:`RobotModel`: the 7-joint arm chain from the
base link ``link_0`` to the tool-centre frame ``tcp``, the joint limits, the two-finger gripper, and the
pinocchio model itself (``pin_model``, what :class:`~legion_bridge.robot.kinematics.Kinematics` computes
with). Conventions (see docs/robot.md):

* robot base frame = ``link_0``; joint names ``joint_a1`` .. ``joint_a7``;
* the chain is every URDF joint on the path ``link_0`` -> ``tcp``: the revolute ones
  are the arm joints, fixed ones (flange, gripper mount, tcp) are frames between them;
* ``tcp_from_flange`` is the 4x4 pose of ``tcp`` in the flange frame ``tool0``;
* the gripper's finger joints are the prismatic joints outside that path; the finger
  gap is the sum of their positions.

A file pinocchio cannot read, or one that is not such an arm, raises :class:`URDFError` with a
one-line reason (urdfdom's own, for what it refuses).
"""
from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

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
    """One URDF joint: ``T_parent_child(q) = origin @ motion(axis, q)``."""

    name: str
    type: str  # "revolute" | "continuous" | "prismatic" | "fixed" | "floating" | "planar"
    parent: str
    child: str
    origin: np.ndarray  # 4x4 transform parent link -> joint frame at q = 0
    axis: np.ndarray  # unit vector in the joint (child) frame
    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf
    effort: float = math.inf

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
    """A 7-joint arm with a gripper and a tool-centre frame, as read from a URDF by pinocchio."""

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
    #: the whole URDF as pinocchio read it (pinocchio.Model: arm, fingers, every frame)
    pin_model: object = field(default=None, repr=False, compare=False)

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
    """Read a shipped model ("iiwa7", "iiwa14") or a URDF file into a :class:`RobotModel`."""
    name, path = resolve_urdf(name_or_path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise URDFError(f"URDF file not found: {path}") from None
    model = parse_urdf(text, source=str(path))
    return replace(model, urdf_file=Path(path), name=model.name or name)


def _read_with_pinocchio(text: str, source: str):
    """pinocchio.Model of URDF text; URDFError with urdfdom's reason when it refuses the file.

    urdfdom reports why on the C stderr (pinocchio only raises "not a valid URDF model"), so that stream
    is read while it parses; whatever it prints for a file it accepts is passed on.
    """
    import pinocchio as pin

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as err:
        os.dup2(err.fileno(), 2)
        try:
            model, exc = pin.buildModelFromXML(text), None
        except (ValueError, RuntimeError) as e:
            model, exc = None, e
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        printed = err.read().decode(errors="replace")
    if model is None:
        raise URDFError(f"{source}: {_urdfdom_reason(printed) or exc}")
    if printed:
        sys.stderr.write(printed)
    return model


def _urdfdom_reason(printed: str) -> str:
    """The first urdfdom error of its stderr, in this module's wording where one exists."""
    lines = [ln.strip()[len("Error:"):].strip() for ln in printed.splitlines() if ln.strip().startswith("Error:")]
    if not lines:
        return ""
    first = lines[0]
    rules = (
        (r"Joint \[(.+?)\] is of type (\w+) but it does not specify limits",
         lambda m: f"joint {m[1]}: {m[2].lower()} joint without <limit>"),
        (r"joint \[(.+?)\]: (\w+) value \((.*?)\) is not a valid float",
         lambda m: f"joint {m[1]}: limit {m[2]}={m[3]!r} is "
                   + ("not finite" if m[3].strip().lower().lstrip("+-") in ("nan", "inf", "infinity") else "not a number")),
        (r"(child|parent) link \[(.+?)\] of joint \[(.+?)\] not found",
         lambda m: f"joint {m[3]}: link {m[2]!r} is not defined"),
        (r"XML_ERROR", lambda m: f"not well-formed XML ({first})"),
    )
    for pattern, say in rules:
        m = re.search(pattern, first)
        if m:
            return say(m)
    return first


def _joint_type(jm) -> str:
    kind = jm.shortname()[len("JointModel"):]
    if kind.startswith(("RUB", "RevoluteUnbounded")):
        return "continuous"
    if kind.startswith(("R", "Revolute")):
        return "revolute"
    if kind.startswith(("Prismatic", "P")) and not kind.startswith("Planar"):
        return "prismatic"
    return {"FreeFlyer": "floating", "Planar": "planar"}.get(kind, kind.lower())


def _joints_of(pin, pm) -> tuple[dict, tuple]:
    """Every URDF joint of a pinocchio model as a :class:`JointSpec`, and every link name."""
    frames = pm.frames
    links = tuple(f.name for f in frames if f.type == pin.FrameType.BODY)
    child_of = {f.parentFrame: f.name for f in frames if f.type == pin.FrameType.BODY}  # joint frame -> its link
    data = pm.createData()
    pin.computeJointJacobians(pm, data, pin.neutral(pm))
    joints: dict[str, JointSpec] = {}
    for fid, f in enumerate(frames):
        if fid == 0 or f.type not in (pin.FrameType.JOINT, pin.FrameType.FIXED_JOINT):
            continue
        parent = frames[f.parentFrame]  # the parent link, placed in the same pinocchio joint as this one
        if f.type == pin.FrameType.FIXED_JOINT:
            origin = parent.placement.inverse() * f.placement
            spec = dict(type="fixed", axis=np.array([1.0, 0.0, 0.0]))
        else:
            j = f.parentJoint
            jm = pm.joints[j]
            origin = parent.placement.inverse() * pm.jointPlacements[j]
            jtype = _joint_type(jm)
            S = pin.getJointJacobian(pm, data, j, pin.LOCAL)[:, jm.idx_v]  # motion of the joint in its own frame
            axis = S[:3] if jtype == "prismatic" else S[3:]
            iq, iv = jm.idx_q, jm.idx_v
            spec = dict(type=jtype, axis=np.array(axis, dtype=np.float64),
                        velocity=float(pm.velocityLimit[iv]), effort=float(pm.effortLimit[iv]))
            if jtype in ("revolute", "prismatic"):
                spec.update(lower=float(pm.lowerPositionLimit[iq]), upper=float(pm.upperPositionLimit[iq]))
        joints[f.name] = JointSpec(name=f.name, parent=parent.name, child=child_of.get(fid, ""),
                                   origin=np.array(origin.homogeneous), **spec)
    return joints, links


def parse_urdf(text: str, source: str = "<string>") -> RobotModel:
    """Read URDF text with pinocchio; raises :class:`URDFError` when it is not a usable 7-joint arm with a tcp."""
    import pinocchio as pin  # here, not at the top: the nodes import this module's names without a model

    pm = _read_with_pinocchio(text, source)
    joints, links = _joints_of(pin, pm)
    by_child = {j.child: j for j in joints.values()}
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
        name=pm.name or "",
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
        pin_model=pm,
    )
