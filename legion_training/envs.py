"""Metaworld v3 tasks by name, wrapped to the shared observation layout.

* Observations are re-expressed in a layout of legion_policy.observation_layout
  by field name (the 39-d Metaworld observation *is* the ``metaworld39`` layout,
  so every other layout's fields are picked from it by name; no size is repeated here).
* Episodes last ``episode_length`` steps (150 in the method); that end is a
  time limit (``truncated``), never ``terminated``.
* Rewards are divided by a running standard deviation of the rewards seen
  (no mean subtraction), per task.
* ``max_target_lead_m`` (optional): before each action moves Metaworld's mocap target, the
  target is pulled back to within this distance of the hand body, as sim2real keeps the
  commanded target within its ``max_target_lead_m`` of the measured hand on the arm.
* Seeding: a task's variations (object/goal placements) are Metaworld's MT1
  train tasks of ``metaworld.MT1(name, seed=seed)``; which variation each
  episode uses comes from a numpy Generator seeded with ``seed``. Metaworld's
  own ``reset(seed=...)`` is ignored by the library, so nothing else is random.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from legion_policy.observation_layout import METAWORLD39, METAWORLD_CONTROL_PERIOD_S, ObservationLayout, get_layout  # noqa: E402
from legion_training.config import DEFAULT_REWARD_VERSION, REWARD_VERSIONS  # noqa: E402

def instruction_for(task: str, overrides: dict | None = None) -> str:
    """The instruction text of ``task``: config override, else legion_policy.language's default,
    else the task name in words (``faucet-open-v3`` -> ``faucet open``)."""
    from legion_policy.language import default_instructions

    if overrides and task in overrides:
        return str(overrides[task])
    known = default_instructions()   # the skill data's (config/skills.yaml), else Metaworld's task text
    if task in known:
        return known[task]
    return task.rsplit("-v", 1)[0].replace("-", " ")


def known_tasks() -> list[str]:
    import metaworld.envs  # noqa: F401  (registers the v3 classes)
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    return sorted(ALL_V3_ENVIRONMENTS)


class RunningStd:
    """Running standard deviation of a scalar stream (Welford); rewards are divided by it."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, x: float) -> None:
        self.count += 1
        d = x - self.mean
        self.mean += d / self.count
        self.m2 += d * (x - self.mean)

    @property
    def std(self) -> float:
        if self.count < 2:
            return 1.0
        return math.sqrt(self.m2 / (self.count - 1))

    def normalize(self, x: float) -> float:
        return x / (self.std + self.eps)

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, d: dict) -> None:
        self.count, self.mean, self.m2 = int(d["count"]), float(d["mean"]), float(d["m2"])


def layout_indices(layout: ObservationLayout) -> np.ndarray:
    """Indices into the 39-d Metaworld observation giving ``layout`` (fields picked by name)."""
    idx = []
    for f in layout.fields:
        try:
            s = METAWORLD39.slice(f.name)
        except KeyError:
            raise ValueError(f"layout {layout.name!r}: field {f.name!r} is not in the Metaworld observation") from None
        idx.extend(range(s.start, s.stop))
    return np.asarray(idx, dtype=np.int64)


@dataclass
class StepResult:
    obs: np.ndarray
    reward: float          # normalised (what the learner sees)
    raw_reward: float
    terminated: bool       # always False: Metaworld tasks have no terminal states
    truncated: bool        # time limit reached
    success: bool


class MetaworldTask:
    """One Metaworld v3 task in the shared layout, with the method's episode length and reward scale."""

    def __init__(self, name: str, layout: str | ObservationLayout = "compact12", *, seed: int = 0,
                 episode_length: int = 150, normalize_reward: bool = True, reward_norm_eps: float = 1e-8,
                 benchmark=None, reward_version: str = DEFAULT_REWARD_VERSION,
                 max_target_lead_m: float | None = None) -> None:
        """``benchmark``: an existing ``metaworld.MT1`` of this task to share its variations (and skip
        building another); ``seed`` then only seeds the choice of variation per episode.
        ``reward_version``: Metaworld's ``reward_function_version`` ("v2" default, "v1" the original
        shaped rewards); ``info['success']`` does not depend on it.
        ``max_target_lead_m``: cap on how far the mocap target may lead the hand body when an action
        is added to it (None: Metaworld's own, unbounded), the bridge's ``max_target_lead_m``."""
        import metaworld

        self.name = name
        self.layout = get_layout(layout) if isinstance(layout, str) else layout
        self._idx = layout_indices(self.layout)
        try:
            self._benchmark = benchmark if benchmark is not None else metaworld.MT1(name, seed=seed)
        except ValueError as exc:  # "<name> is not a V3 environment"
            raise ValueError(f"unknown Metaworld task {name!r} ({exc}); known v3 tasks: {known_tasks()}") from None
        if reward_version not in REWARD_VERSIONS:
            raise ValueError(f"{name}: reward_version {reward_version!r}: expected one of {REWARD_VERSIONS}")
        self.reward_version = reward_version
        self.max_target_lead_m = None
        if max_target_lead_m is not None:
            try:
                self.max_target_lead_m = float(max_target_lead_m)
            except (TypeError, ValueError):
                self.max_target_lead_m = math.nan
            if not (math.isfinite(self.max_target_lead_m) and self.max_target_lead_m > 0):
                raise ValueError(f"{name}: max_target_lead_m must be a positive number of metres, "
                                 f"got {max_target_lead_m!r}")
        self._env = self._benchmark.train_classes[name](reward_function_version=reward_version)
        self._variations = list(self._benchmark.train_tasks)
        self._rng = np.random.default_rng(seed)
        self.episode_length = int(episode_length)
        if self.episode_length > self._env.max_path_length:
            raise ValueError(f"episode_length {episode_length} > Metaworld's limit {self._env.max_path_length}")
        self.normalize_reward = normalize_reward
        self.reward_std = RunningStd(reward_norm_eps)
        self.t = 0
        self.variation = -1

    @property
    def benchmark(self):
        return self._benchmark

    @property
    def obs_dim(self) -> int:
        return self.layout.size

    @property
    def n_variations(self) -> int:
        return len(self._variations)

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(raw, dtype=np.float64)[self._idx].astype(np.float32)

    def reset(self, variation: int | None = None) -> np.ndarray:
        """Start an episode on a variation (drawn from the seeded generator when not given)."""
        if variation is None:
            variation = int(self._rng.integers(self.n_variations))
        self.variation = variation % self.n_variations
        self._env.set_task(self._variations[self.variation])
        raw, _ = self._env.reset()
        self.t = 0
        self.obs39 = np.asarray(raw, dtype=np.float64)  # the full observation (what Metaworld's experts read)
        return self._convert(raw)

    def step(self, action: np.ndarray) -> StepResult:
        if self.t >= self.episode_length:
            raise RuntimeError(f"{self.name}: step() after the episode ended; call reset()")
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: non-finite action {a}")
        if self.max_target_lead_m is not None:
            self._cap_target_lead()
        raw, r, _term, _trunc, info = self._env.step(a)
        self.obs39 = np.asarray(raw, dtype=np.float64)
        self.t += 1
        r = float(r)
        if self.normalize_reward:
            self.reward_std.update(r)
            rn = self.reward_std.normalize(r)
        else:
            rn = r
        return StepResult(self._convert(raw), rn, r, False, self.t >= self.episode_length,
                          bool(info.get("success", 0.0) >= 1.0))

    def target_lead(self) -> float:
        """Distance of Metaworld's mocap target from the hand body [m]."""
        d = self._env.data
        return float(np.linalg.norm(d.mocap_pos[0] - d.body("hand").xpos))

    def _cap_target_lead(self) -> None:
        """Pull the mocap target back to within ``max_target_lead_m`` of the hand body (the base the
        next action is added to, as sim2real caps its commanded target before adding the action)."""
        d = self._env.data
        hand = d.body("hand").xpos
        lead = d.mocap_pos[0] - hand
        n = float(np.linalg.norm(lead))
        if n > self.max_target_lead_m:
            d.mocap_pos[0] = hand + lead * (self.max_target_lead_m / n)

    def rng_state(self) -> dict:
        return self._rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state

    def close(self) -> None:
        self._env.close()


def control_period(env_cfg) -> float:
    """The policy period [s] the ``env`` section trains at (the exported agent's ``control_period_s``): Metaworld's
    12.5 ms on the sawyer; on an iiwa ``env.control_period_s``, or the real arm's period when that is 0."""
    if getattr(env_cfg, "embodiment", "sawyer") == "sawyer":
        return METAWORLD_CONTROL_PERIOD_S
    from legion_training.iiwa_env import iiwa_control_period

    return iiwa_control_period(env_cfg.embodiment, getattr(env_cfg, "control_period_s", 0.0))


def make_task(name: str, env_cfg, seed: int, *, benchmark=None, normalize_reward: bool | None = None,
              evaluation: bool = False):
    """A task from the ``env`` section of a TrainConfig (every per-task setting applied): a MetaworldTask for
    ``env.embodiment: sawyer``, else legion_training.iiwa_env's IiwaTask (the iiwa through the bridge).
    ``benchmark`` shares an existing task's variations; ``normalize_reward`` overrides the config's
    (evaluation: False); ``evaluation`` starts every episode at the task's own hand start."""
    if getattr(env_cfg, "embodiment", "sawyer") != "sawyer":
        from legion_training.iiwa_env import make_iiwa_task

        return make_iiwa_task(name, env_cfg, seed, benchmark=benchmark, normalize_reward=normalize_reward,
                              evaluation=evaluation)
    if normalize_reward is None:
        normalize_reward = env_cfg.normalize_reward
    return MetaworldTask(name, env_cfg.layout, seed=seed, episode_length=env_cfg.episode_length,
                         normalize_reward=normalize_reward, reward_norm_eps=env_cfg.reward_norm_eps,
                         benchmark=benchmark,
                         reward_version=env_cfg.reward_versions.get(name, DEFAULT_REWARD_VERSION),
                         max_target_lead_m=env_cfg.max_target_lead_m.get(name))
