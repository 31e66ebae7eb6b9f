"""Metaworld v3 tasks on the simulated KUKA iiwa, stepped through the bridge: the arm the skill will drive.

:class:`IiwaTask` has :class:`legion_training.envs.MetaworldTask`'s interface (``reset(variation)``,
``step(action) -> StepResult``, the agent's observation layout, the method's episode length and reward
scale), but the task's Metaworld scene holds the iiwa + gripper of ``urdf/<robot>.urdf`` instead of the
Sawyer (:class:`legion_bridge.sim.cell.Cell`) and one step is one agent step of the deployed simulated graph
(:class:`legion_bridge.sim.bridge_loop.BridgeLoop`): the action goes through sim2real (target lead cap,
workspace box, IK, finger yaw, safety envelope) to joint and gripper commands, the simulated controller and
physics run one policy period, and real2sim builds the observation (in ``metaworld39``, of which the agent's
layout takes its fields by name, as on the Sawyer).

Reward and success are Metaworld's own: the Metaworld env object that drew the instance
(``Cell.metaworld_env``) evaluates ``evaluate_state(obs, action)`` with its ``model``/``data`` pointed at the
cell's, whose gripper carries the Sawyer's names Metaworld reads (``hand``, ``leftpad``/``rightpad``,
``leftEndEffector``/``rightEndEffector``, ``leftpad_geom``/``rightpad_geom``, the claws; see
``legion_bridge.sim.mujoco_model.METAWORLD_GRIPPER_NAMES``). What Metaworld's reset derived from the Sawyer's
hand (``init_tcp``, ``init_left_pad``/``init_right_pad``, ``hand_init_pos``, reach's ``maxReachDist``) is
re-derived from the iiwa's start (:data:`HAND_DERIVED`).

The policy period is the real arm's (``policy_period_real_s``, 50 ms) unless ``control_period_s`` says otherwise:
one agent step is then exactly a step of the arm the skill will drive, and the exported agent's
``control_period_s`` makes the simulated graph run at it too (launch argument ``policy_period``). At Metaworld's
12.5 ms the iiwa's hand cannot follow the Sawyer's mocap speeds near the table (A4 at the envelope's limit),
at 50 ms it can (docs/benchmarks.md, the expert table).

Variations are Metaworld's MT1 train tasks, as for the Sawyer env (``metaworld.MT1(name, seed)``), applied to
the cell by name. ``random_hand_init``: each episode starts the hand at a point drawn uniformly in
``hand_init_box`` (default: the calibrated workspace box) that the arm reaches gripper-down without touching
anything (at most :data:`HAND_INIT_TRIES` draws, else the task's own start), so a skill learns to start from
wherever the previous one ended.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Sequence

import numpy as np

from legion_bridge.sim.bridge_loop import BridgeLoop, load_bridge_config, node_parameters
from legion_bridge.sim.sim_arm import SimArm
from legion_policy.observation_layout import METAWORLD39, ObservationLayout, get_layout
from legion_policy.tasks import default_binding, finger_yaw_deg
from legion_training.config import DEFAULT_REWARD_VERSION, REWARD_VERSIONS
from legion_training.envs import RunningStd, StepResult, known_tasks, layout_indices

#: Robot models of the iiwa embodiment (urdf/<name>.urdf).
IIWA_ROBOTS = ("iiwa7", "iiwa14")
#: Draws of a random hand start before falling back to the task's own start.
HAND_INIT_TRIES = 50
#: Attributes of a Metaworld env's reset that depend on the robot's hand, re-derived on the iiwa after each
#: reset (metaworld 3.1.1: reach-v3 and the push/pick-place walls, sweep, push-back set ``maxReachDist`` =
#: |init_tcp - target| for their v1 reward; every task reads ``init_tcp``/``hand_init_pos``, pick-place the pads).
HAND_DERIVED = ("init_tcp", "init_left_pad", "init_right_pad", "hand_init_pos", "maxReachDist")
#: Tasks whose ``maxReachDist`` is not |init_tcp - target| (hand-insert: a height difference): left as drawn.
MAX_REACH_DIST_OTHERWISE = ("hand-insert-v3",)


def real_arm_period(robot: str = "iiwa7") -> float:
    """The real arm's policy period [s] (config/limits.yaml ``policy_period_real_s``, as ``legion-launch real``
    loads it): the period an iiwa skill is trained at by default."""
    return float(node_parameters("sim2real", "real", {"robot_model": robot})["policy_period_real_s"])


def iiwa_control_period(robot: str = "iiwa7", control_period_s: float | None = None) -> float:
    """The policy period [s] an iiwa steps at: ``control_period_s``, or the real arm's when that is 0 or None
    (the one place of this rule: the trainer's config, IiwaTask and the benches call it)."""
    return float(control_period_s) if control_period_s else real_arm_period(robot)


class IiwaTask:
    """One Metaworld v3 task on the simulated iiwa through the bridge, in the shared observation layout."""

    def __init__(self, name: str, layout: str | ObservationLayout = "compact12", *, robot: str = "iiwa7",
                 seed: int = 0, episode_length: int = 150, normalize_reward: bool = True,
                 reward_norm_eps: float = 1e-8, benchmark=None, reward_version: str = DEFAULT_REWARD_VERSION,
                 random_hand_init: bool = False, hand_init_box: Sequence[Sequence[float]] | None = None,
                 control_period_s: float | None = None) -> None:
        import metaworld

        if robot not in IIWA_ROBOTS:
            raise ValueError(f"{name}: robot {robot!r}: expected one of {IIWA_ROBOTS}")
        if reward_version not in REWARD_VERSIONS:
            raise ValueError(f"{name}: reward_version {reward_version!r}: expected one of {REWARD_VERSIONS}")
        self.name = name
        self.robot = robot
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self._idx = layout_indices(self.layout)
        try:
            self._benchmark = benchmark if benchmark is not None else metaworld.MT1(name, seed=seed)
        except ValueError as exc:
            raise ValueError(f"unknown Metaworld task {name!r} ({exc}); known v3 tasks: {known_tasks()}") from None
        self._variations = list(self._benchmark.train_tasks)
        self.reward_version = reward_version
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.sim = SimArm(name, robot, seed=seed)
        #: the policy period [s]: the real arm's unless given (the simulated graph runs an agent at its own period)
        self.control_period_s = iiwa_control_period(robot, control_period_s)
        self.loop = BridgeLoop(self.sim, METAWORLD39,
                               load_bridge_config(robot, {"policy_period": repr(self.control_period_s)}))
        self.env = self.sim.cell.metaworld_env(name)
        self.env.reward_function_version = reward_version
        self.binding = default_binding(name).with_(skill=name)
        self.random_hand_init = bool(random_hand_init)
        cal = self.loop.config.calibration
        box = np.asarray(hand_init_box if hand_init_box is not None else (cal.workspace_min, cal.workspace_max),
                         dtype=np.float64)
        if box.shape != (2, 3) or not np.all(np.isfinite(box)) or np.any(box[0] >= box[1]):
            raise ValueError(f"{name}: hand_init_box must be [[x, y, z] low, [x, y, z] high], got {box.tolist()}")
        self.hand_init_box = box
        self._rng = np.random.default_rng(seed)
        self.episode_length = int(episode_length)
        if self.episode_length > self.env.max_path_length:
            raise ValueError(f"episode_length {episode_length} > Metaworld's limit {self.env.max_path_length}")
        self.normalize_reward = normalize_reward
        self.reward_std = RunningStd(reward_norm_eps)
        self.t = 0
        self.variation = -1
        self.obs39: np.ndarray | None = None
        self.last_info: dict = {}
        self.hand_init_fallbacks = 0  # random hand starts that fell back to the task's own start

    # ------------------------------------------------------------------ MetaworldTask's interface
    @property
    def benchmark(self):
        return self._benchmark

    @property
    def obs_dim(self) -> int:
        return self.layout.size

    @property
    def n_variations(self) -> int:
        return len(self._variations)

    def _convert(self, obs39: np.ndarray) -> np.ndarray:
        return np.asarray(obs39, dtype=np.float64)[self._idx].astype(np.float32)

    def reset(self, variation: int | None = None) -> np.ndarray:
        """Start an episode on a variation (drawn from the seeded generator when not given)."""
        if variation is None:
            variation = int(self._rng.integers(self.n_variations))
        self.variation = variation % self.n_variations
        task = self._variations[self.variation]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.random_hand_init:
                self._random_hand_start(task)
            else:
                self.sim.reset(variation=task)
        self._rederive_hand_state()
        self.obs39 = self.loop.start_episode(self.binding)
        self.t = 0
        return self._convert(self.obs39)

    def step(self, action: np.ndarray) -> StepResult:
        if self.t >= self.episode_length:
            raise RuntimeError(f"{self.name}: step() after the episode ended; call reset()")
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: non-finite action {a}")
        self.obs39 = self.loop.step(a)
        reward, info = self.evaluate(self.obs39, a)
        self.t += 1
        r = float(reward)
        if self.normalize_reward:
            self.reward_std.update(r)
            rn = self.reward_std.normalize(r)
        else:
            rn = r
        self.last_info = info
        return StepResult(self._convert(self.obs39), rn, r, False, self.t >= self.episode_length,
                          bool(info.get("success", 0.0) >= 1.0))

    def evaluate(self, obs39: np.ndarray, action: np.ndarray) -> tuple[float, dict]:
        """Metaworld's own ``evaluate_state`` of the task, computed on the cell's MjData."""
        with self.on_cell():
            return self.env.evaluate_state(np.asarray(obs39, dtype=np.float64), action)

    @contextmanager
    def on_cell(self):
        """The Metaworld env's ``model``/``data`` are the cell's inside this block (its own Sawyer's after it:
        the next instance is drawn there)."""
        env = self.env
        own = env.model, env.data
        env.model, env.data = self.sim.cell.model, self.sim.cell.data
        try:
            yield env
        finally:
            env.model, env.data = own

    def rng_state(self) -> dict:
        return self._rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ embodiment
    def _rederive_hand_state(self) -> None:
        """What Metaworld's reset derived from the Sawyer's hand, from the iiwa's start (:data:`HAND_DERIVED`)."""
        env = self.env
        with self.on_cell():
            env.init_tcp = np.array(env.tcp_center, dtype=np.float64).copy()
            env.init_left_pad = np.array(env.get_body_com("leftpad"), dtype=np.float64).copy()
            env.init_right_pad = np.array(env.get_body_com("rightpad"), dtype=np.float64).copy()
            env.hand_init_pos = np.array(self.sim.cell.instance["hand_start"], dtype=np.float64)
            if hasattr(env, "maxReachDist") and self.name not in MAX_REACH_DIST_OTHERWISE:
                env.maxReachDist = float(np.linalg.norm(env.init_tcp - np.asarray(env._target_pos)))

    def _random_hand_start(self, task) -> None:
        """Restart the instance with the hand at a random reachable, contact-free point of the box."""
        cell = self.sim.cell
        lo, hi = self.hand_init_box
        yaw = finger_yaw_deg(self.name)
        for _ in range(HAND_INIT_TRIES):
            hand = self._rng.uniform(lo, hi)
            try:
                cell.arm_start(hand, yaw)  # reachable gripper-down? (IK only: cheaper than a reset)
            except ValueError:
                continue
            self.sim.reset(variation=task, hand_start=hand)
            if not cell.arm_contacts():
                return
        self.hand_init_fallbacks += 1
        self.sim.reset(variation=task)


def make_iiwa_task(name: str, env_cfg, seed: int, *, benchmark=None, normalize_reward: bool | None = None,
                   evaluation: bool = False) -> IiwaTask:
    """An :class:`IiwaTask` from the ``env`` section of a TrainConfig (embodiment iiwa7 / iiwa14); ``evaluation``:
    no random hand start (evaluations stay comparable, from the task's own start)."""
    if normalize_reward is None:
        normalize_reward = env_cfg.normalize_reward
    return IiwaTask(name, env_cfg.layout, robot=env_cfg.embodiment, seed=seed, episode_length=env_cfg.episode_length,
                    normalize_reward=normalize_reward, reward_norm_eps=env_cfg.reward_norm_eps, benchmark=benchmark,
                    reward_version=env_cfg.reward_versions.get(name, DEFAULT_REWARD_VERSION),
                    random_hand_init=env_cfg.random_hand_init and not evaluation,
                    hand_init_box=env_cfg.hand_init_box or None, control_period_s=env_cfg.control_period_s or None)
