"""The MuJoCo model of the iiwa + gripper, generated from the URDF (one source of truth).

:func:`arm_spec` loads ``urdf/<model>.urdf`` with MuJoCo's own URDF importer
(``mujoco.MjSpec.from_file``), so kinematics, joint limits, masses and inertias come
from the same file :mod:`legion_bridge.robot.urdf_model` parses. Only what a URDF
cannot say is added here, programmatically, from named constants:

* every link frame is kept as a body (``fusestatic`` off), so ``link_0`` .. ``link_7``,
  ``tool0``, ``gripper_base`` and ``tcp`` exist by name;
* a site ``tcp`` on the ``tcp`` body (the tool-centre point);
* gravity compensation of every robot body (the KUKA controller compensates its own
  weight; the payload is not compensated);
* the gear-reflected rotor inertia (``armature``) of each joint;
* position servos on the seven arm joints: force = kp (ctrl - q) - kv qdot, clamped to
  the URDF effort limits; gains are chosen per joint from the joint's largest effective
  inertia over the workspace for a critically damped response at
  :attr:`ServoConfig.natural_frequency` (overdamped where the arm is lighter);
* the gripper: one position actuator per finger driven with Metaworld's command
  semantics (:func:`finger_ctrl`), force clamped to the URDF finger effort, finger
  damping = effort / velocity limit so the fingers never move faster than the URDF
  finger velocity limit; the two fingers do not collide with each other.

The arm is attached into a scene with :func:`attach_arm`; :class:`ArmIndex` finds its
joints, actuators and bodies in any compiled model by name. :func:`add_metaworld_names` gives the
attached gripper the names Metaworld's own observation, reward and success code read on the Sawyer
(:data:`METAWORLD_GRIPPER_NAMES`), so that code runs unchanged on the iiwa's MjData.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from legion_bridge.robot.urdf_model import RobotModel, load_robot_model
from legion_policy.observation_layout import HAND_FROM_TCP_M

#: Metaworld's physics time step [s]; the arm-only model uses the same.
TIMESTEP_S = 0.0025
#: Gear-reflected rotor inertia of the arm joints A1..A7 [kg m^2] (plausible for the iiwa's
#: harmonic drives: bigger motors/ratios at the shoulder). Not in a URDF, so it lives here.
ARM_ARMATURE = (0.4, 0.4, 0.2, 0.2, 0.05, 0.02, 0.02)
#: Rotor inertia of each gripper finger slide [kg].
FINGER_ARMATURE = 0.05
#: Position-servo gain of each finger [N/m] (Metaworld's gripper actuators use kp = 400).
FINGER_KP = 400.0
#: Joint-limit softness of the finger slides (MuJoCo solref: time constant [s], damping ratio):
#: stiff enough that a full-force open/close command stays within ~1 mm of the URDF stroke.
FINGER_LIMIT_SOLREF = (0.005, 1.0)
#: Configurations sampled (fixed seed) to find each joint's largest effective inertia.
INERTIA_SAMPLES = 256
#: Seed of that sampling (deterministic gains).
INERTIA_SAMPLE_SEED = 0
#: Prefix of the arm's names when attached into a scene.
ARM_PREFIX = "iiwa/"
#: Metaworld (sawyer_xyz_env.py and the task envs) reads these names on its Sawyer; our gripper provides
#: them (unprefixed, added by :func:`add_metaworld_names`): the ``hand`` body (obs[0:3], 4.5 cm behind the
#: fingertip centre along the tool axis, HAND_FROM_TCP_M with the gripper down), the claw bodies
#: ``rightclaw``/``leftclaw`` (obs[3]: their distance / 0.1 = our finger gap / 0.1: at the finger slides'
#: origins), the pad bodies ``rightpad``/``leftpad`` (the pads' centres) and sites ``rightEndEffector``/
#: ``leftEndEffector`` (the pads' ends, as on the Sawyer: their mean, Metaworld's ``tcp_center``, is our tcp)
#: and the pad collision geoms
#: ``rightpad_geom``/``leftpad_geom`` (``touching_object``). name -> (kind, URDF link or geom it sits on).
METAWORLD_GRIPPER_NAMES: dict[str, tuple[str, str]] = {
    "hand": ("body", "tcp"), "leftclaw": ("body", "left"), "rightclaw": ("body", "right"),
    "leftpad": ("body", "left_pad"), "rightpad": ("body", "right_pad"),
    "leftEndEffector": ("site", "left_pad"), "rightEndEffector": ("site", "right_pad"),
    "leftpad_geom": ("geom", "left_pad"), "rightpad_geom": ("geom", "right_pad"),
}


@dataclass(frozen=True)
class ServoConfig:
    """Arm joint servo: critically damped at each joint's largest effective inertia."""

    #: natural frequency of the joint servo [rad/s]
    natural_frequency: float = 40.0
    #: damping ratio at the largest inertia (>= 1: no overshoot)
    damping_ratio: float = 1.0


def _urdf_file(robot: RobotModel | str | Path) -> tuple[RobotModel, Path]:
    model = robot if isinstance(robot, RobotModel) else load_robot_model(robot)
    if model.urdf_file is None:
        raise ValueError(f"robot model {model.name!r} has no URDF file to generate the MuJoCo model from")
    return model, Path(model.urdf_file)


def finger_ctrl(command: float, finger_upper: float) -> float:
    """Finger actuator target for a gripper command in [-1, 1] (Metaworld semantics).

    Metaworld drives each finger slide with a position actuator (kp 400) whose target is
    the action itself, so +1 squeezes with ~kp N, a <= 0 opens, and the magnitude sets the
    force. Our finger coordinate is the opening (0 = closed, ``finger_upper`` = open), so the
    same law is ``target = finger_upper - command``.
    """
    c = float(np.clip(command, -1.0, 1.0))
    return finger_upper - c


def arm_spec(robot: RobotModel | str | Path = "iiwa7", servo: ServoConfig | None = None) -> mujoco.MjSpec:
    """MjSpec of the arm + gripper from the URDF, with servos, sites and simulation settings.

    The root body is ``link_0`` (the robot base), fixed to its parent.
    """
    servo = servo or ServoConfig()
    model, path = _urdf_file(robot)
    spec = mujoco.MjSpec.from_file(str(path))
    spec.compiler.fusestatic = False
    spec.compiler.discardvisual = True  # URDF visuals = collision shapes here; keep one copy
    spec.option.timestep = TIMESTEP_S
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    if spec.body(model.base_link) is None or spec.body(model.tcp_link) is None:
        raise ValueError(f"{path}: the MuJoCo import has no {model.base_link!r} or {model.tcp_link!r} body")
    for body in spec.bodies:
        if body.name != "world":
            body.gravcomp = 1.0
    spec.body(model.tcp_link).add_site(name="tcp", size=[0.005, 0.005, 0.005], rgba=[0, 1, 0, 0.5])
    for name, arm in zip(model.joint_names, ARM_ARMATURE):
        spec.joint(name).armature = arm
    fingers = model.gripper.fingers
    for f in fingers:
        j = spec.joint(f.name)
        j.armature = FINGER_ARMATURE
        j.damping = f.effort / f.velocity  # terminal speed at full force = URDF velocity limit
        j.solref_limit = list(FINGER_LIMIT_SOLREF)
    if len(fingers) == 2:
        spec.add_exclude(bodyname1=fingers[0].child, bodyname2=fingers[1].child)
    kp, kv = _arm_gains(spec, model, servo)
    for i, name in enumerate(model.joint_names):
        _add_position_actuator(spec, name, kp[i], kv[i], (model.lower[i], model.upper[i]),
                               model.effort_limits[i])
    for f in fingers:
        _add_position_actuator(spec, f.name, FINGER_KP, 0.0, (f.upper - 1.0, f.upper + 1.0), f.effort)
    return spec


def _add_position_actuator(spec: mujoco.MjSpec, joint: str, kp: float, kv: float, ctrlrange, effort: float):
    act = spec.add_actuator(name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
    act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
    act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
    act.gainprm[0] = kp
    act.biasprm[0:3] = [0.0, -kp, -kv]
    act.ctrllimited = 1
    act.ctrlrange = [float(ctrlrange[0]), float(ctrlrange[1])]
    act.forcelimited = 1
    act.forcerange = [-float(effort), float(effort)]
    return act


def _arm_gains(spec: mujoco.MjSpec, model: RobotModel, servo: ServoConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint kp, kv: critically damped at the largest diagonal mass-matrix entry seen."""
    m = spec.copy().compile()  # compiling the spec itself would break a later attach
    d = mujoco.MjData(m)
    idx = [m.joint(n).id for n in model.joint_names]
    qadr = m.jnt_qposadr[idx]
    dadr = m.jnt_dofadr[idx]
    rng = np.random.default_rng(INERTIA_SAMPLE_SEED)
    M = np.zeros((m.nv, m.nv))
    inertia = np.zeros(model.n_joints)
    for _ in range(INERTIA_SAMPLES):
        d.qpos[qadr] = rng.uniform(model.lower, model.upper)
        mujoco.mj_forward(m, d)
        mujoco.mj_fullM(m, M, d.qM)
        inertia = np.maximum(inertia, np.diag(M)[dadr])
    w = servo.natural_frequency
    kp = inertia * w * w
    kv = 2.0 * servo.damping_ratio * inertia * w
    return kp, kv


def compile_arm(robot: RobotModel | str | Path = "iiwa7", servo: ServoConfig | None = None) -> mujoco.MjModel:
    """The arm alone (base ``link_0`` at the world origin), compiled."""
    return arm_spec(robot, servo).compile()


def attach_arm(scene: mujoco.MjSpec, robot: RobotModel | str | Path, pos, quat_wxyz,
               servo: ServoConfig | None = None, prefix: str = ARM_PREFIX) -> None:
    """Attach the arm into ``scene`` with its base ``link_0`` at ``pos``/``quat_wxyz`` (world frame).

    Every arm name gets ``prefix`` (bodies, joints, actuators, the ``tcp`` site).
    """
    model = robot if isinstance(robot, RobotModel) else load_robot_model(robot)
    arm = arm_spec(model, servo)
    frame = scene.worldbody.add_frame(pos=[float(v) for v in pos], quat=[float(v) for v in quat_wxyz])
    frame.attach_body(arm.body(model.base_link), prefix, "")


def _pad_geom(spec: mujoco.MjSpec, finger_body: str) -> mujoco.MjsGeom:
    """The fingertip pad of a finger body: its collision geom furthest along the finger (largest z)."""
    body = spec.body(finger_body)
    geoms = [g for g in spec.geoms if g.parent.name == body.name]
    if not geoms:
        raise ValueError(f"finger {finger_body!r} has no collision geometry to serve as Metaworld's pad")
    return max(geoms, key=lambda g: float(g.pos[2]))


def add_metaworld_names(scene: mujoco.MjSpec, robot: RobotModel | str | Path, prefix: str = ARM_PREFIX) -> None:
    """Give the attached gripper the Sawyer's names Metaworld's code reads (:data:`METAWORLD_GRIPPER_NAMES`).

    All are massless frames (no geoms, no inertia) except the two pad geoms, which are the URDF's own
    fingertip pads renamed, so the physics does not change. The first finger of the URDF is ``left``.
    """
    model = robot if isinstance(robot, RobotModel) else load_robot_model(robot)
    fingers = model.gripper.fingers
    if len(fingers) != 2:
        raise ValueError(f"{model.name}: Metaworld's names need a two-finger gripper, got {len(fingers)} fingers")
    tcp = scene.body(prefix + model.tcp_link)
    for side, f in zip(("left", "right"), fingers):
        finger = scene.body(prefix + f.child)
        pad = _pad_geom(scene, prefix + f.child)
        finger.add_body(name=f"{side}claw")
        # the Sawyer's EndEffector sites sit at its pads' ends (fingertips): ours at the pad's end along the finger
        finger.add_body(name=f"{side}pad", pos=list(pad.pos)).add_site(
            name=f"{side}EndEffector", pos=[0.0, 0.0, float(pad.size[2])], size=[0.002, 0.002, 0.002],
            rgba=[1, 0, 0, 0.5])
        pad.name = f"{side}pad_geom"
    # the hand body: HAND_FROM_TCP_M (sim frame, gripper down) is -z of the tcp frame (tcp z points down)
    tcp.add_body(name="hand", pos=[0.0, 0.0, -float(np.linalg.norm(HAND_FROM_TCP_M))])


class ArmIndex:
    """Where the arm lives in a compiled model (found by name, with the attach prefix)."""

    def __init__(self, m: mujoco.MjModel, robot: RobotModel, prefix: str = ""):
        self.robot = robot
        self.prefix = prefix

        def jid(name):
            try:
                return m.joint(prefix + name).id
            except KeyError:
                raise ValueError(f"MuJoCo model has no joint {prefix + name!r}") from None

        arm = [jid(n) for n in robot.joint_names]
        fing = [jid(n) for n in robot.gripper.finger_joint_names]
        self.arm_qpos = np.asarray(m.jnt_qposadr[arm])
        self.arm_dof = np.asarray(m.jnt_dofadr[arm])
        self.finger_qpos = np.asarray(m.jnt_qposadr[fing], dtype=int)
        self.finger_dof = np.asarray(m.jnt_dofadr[fing], dtype=int)
        self.arm_act = np.array([m.actuator(prefix + n).id for n in robot.joint_names])
        self.finger_act = np.array([m.actuator(prefix + n).id for n in robot.gripper.finger_joint_names], dtype=int)
        self.tcp_site = m.site(prefix + "tcp").id
        #: body ids of the chain frames (Kinematics.link_names order: link_0 .. tcp)
        self.chain_bodies = np.array([m.body(prefix + n).id for n in robot.chain_links])
        self.base_body = m.body(prefix + robot.base_link).id
        #: every body of the robot: the subtree of its base (also the unprefixed Metaworld names of
        #: add_metaworld_names, which hang on the gripper)
        self.body_ids = frozenset(i for i in range(1, m.nbody) if self._in_subtree(m, i, self.base_body))

    @staticmethod
    def _in_subtree(m: mujoco.MjModel, body: int, root: int) -> bool:
        while body > 0:
            if body == root:
                return True
            body = int(m.body_parentid[body])
        return root == 0
