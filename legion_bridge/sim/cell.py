"""The simulated cell: the iiwa + gripper in Metaworld v3 task scenes (ROS-free).

A scene is either one Metaworld v3 task (``"push-v3"``: the task of any skill of ``config/skills.yaml`` that says
how its object is read, :data:`TASK_OBJECTS`) or a multi-object scene of ``config/scenes/`` (:data:`MULTI_OBJECT_SCENES`,
:class:`legion_policy.skills.SceneDef`: ``tabletop``: push, button-press-topdown, reach; ``workbench``:
drawer-close, handle-press, reach, the shipped agent's skills). It is built with MjSpec from the task XML shipped
in the installed ``metaworld`` package (``metaworld/assets/sawyer_xyz/*.xml``):

1. the Sawyer is removed: the mocap weld and the gripper actuators are deleted and the
   ``base`` (Sawyer + pedestal) and ``mocap`` bodies detached; table, walls and the task
   objects stay exactly as Metaworld defines them;
2. the iiwa + gripper generated from the URDF (:mod:`legion_bridge.sim.mujoco_model`) is
   attached with its base ``link_0`` at the calibrated pose ``sim_from_base``
   (config/calibration.yaml); the sim frame is Metaworld's world frame;
3. a massless marker body per goal (``goal``, or each placement's goal name) holds the goal as a
   MuJoCo body pose.

Object placement per task instance comes from a real Metaworld env reset (seeded), copied
by name (body poses, object joint positions, sites), so Metaworld's sampling ranges are not
re-implemented. The arm starts with the gripper pointing down and Metaworld's hand start
position (hand = tcp + HAND_FROM_TCP_M), solved with :class:`legion_bridge.robot.kinematics.Kinematics`.

Tracked objects (the names published by sim_arm on ``/objects/<name>/pose``):
single-task scenes: ``object`` (what Metaworld puts in obs[4:7], computed the same way, the skill's
``object`` entry) and ``goal``; a multi-object scene: its placements' ``object`` and ``goal`` names.
The success of each task is its skill's predicate on a ground-truth observation packed from the
placement's binding as real2sim packs it (:meth:`legion_policy.binding.Binding.frame`).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Mapping

import mujoco
import numpy as np

from legion_bridge.calibration import Calibration, Transform, load_calibration, matrix_to_quat_xyzw
from legion_bridge.paths import config_path
from legion_bridge.robot.kinematics import Kinematics
from legion_bridge.robot.urdf_model import RobotModel, load_robot_model
from legion_bridge.sim.mujoco_model import (ARM_PREFIX, ArmIndex, ServoConfig, add_metaworld_names, attach_arm,
                                            finger_ctrl)
from legion_policy.binding import Binding
from legion_policy.observation_layout import HAND_FROM_TCP_M, METAWORLD39, ObservationBuilder, gripper_opening_from_gap
from legion_policy.skills import (SINGLE_TASK_GOAL, SINGLE_TASK_OBJECT, DataError, ObjectRef, SceneDef, SkillDef,
                                  load_scenes, load_skills)

#: The MT10 tasks (all have a single-task scene).
MT10_TASKS = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
              "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3")
#: Names of the shipped multi-object scenes (config/scenes/).
TABLETOP = "tabletop"
WORKBENCH = "workbench"
#: Gripper command at reset (Metaworld resets with the gripper open).
RESET_GRIPPER_COMMAND = -1.0
#: A single-task scene's own hand start (Metaworld's, made for the Sawyer's shorter claws) is raised in steps of
#: this much [m] until the arm and gripper touch nothing (handle-press without its start lift: the fingers, 4.5 cm
#: below the hand point, would start inside the lever in 7 of 10 instances), at most START_RAISE_MAX_M; one rule
#: for every task, so the training env, bench_transfer and the sim graph start a skill alike.
START_RAISE_STEP_M = 0.01
START_RAISE_MAX_M = 0.10

#: The skill of each single-task scene (a Metaworld task): the first skill of config/skills.yaml for that task
#: that says how its object is read.
TASK_SKILLS: dict[str, SkillDef] = {}
try:  # read at import: the node parameter specs list the scenes (sim_arm_params)
    for _s in load_skills().values():
        if _s.object is not None:
            TASK_SKILLS.setdefault(_s.task, _s)
    #: The multi-object scenes (config/scenes/<name>.yaml).
    MULTI_OBJECT_SCENES: dict[str, SceneDef] = load_scenes()
except DataError as _exc:  # bad data: one line naming the file and key, the status of a refused start
    print(str(_exc), file=sys.stderr)
    raise SystemExit(2) from None
#: Object 1 of each task with a cell scene (metaworld 3.1.1 ``_get_pos_objects`` / ``_get_quat_objects``).
TASK_OBJECTS: dict[str, ObjectRef] = {task: s.object for task, s in TASK_SKILLS.items()}
#: Every scene name the cell accepts: one task's scene (any task of TASK_OBJECTS) or a multi-object one.
SCENES = tuple(TASK_OBJECTS) + tuple(MULTI_OBJECT_SCENES)


def metaworld_env_class(task: str):
    """The goal-observable Metaworld v3 env class of ``task`` (ValueError if unknown)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE as envs
    try:
        return envs[f"{task}-goal-observable"]
    except KeyError:
        raise ValueError(f"unknown Metaworld v3 task {task!r}") from None


class MetaworldPlacer:
    """Task instances (object placement, goal, hand start) drawn by a seeded Metaworld env reset."""

    def __init__(self, task: str, seed: int = 0, reward_function_version: str | None = None):
        self.task = task
        cls = metaworld_env_class(task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.env = cls(seed=int(seed))
        if reward_function_version is not None:  # the goal-observable classes take no constructor argument for it
            self.env.reward_function_version = reward_function_version
        self.env.seeded_rand_vec = True
        #: Metaworld's hand start of the task (a random hand start moves ``env.hand_init_pos`` per episode)
        self.nominal_hand_init = np.array(self.env.hand_init_pos, dtype=np.float64).copy()
        self.xml_path = Path(self.env.model_name)
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self.env.seed(int(seed))

    def sample(self, variation=None) -> dict:
        """Reset the env to a new instance; its state by name. ``variation``: a ``metaworld.Task`` (e.g. one of
        ``metaworld.MT1(task).train_tasks``) to reset to instead of the next seeded draw."""
        env = self.env
        env.hand_init_pos = self.nominal_hand_init.copy()
        if variation is None:
            env._freeze_rand_vec = False
        else:
            env.set_task(variation)  # freezes its rand_vec: this instance
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env.reset()
        m, d = env.model, env.data
        bodies = {m.body(i).name: (m.body_pos[i].copy(), m.body_quat[i].copy()) for i in range(1, m.nbody)}
        joints = {key: d.qpos[a:a + size].copy() for key, (a, size, _) in joint_keys(m).items()}
        sites = {m.site(i).name: m.site_pos[i].copy() for i in range(m.nsite)}
        return {"bodies": bodies, "joints": joints, "sites": sites,
                "goal": np.array(env._target_pos, dtype=np.float64).copy(),
                "hand_init": np.array(env.hand_init_pos, dtype=np.float64).copy()}


_QPOS_SIZE = {mujoco.mjtJoint.mjJNT_FREE: 7, mujoco.mjtJoint.mjJNT_BALL: 4,
              mujoco.mjtJoint.mjJNT_SLIDE: 1, mujoco.mjtJoint.mjJNT_HINGE: 1}


def joint_keys(m: mujoco.MjModel) -> dict[str, tuple[int, int, int]]:
    """Every joint keyed ``<body name>#<k-th joint of that body>`` (Metaworld leaves some unnamed):
    (qpos address, qpos size, type)."""
    out, count = {}, {}
    for j in range(m.njnt):
        body = m.body(int(m.jnt_bodyid[j])).name
        k = count.get(body, 0)
        count[body] = k + 1
        jtype = int(m.jnt_type[j])
        out[f"{body}#{k}"] = (int(m.jnt_qposadr[j]), _QPOS_SIZE[jtype], jtype)
    return out


def _remove_sawyer(spec: mujoco.MjSpec) -> None:
    for e in list(spec.equalities):
        e.delete()
    for a in list(spec.actuators):
        a.delete()
    for name in ("base", "mocap"):
        b = spec.body(name)
        if b is not None:
            spec.detach_body(b)


def _add_marker(spec: mujoco.MjSpec, name: str, rgba) -> None:
    """A massless body with a visual-only sphere: the pose of a goal."""
    body = spec.worldbody.add_body(name=name)
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.01, 0, 0], rgba=list(rgba), contype=0,
                  conaffinity=0, group=2, mass=0.0)


def _rot_quat_wxyz(R: np.ndarray) -> np.ndarray:
    x, y, z, w = matrix_to_quat_xyzw(R)
    return np.array([w, x, y, z])


class Cell:
    """A MuJoCo cell: iiwa + gripper + a Metaworld scene, with placement, tracked poses and success."""

    def __init__(self, scene: str = "push-v3", robot: RobotModel | str = "iiwa7",
                 calibration: Calibration | str | Path | None = None, seed: int = 0,
                 servo: ServoConfig | None = None):
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}: use one of {list(SCENES)}")
        self.scene = scene
        self.robot = robot if isinstance(robot, RobotModel) else load_robot_model(robot)
        if calibration is None:
            calibration = config_path("calibration.yaml")
        self.calibration = calibration if isinstance(calibration, Calibration) else load_calibration(calibration)
        self.sim_from_base: Transform = self.calibration.sim_from_base
        self.kin = Kinematics(self.robot, sim_from_base=self.sim_from_base)
        self._seed = int(seed)
        #: the multi-object scene (None: a single-task scene)
        self.layout: SceneDef | None = MULTI_OBJECT_SCENES.get(scene)
        #: the skill of each placement (single-task scene: of the scene's task), by placement name
        self.skills: dict[str, SkillDef] = ({p.name: self.layout.skills[p.skill] for p in self.layout.placements}
                                            if self.layout else {scene: TASK_SKILLS[scene]})
        # placement k draws its instances from a Metaworld env seeded seed + k
        self._placers = {name: MetaworldPlacer(skill.task, seed + k) for k, (name, skill) in enumerate(self.skills.items())}
        self.spec = self._build_spec(servo)
        self.model = self.spec.compile()
        self.data = mujoco.MjData(self.model)
        self.arm = ArmIndex(self.model, self.robot, ARM_PREFIX)
        self._finger_upper = self.robot.gripper.finger_upper.copy()
        # servo constants and scratch buffers of set_arm_ctrl (the model does not change)
        self._kp = self.model.actuator_gainprm[self.arm.arm_act, 0].copy()
        self._kv_over_kp = -self.model.actuator_biasprm[self.arm.arm_act, 2] / self._kp
        self._damping = self.model.dof_damping[self.arm.arm_dof].copy()
        self._acc = np.zeros(self.model.nv)
        self._tau = np.zeros(self.model.nv)
        self.tracked: dict[str, ObjectRef] = self._tracked_refs()
        #: per placement, the binding its skill's success predicate reads (the sequencer's, legion_policy.skills)
        self.bindings: tuple[Binding, ...] = self._bindings()
        self._builder = ObservationBuilder(METAWORLD39, clip=False)
        self.gripper_command = RESET_GRIPPER_COMMAND
        self.instance: dict = {}
        self.reset()

    # ------------------------------------------------------------------ building
    def _build_spec(self, servo) -> mujoco.MjSpec:
        spec = mujoco.MjSpec.from_file(str(self._placers[self.layout.base if self.layout else self.scene].xml_path))
        _remove_sawyer(spec)
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        if self.layout:
            for p in self.layout.placements:
                if p.attach is not None:
                    tspec = mujoco.MjSpec.from_file(str(self._placers[p.name].xml_path))
                    spec.worldbody.add_frame().attach_body(tspec.body(p.attach), p.prefix, "")
                _add_marker(spec, p.goal, p.goal_rgba)
        else:
            _add_marker(spec, SINGLE_TASK_GOAL, (0, 0.8, 0, 1))
        T = self.sim_from_base
        attach_arm(spec, self.robot, T.t, _rot_quat_wxyz(T.R), servo)
        add_metaworld_names(spec, self.robot)  # Metaworld's reward / success code reads these names
        return spec

    def _tracked_refs(self) -> dict[str, ObjectRef]:
        if self.layout:
            refs = {p.object: self.skills[p.name].object.prefixed(p.prefix)
                    for p in self.layout.placements if p.object is not None}
            refs.update({p.goal: ObjectRef("body", p.goal, "body", p.goal) for p in self.layout.placements})
            return refs
        return {SINGLE_TASK_OBJECT: TASK_OBJECTS[self.scene],
                SINGLE_TASK_GOAL: ObjectRef("body", SINGLE_TASK_GOAL, "body", SINGLE_TASK_GOAL)}

    def _bindings(self) -> tuple[Binding, ...]:
        if self.layout:
            return tuple(self.layout.binding(p.name) for p in self.layout.placements)
        skill = self.skills[self.scene]
        return (skill.default_binding().with_(skill=skill.name),)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Skills whose success the cell evaluates (one per placement; the task of a single-task scene)."""
        return tuple(b.skill for b in self.bindings)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None, variation=None, hand_start=None) -> None:
        """A new task instance: objects and goals from Metaworld, arm at the hand start, gripper open.

        Single-task scenes only: ``variation`` (a ``metaworld.Task`` of this task) resets to that instance
        instead of the next seeded draw; ``hand_start`` (Metaworld's hand point, sim frame) replaces the task's
        hand start (ValueError if not reachable gripper-down).
        """
        if self.layout and (variation is not None or hand_start is not None):
            raise ValueError(f"scene {self.scene!r}: variation and hand_start apply to single-task scenes only")
        if seed is not None:
            self._seed = int(seed)
            for k, (task, placer) in enumerate(self._placers.items()):
                placer.seed(self._seed + k)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        if self.layout:
            goals = {}
            for p in self.layout.placements:
                inst = self._placers[p.name].sample()
                if p.name == self.layout.base or p.attach is not None:  # tasks without objects place none
                    self._apply(inst, p.prefix, p.offset)
                goals[p.goal] = inst["goal"] + np.asarray(p.offset)
            hand = np.array(self.layout.hand_start, dtype=np.float64)
        else:
            inst = self._placers[self.scene].sample(variation)
            self._apply(inst, "", (0.0, 0.0, 0.0))
            goals = {"goal": inst["goal"]}
            hand = (inst["hand_init"] + np.array([0.0, 0.0, self.skills[self.scene].start_lift_m])
                    if hand_start is None else np.asarray(hand_start, dtype=np.float64).reshape(3))
        for name, g in goals.items():
            m.body_pos[m.body(name).id] = g
        # the gripper starts turned as the first skill runs (the base placement's skill's, or the scene's task's)
        yaw = self.skills[self.layout.base if self.layout else self.scene].finger_yaw_deg
        own_start = not self.layout and hand_start is None
        raised = 0.0
        while True:
            q = self.arm_start(hand, yaw)
            d.qpos[self.arm.arm_qpos] = q
            d.ctrl[self.arm.arm_act] = q
            d.qpos[self.arm.finger_qpos] = self._finger_upper
            self.set_gripper(RESET_GRIPPER_COMMAND)
            mujoco.mj_forward(m, d)
            if not own_start or raised >= START_RAISE_MAX_M - 1e-9 or not self.arm_contacts():
                break
            hand = hand + np.array([0.0, 0.0, START_RAISE_STEP_M])  # START_RAISE_STEP_M: contact-free start
            raised += START_RAISE_STEP_M
        self.instance = {"seed": self._seed, "goals": {k: np.asarray(v).tolist() for k, v in goals.items()},
                         "hand_start": hand.tolist()}

    def metaworld_env(self, task: str | None = None):
        """The real Metaworld env object that drew ``task``'s instance (default: the scene's task).

        Its Python state (``_target_pos``, ``obj_init_pos``, ...) describes the cell's instance; its reward and
        success code reads the cell's MjData by name when pointed at it (legion_training.iiwa_env).
        """
        if task is None or task in self._placers:
            return self._placers[task or (self.layout.base if self.layout else self.scene)].env
        for name, skill in self.skills.items():
            if task in (skill.name, skill.task):
                return self._placers[name].env
        raise KeyError(f"scene {self.scene!r} has no placement of {task!r}")

    def arm_contacts(self) -> list[tuple[str, str]]:
        """Contacts of the arm or gripper with anything else, as (arm body, other body) names (current state)."""
        m, d, arm = self.model, self.data, self.arm.body_ids
        out = []
        for c in d.contact[:d.ncon]:
            b1, b2 = int(m.geom_bodyid[c.geom1]), int(m.geom_bodyid[c.geom2])
            if (b1 in arm) != (b2 in arm):
                mine, other = (b1, b2) if b1 in arm else (b2, b1)
                out.append((m.body(mine).name, m.body(other).name))
        return out

    def _apply(self, inst: dict, prefix: str, offset) -> None:
        """Copy a Metaworld instance into the cell by name (bodies that exist here, object joints, sites)."""
        m, d = self.model, self.data
        off = np.asarray(offset, dtype=np.float64)
        arm_names = {m.body(i).name for i in self.arm.body_ids}
        for name, (pos, quat) in inst["bodies"].items():
            try:
                bid = m.body(prefix + name).id
            except KeyError:
                continue
            if prefix + name in arm_names or m.body_parentid[bid] != 0:
                continue  # only top-level scene bodies are placed by Metaworld
            m.body_pos[bid] = pos + off
            m.body_quat[bid] = quat
        keys = joint_keys(m)
        for key, val in inst["joints"].items():
            if prefix + key not in keys:
                continue
            a, size, jtype = keys[prefix + key]
            v = val.copy()
            if jtype == mujoco.mjtJoint.mjJNT_FREE:
                v[:3] += off
            d.qpos[a:a + size] = v
        for name, pos in inst["sites"].items():
            try:
                sid = m.site(prefix + name).id
            except KeyError:
                continue
            if m.site_bodyid[sid] == 0:
                m.site_pos[sid] = pos + off

    def arm_start(self, hand_sim, yaw_deg: float = 0.0) -> np.ndarray:
        """Joint positions putting Metaworld's hand at ``hand_sim`` with the gripper down, its fingers at the
        finger yaw ``yaw_deg`` (a skill's finger_yaw_deg; 0 = along sim x) (ValueError if unreachable)."""
        tcp_sim = np.asarray(hand_sim, dtype=np.float64) - np.asarray(HAND_FROM_TCP_M)
        target = self.sim_from_base.inverse().apply(tcp_sim)
        res = self.kin.ik(target, R_target=self.kin.gripper_down_yawed(np.radians(yaw_deg)))
        if not bool(res.success):
            raise ValueError(f"hand start {np.round(hand_sim, 3).tolist()} is not reachable with the gripper "
                             f"down from the calibrated base pose (error {float(res.position_error):.4f} m)")
        return np.asarray(res.q, dtype=np.float64)

    # ------------------------------------------------------------------ actuation
    def set_gripper(self, command: float) -> None:
        """Gripper command in [-1, 1], Metaworld semantics (<= 0 open, +1 close, magnitude = force)."""
        c = float(command)
        if not np.isfinite(c):
            raise ValueError("gripper command is NaN or inf")
        self.gripper_command = float(np.clip(c, -1.0, 1.0))
        for act, up in zip(self.arm.finger_act, self._finger_upper):
            self.data.ctrl[act] = finger_ctrl(self.gripper_command, up)

    def set_arm_ctrl(self, q_ref: np.ndarray, qd_ref: np.ndarray | None = None,
                     qdd_ref: np.ndarray | None = None) -> None:
        """Servo targets of the arm.

        The position servo's force is kp (ctrl - q) - kv qdot; shifting its target by
        (kv qd_ref + M qdd_ref) / kp adds velocity and inertial feed-forward (M: the joint-space
        mass matrix now, armature included), so the servo force becomes
        kp (q_ref - q) + kv (qd_ref - qdot) + M qdd_ref and the joints follow a smooth setpoint
        without lag, hence without catching up faster than the setpoint moves.
        """
        ctrl = np.array(q_ref, dtype=np.float64)
        dofs = self.arm.arm_dof
        if qd_ref is not None:
            ctrl += self._kv_over_kp * qd_ref
        if qdd_ref is not None:
            self._acc[dofs] = qdd_ref
            mujoco.mj_mulM(self.model, self.data, self._tau, self._acc)
            # inertia, Coriolis/centrifugal forces (bias minus the gravity that gravcomp cancels)
            # and the joints' viscous damping at the reference velocity
            ff = self._tau[dofs] + self.data.qfrc_bias[dofs] - self.data.qfrc_gravcomp[dofs]
            if qd_ref is not None:
                ff += self._damping * qd_ref
            ctrl += ff / self._kp
        self.data.ctrl[self.arm.arm_act] = ctrl

    def step(self, n: int = 1) -> None:
        mujoco.mj_step(self.model, self.data, nstep=int(n))

    def refresh_kinematics(self) -> None:
        """Body, geom and site poses of the current qpos. mj_step computes them at the start of a step, so after
        it they lag the joints by one physics step; the next mj_step recomputes them anyway (no effect on the
        dynamics)."""
        mujoco.mj_kinematics(self.model, self.data)

    # ------------------------------------------------------------------ state
    @property
    def time(self) -> float:
        return float(self.data.time)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self.arm.arm_qpos].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self.arm.arm_dof].copy()

    def joint_efforts(self) -> np.ndarray:
        return self.data.actuator_force[self.arm.arm_act].copy()

    def gripper_gap(self) -> float:
        """Finger gap [m] (sum of the finger openings, within [0, max gap]: the soft joint limits may
        let the fingers overshoot the stroke by a millimetre under full force)."""
        return float(np.clip(np.sum(self.data.qpos[self.arm.finger_qpos]), 0.0, self.robot.gripper.max_gap))

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """tcp position (sim frame) and rotation matrix."""
        s = self.arm.tcp_site
        return self.data.site_xpos[s].copy(), self.data.site_xmat[s].reshape(3, 3).copy()

    def hand_pos(self) -> np.ndarray:
        """Metaworld's hand position: tcp + HAND_FROM_TCP_M (sim frame)."""
        return self.tcp_pose()[0] + np.asarray(HAND_FROM_TCP_M)

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), quaternion (x, y, z, w)) of a tracked object in the sim frame."""
        try:
            ref = self.tracked[name]
        except KeyError:
            raise KeyError(f"scene {self.scene!r} tracks no object {name!r}; tracked: {sorted(self.tracked)}") from None
        p = self._frame_array(ref.pos_kind, "pos", ref.pos_name)
        R = self._frame_array(ref.rot_kind, "mat", ref.rot_name)
        return p + np.asarray(ref.offset), matrix_to_quat_xyzw(R.reshape(3, 3))

    def _frame_array(self, kind: str, what: str, name: str) -> np.ndarray:
        """data.{x,geom_x,site_x}{pos,mat} row of the body / geom / site ``name`` (any other kind: site)."""
        kind = kind if kind in ("body", "geom") else "site"
        prefix = {"body": "x", "geom": "geom_x", "site": "site_x"}[kind]
        return getattr(self.data, prefix + what)[getattr(self.model, kind)(name).id]

    def object_poses(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {name: self.object_pose(name) for name in self.tracked}

    def observation(self, binding: Binding) -> np.ndarray:
        """Ground-truth ``metaworld39`` observation of a binding (previous frame = current frame; the sim frame's
        positions: the binding's task_offset is not applied), packed as real2sim packs it."""
        frame, goal = binding.with_(task_offset=None).frame(
            self.hand_pos(), float(gripper_opening_from_gap(self.gripper_gap())), self.object_pose)
        self._builder.reset()
        return self._builder.build(frame, goal)

    def success(self) -> dict[str, dict]:
        """Per placement's skill: ``{"success": bool, "distance": float, "threshold": float}`` of its success
        predicate (config/skills.yaml, legion_policy.success)."""
        out = {}
        for b, skill in zip(self.bindings, self.skills.values()):
            pred = skill.success
            dist = float(pred.distance(self.observation(b), METAWORLD39))
            ok = dist < pred.threshold if pred.strict else dist <= pred.threshold
            out[b.skill] = {"success": bool(ok), "distance": dist, "threshold": pred.threshold}
        return out


def reachable_points(cell: Cell) -> Mapping[str, np.ndarray]:
    """Hand start, object and goal points of the current instance (sim frame), for reachability checks."""
    pts = {"hand_start": np.asarray(cell.instance["hand_start"]) - np.asarray(HAND_FROM_TCP_M)}
    for name in cell.tracked:
        pts[name] = cell.object_pose(name)[0]
    return pts

