"""Training configuration: dataclasses with every hyperparameter, YAML loading, ``--set`` overrides.

Every field carries its default and meaning in the ``metadata["help"]`` of the
dataclass field (``legion-train --help-config`` prints them). Defaults are the
paper's values (legion-method.md) unless the help says otherwise; the shipped
configs ``config/training/{smoke,cpu,paper}.yaml`` override what they change.

Loading order: defaults -> YAML file (``smoke``/``cpu``/``paper`` or a path) ->
``--set section.key=value`` overrides (values parsed as YAML, so
``--set sac.batch_size=256`` gives an int and ``--set env.tasks=[reach-v3,push-v3]``
a list). Unknown keys are an error naming the valid ones.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, get_type_hints

import yaml

from legion_policy.observation_layout import METAWORLD_CONTROL_PERIOD_S


def config_dir() -> Path:
    """Where the named configs live: ``config/training`` of the package's share folder (the repository in a
    source checkout, share/legion_bridge after colcon or pip: ``legion_bridge.paths``)."""
    from legion_bridge.paths import config_path

    return config_path("training")

NAMED_CONFIGS = ("smoke", "cpu", "paper")

#: Metaworld's ``reward_function_version`` values (``env.reward_versions``) and the one of unlisted tasks.
REWARD_VERSIONS = ("v1", "v2")
DEFAULT_REWARD_VERSION = "v2"
#: Algorithms selectable by ``run.algorithm`` (see docs/training.md).
ALGORITHMS = ("legion", "legion_gaussian", "sac", "sac_lang", "mtsac")


def _f(default: Any, help: str) -> Any:
    """A dataclass field with a default and its documented meaning."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


class ConfigError(ValueError):
    """A configuration value or key is invalid (message names the key)."""


def _finite_number(value: Any) -> bool:
    """A finite int or float, not a bool (YAML's true would pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: Embodiments of the training environment (``env.embodiment``): the simulated iiwa of urdf/<name>.urdf stepped
#: through the bridge (legion_training.iiwa_env), or Metaworld's own Sawyer (legion_training.envs).
EMBODIMENTS = ("iiwa7", "iiwa14", "sawyer")


@dataclass
class EnvConfig:
    embodiment: str = _f("sawyer", f"one of {EMBODIMENTS}: the arm the tasks are trained on. iiwa7 / iiwa14: the "
                         "task's Metaworld scene holds the simulated KUKA iiwa + gripper of urdf/<name>.urdf and every "
                         "step is one agent step of the deployed simulated graph (sim2real's IK, safety envelope and "
                         "gripper command, one policy period of physics, real2sim's observation; "
                         "legion_bridge.sim.bridge_loop), with Metaworld's own reward and success computed on that "
                         "arm (docs/training.md#training-on-the-iiwa). sawyer: Metaworld's mocap-driven Sawyer "
                         "(the paper's setting; default, so configs written before this key keep their meaning).")
    random_hand_init: bool = _f(False, "iiwa only: start each training episode with the hand at a random point of "
                                "env.hand_init_box that the arm reaches gripper-down without touching anything "
                                "(else the task's own start), so a skill learns to start where the previous one "
                                "ended; evaluation episodes always start at the task's own start.")
    hand_init_box: list = _f([], "iiwa only: [[x, y, z], [x, y, z]] box of random hand starts (sim frame, Metaworld's "
                             "hand point) [m]; empty = the calibrated workspace box (config/calibration.yaml).")
    control_period_s: float = _f(0.0, "iiwa only: the policy period [s] the iiwa is trained at, a whole number of "
                                 "physics steps (2.5 ms); 0 = the real arm's period (config/limits.yaml "
                                 "policy_period_real_s, 50 ms: the period the skill runs at on the arm, and the "
                                 "exported agent's control_period_s, at which the simulated graph then runs too). "
                                 "The sawyer is Metaworld's 12.5 ms (0 or that value).")
    expert_demo_episodes: int = _f(0, "episodes of Metaworld's scripted expert of the task (metaworld.policies, reading "
                                   "the 39-d observation) run at the start of each lifelong task phase in its "
                                   "training environment, before the random steps, their transitions stored in the "
                                   "replay like any other: a departure from the paper (which learns from the reward "
                                   "alone; 0 there) for skills plain LEGION does not learn in time on the iiwa.")
    expert_demo_noise: float = _f(0.0, "std of Gaussian noise added to the expert's action while it acts the "
                                  "demonstration episodes (clipped to the action box), as DART does: the replay stores "
                                  "the executed action, sac.demo_bc_weight clones the expert's own action, so the "
                                  "clone covers states beside the expert's path and their way back to it; 0 = none.")
    tasks: list = _f(["reach-v3"], "Metaworld v3 task names, trained in this order (lifelong) or together (multitask).")
    layout: str = _f("compact12", "observation layout from legion_policy.observation_layout (compact12 = the paper's KUKA 12-d).")
    episode_length: int = _f(150, "steps per episode; the time-limit end is NOT terminal (bootstrapped).")
    normalize_reward: bool = _f(True, "divide rewards by a running std of the task's rewards (no mean subtraction).")
    reward_norm_eps: float = _f(1e-8, "added to the running std before dividing.")
    instructions: dict = _f({}, "task name -> instruction text; overrides legion_policy.language.DEFAULT_INSTRUCTIONS.")
    reward_versions: dict = _f({}, "task name -> Metaworld reward function 'v1' (the original shaped rewards) or 'v2' "
                               "(Metaworld's default, used for tasks not listed). Success is the same for both.")
    max_target_lead_m: dict = _f({}, "task name -> how far Metaworld's mocap target may lead the hand body [m], "
                                 "capped before each action is added, as sim2real's max_target_lead_m "
                                 "(config/sim2real.yaml) caps the commanded target on the arm; tasks not listed: "
                                 "unbounded (Metaworld's own). Train a skill under the bridge's cap to learn what "
                                 "the bridge will execute (a pushing skill otherwise leans on a target up to 25-50 cm "
                                 "ahead of a blocked hand).")


@dataclass
class NetConfig:
    latent_dim: int = _f(10, "size of the latent task code z.")
    encoder_hidden: list = _f([400, 400, 400], "task-inference encoder widths (ReLU MLP).")
    actor_hidden: list = _f([300, 300, 300, 300], "actor trunk widths (first: Linear-LayerNorm-Tanh, rest Linear-LeakyReLU).")
    critic_hidden: list = _f([300, 300, 300, 300], "critic trunk widths (same trunk as the actor).")
    decoder_hidden: list = _f([400, 400, 400], "semantic and dynamics decoder widths (ReLU MLP).")


@dataclass
class SACConfig:
    gamma: float = _f(0.99, "discount factor.")
    tau: float = _f(0.005, "Polyak factor of the target critics, updated every gradient step.")
    lr: float = _f(3e-4, "Adam learning rate of actor, critics and temperatures.")
    batch_size: int = _f(512, "transitions per gradient step (paper: 512 lifelong, 1280 multitask).")
    init_alpha: float = _f(1.0, "initial temperature of every task.")
    target_entropy: float = _f(-4.0, "entropy target of the temperature loss (-|A|).")
    random_steps: int = _f(1500, "uniform random actions at the start of each task.")
    learning_starts: int = _f(1000, "env steps into the run before gradient steps start (>= batch_size samples).")
    updates_per_step: float = _f(1.0, "gradient steps per env step (fractions accumulate).")
    replay_capacity: int = _f(10_000_000, "replay size; one buffer for the whole stream, never reset.")
    demo_batch_fraction: float = _f(0.0, "fraction of each SAC batch drawn from the expert-demonstration transitions "
                                    "(env.expert_demo_episodes), the rest uniformly from the replay, as RLPD's "
                                    "symmetric sampling (0.5) does; 0 = uniform (the paper). A departure from the "
                                    "paper like the demonstrations themselves.")
    demo_bc_weight: float = _f(0.0, "weight of a behaviour-cloning term on the demonstration rows of each SAC batch "
                               "(sac.demo_batch_fraction), relative to the actor's Q term as in TD3+BC: the actor "
                               "loss adds demo_bc_weight x max(mean|Q|, 1) x MSE(tanh(mean action), expert action); 0 = none "
                               "(the paper). A departure from the paper like the demonstrations themselves.")


@dataclass
class VAEConfig:
    beta: float = _f(0.001, "weight of the KL term (paper: 0.001 lifelong, 0.002 multitask).")
    lr: float = _f(3e-4, "Adam learning rate of encoder and decoders.")
    update_every: int = _f(50, "env steps between encoder/decoder updates (RL losses never touch the encoder).")
    batch_size: int = _f(512, "transitions per VAE update.")
    dynamics_weight: float = _f(0.5, "weight of the MSE of the dynamics decoder s'_hat.")
    semantic_weight: float = _f(1.0, "weight of the sum-squared error of the semantic decoder e_hat.")


@dataclass
class DPMMConfig:
    gamma0: float = _f(5.0, "DP concentration.")
    sF: float = _f(1e-5, "scale of the DiagGauss prior covariance (ECovMat = eye).")
    n_batch: int = _f(5, "memoVB batches per lap.")
    n_lap: int = _f(2, "memoVB laps per fit.")
    moves: str = _f("birth,merge,shuffle", "memoVB moves.")
    n_samples: int = _f(3000, "z samples drawn uniformly from the whole replay buffer per fit.")
    first_fit: int = _f(10_000, "steps into each task of the first fit of that task.")
    fit_every: int = _f(100_000, "steps between later fits within a task.")
    seed: int = _f(0, "bnpy algorithm seed (offset by the fit index).")


@dataclass
class LanguageConfig:
    enabled: bool = _f(True, "feed language embeddings e of the task instruction (off: e = 0, i.e. 'SAC without language').")


@dataclass
class EvalConfig:
    every: int = _f(10_000, "env steps between evaluations of ALL tasks.")
    episodes: int = _f(10, "evaluation episodes per task (deterministic mean action).")
    seed: int = _f(12345, "seed of the evaluation task variations (fixed across evaluations).")


@dataclass
class RunConfig:
    algorithm: str = _f("legion", f"one of {ALGORITHMS}: legion (DPMM prior), legion_gaussian (N(0,I) prior), "
                        "sac (no task input), sac_lang (z = language embedding), mtsac (z = one-hot task id).")
    regime: str = _f("lifelong", "lifelong (one task at a time) or multitask (all tasks, one episode each in turn).")
    steps_per_task: int = _f(1_000_000, "env steps per task (lifelong) or per task on average (multitask: total = steps x tasks).")
    seed: int = _f(0, "seed of torch, numpy, task variations and random actions.")
    device: str = _f("cpu", "cpu or cuda.")
    torch_threads: int = _f(1, "torch intra-op threads (keep small on shared CPUs).")
    checkpoint_every: int = _f(10_000, "env steps between atomic checkpoints (what a kill can lose at most).")
    keep_checkpoints: bool = _f(False, "also keep every checkpoint as checkpoints/step_<N>.pt (a hard link where the "
                                "file system allows, ~12 MB each with the cpu config), so the checkpoint of any "
                                "evaluated step can be exported (legion-train export RUN --step N).")
    log_every: int = _f(1000, "env steps between TensorBoard scalars.")
    latent_snapshot: int = _f(2000, "z samples kept for the latent-space plot at each DPMM fit.")


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    net: NetConfig = field(default_factory=NetConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    dpmm: DPMMConfig = field(default_factory=DPMMConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainConfig":
        r = self.run
        if r.algorithm not in ALGORITHMS:
            raise ConfigError(f"run.algorithm={r.algorithm!r}: expected one of {ALGORITHMS}")
        if r.regime not in ("lifelong", "multitask"):
            raise ConfigError(f"run.regime={r.regime!r}: expected lifelong or multitask")
        if r.device not in ("cpu", "cuda"):
            raise ConfigError(f"run.device={r.device!r}: expected cpu or cuda")
        if not self.env.tasks:
            raise ConfigError("env.tasks is empty")
        if len(set(self.env.tasks)) != len(self.env.tasks):
            raise ConfigError(f"env.tasks has duplicates: {self.env.tasks}")
        if self.sac.learning_starts < self.sac.batch_size:
            raise ConfigError(f"sac.learning_starts={self.sac.learning_starts} < sac.batch_size={self.sac.batch_size}")
        for name in ("steps_per_task", "checkpoint_every", "log_every"):
            if getattr(r, name) <= 0:
                raise ConfigError(f"run.{name} must be > 0")
        if self.eval.every <= 0 or self.eval.episodes <= 0:
            raise ConfigError("eval.every and eval.episodes must be > 0")
        if self.env.episode_length <= 0:
            raise ConfigError("env.episode_length must be > 0")
        for task, version in self.env.reward_versions.items():
            if version not in REWARD_VERSIONS:
                raise ConfigError(f"env.reward_versions[{task!r}]={version!r}: expected one of {REWARD_VERSIONS}")
        if self.env.expert_demo_episodes < 0:
            raise ConfigError(f"env.expert_demo_episodes={self.env.expert_demo_episodes}: expected >= 0")
        f = self.sac.demo_batch_fraction
        if not _finite_number(f) or not 0.0 <= f < 1.0:
            raise ConfigError(f"sac.demo_batch_fraction={f!r}: expected a fraction in [0, 1)")
        if f and not self.env.expert_demo_episodes:
            raise ConfigError("sac.demo_batch_fraction samples the demonstrations: set env.expert_demo_episodes > 0")
        w = self.sac.demo_bc_weight
        if not _finite_number(w) or w < 0.0:
            raise ConfigError(f"sac.demo_bc_weight={w!r}: expected a finite weight >= 0")
        if w and not f:
            raise ConfigError("sac.demo_bc_weight clones the demonstration rows of each batch: set "
                              "sac.demo_batch_fraction > 0")
        noise = self.env.expert_demo_noise
        if not _finite_number(noise) or noise < 0.0:
            raise ConfigError(f"env.expert_demo_noise={noise!r}: expected a finite standard deviation >= 0")
        if noise and not self.env.expert_demo_episodes:
            raise ConfigError("env.expert_demo_noise perturbs the demonstrations: set env.expert_demo_episodes > 0")
        if self.env.expert_demo_episodes and self.run.regime != "lifelong":
            raise ConfigError("env.expert_demo_episodes seeds lifelong task phases: use run.regime=lifelong")
        if self.env.embodiment not in EMBODIMENTS:
            raise ConfigError(f"env.embodiment={self.env.embodiment!r}: expected one of {EMBODIMENTS}")
        if self.env.embodiment != "sawyer" and self.env.max_target_lead_m:
            raise ConfigError(f"env.max_target_lead_m={self.env.max_target_lead_m}: Metaworld's mocap target cap "
                              f"applies to the sawyer embodiment; on {self.env.embodiment} the bridge's own "
                              "max_target_lead_m (config/sim2real.yaml) applies")
        period = self.env.control_period_s
        if not _finite_number(period) or period < 0:
            raise ConfigError(f"env.control_period_s={period!r}: expected a period in seconds (0 = the embodiment's own)")
        if self.env.embodiment == "sawyer" and period and abs(period - METAWORLD_CONTROL_PERIOD_S) > 1e-12:
            raise ConfigError(f"env.control_period_s={period}: Metaworld's Sawyer steps at "
                              f"{METAWORLD_CONTROL_PERIOD_S} s (set 0, or train an iiwa embodiment)")
        if self.env.embodiment != "sawyer" and period:
            from legion_bridge.sim.mujoco_model import TIMESTEP_S

            if abs(period / TIMESTEP_S - round(period / TIMESTEP_S)) > 1e-9:
                raise ConfigError(f"env.control_period_s={period}: not a whole number of physics steps ({TIMESTEP_S} s)")
        self.env.control_period_s = float(period)
        if self.env.random_hand_init and self.env.embodiment == "sawyer":
            raise ConfigError("env.random_hand_init needs an iiwa embodiment (env.embodiment: iiwa7 | iiwa14)")
        if self.env.hand_init_box:
            box = self.env.hand_init_box
            ok = (len(box) == 2 and all(isinstance(c, (list, tuple)) and len(c) == 3 and
                                        all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in c)
                                        for c in box) and all(box[0][i] < box[1][i] for i in range(3)))
            if not ok:
                raise ConfigError(f"env.hand_init_box={box!r}: expected [[x, y, z] low, [x, y, z] high] with low < high")
        for task, lead in self.env.max_target_lead_m.items():
            if not _finite_number(lead) or lead <= 0:
                raise ConfigError(f"env.max_target_lead_m[{task!r}]={lead!r}: expected a positive number of metres")
            self.env.max_target_lead_m[task] = float(lead)
        return self


def _coerce(section: str, key: str, typ: Any, value: Any) -> Any:
    where = f"{section}.{key}"
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if typ is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if typ is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return list(value)
    if typ is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def apply_dict(cfg: TrainConfig, data: Mapping, source: str = "config") -> TrainConfig:
    """Update ``cfg`` in place from a nested mapping ``{section: {key: value}}``."""
    sections = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for section, values in (data or {}).items():
        if section not in sections:
            raise ConfigError(f"{source}: unknown section {section!r}; sections: {sorted(sections)}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        obj = getattr(cfg, section)
        hints = get_type_hints(type(obj))
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{source}: unknown key {section}.{key}; keys of {section}: {sorted(hints)}")
            setattr(obj, key, _coerce(section, key, hints[key], value))
    return cfg


def parse_override(text: str) -> dict:
    """``"sac.batch_size=256"`` -> ``{"sac": {"batch_size": 256}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    path, raw = text.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: the key must be section.key (e.g. sac.batch_size)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc})") from None
    return {parts[0]: {parts[1]: value}}


def resolve_config_path(name_or_path: str) -> Path:
    if name_or_path in NAMED_CONFIGS:
        return config_dir() / f"{name_or_path}.yaml"
    p = Path(name_or_path)
    if not p.is_file():
        raise ConfigError(f"config {name_or_path!r}: not one of {NAMED_CONFIGS} and no such file")
    return p


def load_config(name_or_path: str | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults, then the YAML config (a named one or a path), then ``key=value`` overrides."""
    cfg = TrainConfig()
    if name_or_path:
        path = resolve_config_path(name_or_path)
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        apply_dict(cfg, data, source=str(path))
    for text in overrides:
        apply_dict(cfg, parse_override(text), source=f"--set {text}")
    return cfg.validate()


def config_from_dict(data: Mapping) -> TrainConfig:
    """Rebuild a config saved with :meth:`TrainConfig.to_dict` (e.g. from a checkpoint)."""
    return apply_dict(TrainConfig(), data, source="saved config").validate()


def describe() -> str:
    """Every hyperparameter with its default and meaning (``legion-train --help-config``)."""
    lines = []
    for sec in dataclasses.fields(TrainConfig):
        obj = getattr(TrainConfig(), sec.name)
        lines.append(f"[{sec.name}]")
        for f in dataclasses.fields(obj):
            lines.append(f"  {sec.name}.{f.name} = {getattr(obj, f.name)!r}: {f.metadata.get('help', '')}")
    return "\n".join(lines)
