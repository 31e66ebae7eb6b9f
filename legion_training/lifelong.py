"""The lifelong loop: one task at a time (or all together for MT-SAC), evaluation of ALL tasks, metrics.

Per task (phase) of the stream:
  * optimisers are re-created, networks and the one replay buffer are kept;
  * the first ``env.expert_demo_episodes`` episodes are acted by the task's scripted expert (0 in the
    paper), then ``sac.random_steps`` steps use uniform random actions; ``sac.demo_batch_fraction`` of
    each SAC batch comes from the demonstration rows (0 in the paper; the replay never wraps over them
    in the shipped configs, whose capacity exceeds the stream), and ``sac.demo_bc_weight`` adds a
    behaviour-cloning term on those rows to the actor loss (0 in the paper);
  * one SAC update per env step (``sac.updates_per_step``) once ``sac.learning_starts``
    transitions are stored; one VAE update every ``vae.update_every`` steps;
  * the DPMM is fitted on z of ``dpmm.n_samples`` transitions of the whole buffer
    ``dpmm.first_fit`` steps into the task and then every ``dpmm.fit_every`` steps;
  * every ``eval.every`` steps and at the end of the task ALL tasks are evaluated
    (deterministic actions, ``eval.episodes`` x ``env.episode_length`` steps, an episode
    succeeds if Metaworld's info['success'] was ever 1).

The end-of-task evaluations form the task x phase success matrix M[i, j] (task i after
training phase j), from which :func:`stream_metrics` derives average success,
forgetting and backward transfer. Everything is written under the run directory;
checkpoints are written atomically (temp file + os.replace) so a kill loses at most
``run.checkpoint_every`` steps. A resumed run starts a fresh episode.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import yaml

from legion_policy.observation_layout import ACTION_SPEC

from .config import ConfigError, TrainConfig, config_from_dict, parse_override
from .dpmm import DPMM, responsibilities
from .envs import instruction_for, make_task
from .learner import Learner, uses_encoder
from .replay import ReplayBuffer

CHECKPOINT = "checkpoint.pt"
#: run.keep_checkpoints: the folder of the run directory holding every checkpoint (step_<N>.pt)
KEPT_CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.yaml"


# ------------------------------------------------------------------ metrics


def stream_metrics(matrix: np.ndarray) -> dict:
    """Metrics of a task x phase success matrix M (rows: tasks in stream order, columns: phases).

    average_success: mean_i M[i, -1] (all tasks, seen or not, after the last phase).
    forgetting: mean over tasks i < T-1 of max_{i <= j < T-1} M[i, j] - M[i, T-1] (0 for one phase).
    backward_transfer: mean over tasks i < T-1 of M[i, T-1] - M[i, i] (0 for one phase).
    """
    M = np.asarray(matrix, dtype=np.float64)
    n_tasks, n_phases = M.shape
    final = M[:, -1]
    out = {"average_success": float(np.mean(final)), "final_success": [float(x) for x in final],
           "forgetting": 0.0, "backward_transfer": 0.0}
    learned = [i for i in range(min(n_tasks, n_phases - 1))]
    if learned:
        out["forgetting"] = float(np.mean([M[i, i:n_phases - 1].max() - M[i, -1] for i in learned]))
        out["backward_transfer"] = float(np.mean([M[i, -1] - M[i, i] for i in learned]))
    return out


# ------------------------------------------------------------------ helpers


def kept_checkpoint(run_dir: Path, step: int) -> Path:
    """Where ``run.keep_checkpoints`` keeps the checkpoint of env step ``step``."""
    return Path(run_dir) / KEPT_CHECKPOINTS / f"step_{int(step):08d}.pt"


def kept_checkpoint_steps(run_dir: Path) -> list[int]:
    """The env steps whose checkpoints ``run.keep_checkpoints`` kept, in order."""
    folder = Path(run_dir) / KEPT_CHECKPOINTS
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("step_*.pt")) if folder.is_dir() else []


def atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def task_embeddings(cfg: TrainConfig, tasks: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Instruction text and MiniLM embedding of every task of the stream (or of ``tasks``)."""
    from legion_policy.language import embed

    texts = [instruction_for(t, cfg.env.instructions) for t in (cfg.env.tasks if tasks is None else tasks)]
    return texts, embed(texts)


#: The env settings given per task, which ``--extend`` may set for the tasks it adds.
PER_TASK_ENV_KEYS = ("instructions", "reward_versions", "max_target_lead_m")


def _apply_new_task_settings(cfg: TrainConfig, overrides: Sequence[str], new_tasks: list[str]) -> None:
    """Merge ``--set env.<per-task map>={task: value}`` for the new tasks into ``cfg`` (validated)."""
    for text in overrides:
        data = parse_override(text)
        (section, values), = data.items()
        (key, value), = values.items()
        if section != "env" or key not in PER_TASK_ENV_KEYS:
            raise ConfigError(f"--set {text}: with --extend only the new tasks' entries of "
                              f"{', '.join('env.' + k for k in PER_TASK_ENV_KEYS)} can be set (the rest is the run's own)")
        if not isinstance(value, Mapping) or not value:
            raise ConfigError(f"--set {text}: expected a mapping task -> value, e.g. env.{key}={{{new_tasks[0]}: ...}}")
        others = [t for t in value if t not in new_tasks]
        if others:
            raise ConfigError(f"--set {text}: {others[0]!r} is not a task this --extend adds ({new_tasks}); "
                              f"the earlier tasks keep the settings they were trained with")
        getattr(cfg.env, key).update(value)
    cfg.validate()


def extend_run(src: str | os.PathLike, dst: str | os.PathLike, new_tasks: list[str],
               log: Callable[[str], None] = print, steps_per_task: int | None = None,
               overrides: Sequence[str] = ()) -> Path:
    """Start a new run in ``dst`` that continues the finished lifelong run ``src`` with ``new_tasks``.

    This is lifelong learning after the fact: the networks, the replay buffer (old tasks'
    transitions stay in it), the DPMM, the evaluation history and the success matrix of
    ``src`` carry over; each new task gets its instruction embedding and its own
    temperature (``sac.init_alpha``), and the stream goes on with the first new task
    (optimisers are re-created at every task switch anyway). ``src`` is left untouched;
    ``dst`` is an ordinary run afterwards (``--resume dst`` works). ``steps_per_task`` (default:
    the run's own) sets the length of the new tasks' phases. ``overrides`` (``--set`` texts) may set
    the new tasks' entries of the env's per-task maps (:data:`PER_TASK_ENV_KEYS`), e.g.
    ``env.max_target_lead_m={handle-press-v3: 0.05}``; the earlier tasks' settings stay as trained.
    """
    src, dst = Path(src), Path(dst)
    ckpt = src / CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(f"--extend {src}: no {CHECKPOINT} there")
    if (dst / CHECKPOINT).exists():
        raise FileExistsError(f"{dst} already holds a run; choose another --out")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = config_from_dict(state["config"])
    old_tasks = list(cfg.env.tasks)
    if cfg.run.regime != "lifelong" or cfg.run.algorithm == "mtsac":
        raise ValueError(f"--extend needs a lifelong run with a task-independent network input; {src} is "
                         f"{cfg.run.regime}/{cfg.run.algorithm}")
    n_old = len(old_tasks)
    if int(state["counters"]["phase"]) < n_old:
        raise ValueError(f"--extend {src}: the run is not finished (phase {state['counters']['phase']} of "
                         f"{n_old}); finish it with --resume first")
    if not new_tasks:
        raise ValueError("--extend needs at least one --add-task")
    repeated = [t for t in new_tasks if t in old_tasks or new_tasks.count(t) > 1]
    if repeated:
        raise ValueError(f"--add-task {repeated[0]}: already in the stream {old_tasks + new_tasks}")
    _apply_new_task_settings(cfg, overrides, new_tasks)
    for t in new_tasks:  # a clear error for a wrong name before anything is written
        make_task(t, cfg.env, seed=0).close()
    if steps_per_task is not None:
        if int(steps_per_task) != steps_per_task or steps_per_task <= 0:
            raise ValueError(f"--steps-per-task must be a positive integer, got {steps_per_task!r}")
        cfg.run.steps_per_task = int(steps_per_task)
    cfg.env.tasks = old_tasks + list(new_tasks)
    n_new = len(cfg.env.tasks)

    texts, embeddings = task_embeddings(cfg, new_tasks)
    state["instructions"] = list(state["instructions"]) + texts
    state["embeddings"] = np.concatenate([np.asarray(state["embeddings"]), embeddings], axis=0)
    learner = state["learner"]
    learner["log_alpha"] = torch.cat([learner["log_alpha"],
                                      torch.full((len(new_tasks),), float(np.log(cfg.sac.init_alpha)))])
    # per-task temperature grew: a fresh Adam state (the optimisers are re-created at the switch anyway)
    learner["alpha_opt"] = torch.optim.Adam([torch.zeros(n_new, requires_grad=True)], lr=cfg.sac.lr).state_dict()
    matrix = np.full((n_new, n_new), np.nan)
    matrix[:n_old, :n_old] = np.asarray(state["matrix"], dtype=np.float64)[:, :n_old]
    state["matrix"] = matrix
    c = state["counters"]
    c["phase"], c["phase_step"], c["update_credit"] = n_old, 0, 0.0
    state["config"] = cfg.to_dict()
    dst.mkdir(parents=True, exist_ok=True)
    if (src / "latent").is_dir():  # the latent snapshots of the earlier tasks, for the plots
        shutil.copytree(src / "latent", dst / "latent", dirs_exist_ok=True)
    atomic_write_text(dst / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    atomic_torch_save(state, dst / CHECKPOINT)
    log(f"extended {src} ({', '.join(old_tasks)}) with {', '.join(new_tasks)} into {dst}")
    return dst


class Trainer:
    """Runs (or resumes) one training run in ``run_dir``."""

    def __init__(self, cfg: TrainConfig | None, run_dir: str | os.PathLike, *, resume: bool = False,
                 device: str | None = None, log: Callable[[str], None] = print) -> None:
        self.run_dir = Path(run_dir)
        self.log = log
        ckpt_path = self.run_dir / CHECKPOINT
        state = None
        if resume:
            if not ckpt_path.is_file():
                raise FileNotFoundError(f"--resume {self.run_dir}: no {CHECKPOINT} there (nothing to resume)")
            state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            cfg = config_from_dict(state["config"])
        if device is not None:
            cfg.run.device = device
        self.cfg = cfg
        torch.set_num_threads(max(1, cfg.run.torch_threads))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            atomic_write_text(self.run_dir / CONFIG_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))

        seed = cfg.run.seed
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.tasks = list(cfg.env.tasks)
        # one training env and one evaluation env per task (own seeds: evaluation never moves training RNG)
        self.envs = [make_task(t, cfg.env, seed=seed + 1000 * i) for i, t in enumerate(self.tasks)]
        self.eval_envs = [make_task(t, cfg.env, seed=cfg.eval.seed + 1000 * i, benchmark=self.envs[i].benchmark,
                                    normalize_reward=False, evaluation=True)
                          for i, t in enumerate(self.tasks)]
        obs_dim = self.envs[0].obs_dim
        if state is not None:
            self.instructions, self.embeddings = list(state["instructions"]), np.asarray(state["embeddings"])
        else:
            self.instructions, self.embeddings = task_embeddings(cfg)
        self.learner = Learner(cfg, obs_dim, ACTION_SPEC.size, self.embeddings)
        self.replay = ReplayBuffer(obs_dim, ACTION_SPEC.size, cfg.sac.replay_capacity)
        self.dpmm = DPMM(cfg.dpmm)

        n_phases = len(self.tasks) if cfg.run.regime == "lifelong" else 1
        self.matrix = np.full((len(self.tasks), n_phases), np.nan)
        self.eval_history: list[dict] = []   # one row per (evaluation, task)
        self.dpmm_history: list[dict] = []   # one row per DPMM fit
        self.step = 0                        # env steps of the whole run
        self.phase = 0                       # index of the current phase (task in lifelong)
        self.phase_step = 0                  # env steps into the current phase
        self.update_credit = 0.0
        self.n_updates = 0
        #: replay rows acted by the scripted expert (env.expert_demo_episodes), for sac.demo_batch_fraction
        self.demo_rows: list[int] = []
        #: the expert's own action of each demonstration row (the clone target; the replay holds the executed one)
        self.demo_actions: list[np.ndarray] = []
        self._demo_action_array = np.zeros((0, ACTION_SPEC.size), np.float32)
        self.last_success = float("nan")
        self.resumed_from: int | None = None
        if state is not None:
            self._load(state)
        self.writer = None

    # ------------------------------------------------------------- properties
    @property
    def n_phases(self) -> int:
        return self.matrix.shape[1]

    @property
    def steps_per_phase(self) -> int:
        c = self.cfg
        return c.run.steps_per_task * (1 if c.run.regime == "lifelong" else len(self.tasks))

    @property
    def total_steps(self) -> int:
        """Env steps of the whole run: those of the finished phases plus the rest at the current length
        (an extended run's earlier phases may have had another length)."""
        if self.done:
            return self.step
        return (self.step - self.phase_step) + (self.n_phases - self.phase) * self.steps_per_phase

    @property
    def done(self) -> bool:
        return self.phase >= self.n_phases

    # ------------------------------------------------------------- checkpoint
    def _state(self) -> dict:
        return {
            "config": self.cfg.to_dict(), "instructions": self.instructions, "embeddings": self.embeddings,
            "learner": self.learner.state_dict(), "replay": self.replay.state_dict(),
            "dpmm": self.dpmm.state_dict(),
            "counters": {"step": self.step, "phase": self.phase, "phase_step": self.phase_step,
                         "update_credit": self.update_credit, "n_updates": self.n_updates},
            "demo_rows": list(self.demo_rows),
            "demo_actions": np.asarray(self.demo_actions, dtype=np.float32).reshape(-1, ACTION_SPEC.size),
            "matrix": self.matrix, "eval_history": self.eval_history, "dpmm_history": self.dpmm_history,
            "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state(),
                    "envs": [e.rng_state() for e in self.envs]},
            "reward_std": [e.reward_std.state_dict() for e in self.envs],
        }

    def _load(self, s: dict) -> None:
        self.learner.load_state_dict(s["learner"])
        self.replay.load_state_dict(s["replay"])
        self.dpmm.load_state_dict(s["dpmm"])
        c = s["counters"]
        self.step, self.phase, self.phase_step = int(c["step"]), int(c["phase"]), int(c["phase_step"])
        self.update_credit, self.n_updates = float(c["update_credit"]), int(c["n_updates"])
        self.demo_rows = [int(i) for i in s.get("demo_rows", [])]
        if "demo_actions" in s:
            self.demo_actions = [np.asarray(a, dtype=np.float32) for a in s["demo_actions"]]
        else:  # a checkpoint from before the noisy demonstrations: the executed action was the expert's
            self.demo_actions = [self.replay.action[i].copy() for i in self.demo_rows]
        self.matrix = np.asarray(s["matrix"], dtype=np.float64)
        self.eval_history, self.dpmm_history = list(s["eval_history"]), list(s["dpmm_history"])
        self.rng.bit_generator.state = s["rng"]["numpy"]
        torch.set_rng_state(s["rng"]["torch"])
        for e, st, rs in zip(self.envs, s["rng"]["envs"], s["reward_std"]):
            e.set_rng_state(st)
            e.reward_std.load_state_dict(rs)
        self.resumed_from = self.step

    def save_checkpoint(self) -> Path:
        path = self.run_dir / CHECKPOINT
        atomic_torch_save(self._state(), path)
        if self.cfg.run.keep_checkpoints:  # the save replaced the file, so a link keeps this step's version
            kept = kept_checkpoint(self.run_dir, self.step)
            kept.parent.mkdir(exist_ok=True)
            kept.unlink(missing_ok=True)
            try:
                os.link(path, kept)
            except OSError:
                shutil.copyfile(path, kept)
        return path

    # ------------------------------------------------------------- evaluation
    def evaluate(self) -> list[dict]:
        """Evaluate every task: deterministic actions, success = ever succeeded in the episode."""
        rows = []
        for i, env in enumerate(self.eval_envs):
            succ, rets = [], []
            for ep in range(self.cfg.eval.episodes):
                obs = env.reset(variation=ep)  # fixed variations: evaluations are comparable over time
                ok, ret = False, 0.0
                for _ in range(env.episode_length):
                    r = env.step(self.learner.act(obs, i, deterministic=True))
                    ok, ret, obs = ok or r.success, ret + r.raw_reward, r.obs
                    if r.truncated:
                        break
                succ.append(ok)
                rets.append(ret)
            rows.append({"step": self.step, "phase": self.phase, "task": self.tasks[i],
                         "success": float(np.mean(succ)), "return": float(np.mean(rets)),
                         "episodes": len(succ)})
        self.eval_history.extend(rows)
        current = self.phase if self.cfg.run.regime == "lifelong" else None
        self.last_success = rows[current]["success"] if current is not None and current < len(rows) \
            else float(np.mean([r["success"] for r in rows]))
        if self.writer is not None:
            for r in rows:
                self.writer.add_scalar(f"eval/success/{r['task']}", r["success"], self.step)
                self.writer.add_scalar(f"eval/return/{r['task']}", r["return"], self.step)
            self.writer.add_scalar("eval/average_success", float(np.mean([r["success"] for r in rows])), self.step)
        return rows

    # ------------------------------------------------------------- DPMM
    def fit_dpmm(self) -> None:
        n = min(self.cfg.dpmm.n_samples, len(self.replay))
        idx = self.replay.sample_indices(self.rng, n)
        b = self.replay.batch(idx)
        z = self.learner.latent(b["obs"], b["task"], sample=True)
        t0 = time.time()
        mixture = self.dpmm.fit(z)
        self.learner.set_mixture(mixture)
        # latent snapshot for the plots: mu of a subset, its task and its DPMM cluster
        m = min(self.cfg.run.latent_snapshot, n)
        mu = self.learner.latent(b["obs"][:m], b["task"][:m], sample=False)
        cluster = responsibilities(mu, mixture).argmax(1)
        snap_dir = self.run_dir / "latent"
        snap_dir.mkdir(exist_ok=True)
        np.savez(snap_dir / f"fit_{self.dpmm.n_fits:04d}.npz", z=mu, task=b["task"][:m], cluster=cluster,
                 step=self.step, K=mixture.K)
        row = {"step": self.step, "phase": self.phase, "fit": self.dpmm.n_fits, "K": mixture.K,
               "seconds": round(time.time() - t0, 3), "purity": cluster_purity(b["task"][:m], cluster)}
        self.dpmm_history.append(row)
        self.log(f"DPMM fit {row['fit']} at step {self.step}: K={row['K']} purity={row['purity']:.2f}")
        if self.writer is not None:
            self.writer.add_scalar("dpmm/K", mixture.K, self.step)

    def _dpmm_due(self) -> bool:
        if self.cfg.run.algorithm != "legion":
            return False
        d = self.cfg.dpmm
        s = self.phase_step
        return s == d.first_fit or (s > d.first_fit and (s - d.first_fit) % d.fit_every == 0)

    # ------------------------------------------------------------- expert demonstrations
    def _demo_steps(self) -> int:
        """Steps at the start of each lifelong phase acted by the task's scripted expert (env.expert_demo_episodes)."""
        return int(self.cfg.env.expert_demo_episodes) * int(self.cfg.env.episode_length)

    def _expert_action(self, task: int) -> np.ndarray:
        from .experts import expert_for

        experts = self.__dict__.setdefault("_experts", {})
        if task not in experts:
            experts[task] = expert_for(self.tasks[task])
        a = experts[task].get_action(self.envs[task].obs39)
        return np.clip(np.asarray(a, dtype=np.float64), ACTION_SPEC.low, ACTION_SPEC.high).astype(np.float32)

    def demo_share(self) -> int:
        """Rows of each SAC batch drawn from the demonstrations (``sac.demo_batch_fraction``; 0 without demos)."""
        return int(round(self.cfg.sac.demo_batch_fraction * self.cfg.sac.batch_size)) if self.demo_rows else 0

    def sac_batch(self) -> dict:
        """A SAC batch: its first :meth:`demo_share` rows from the demonstration rows, the rest uniform; with
        demonstration rows, ``demo_action`` holds the expert's own action of each (the clone target)."""
        n, k = self.cfg.sac.batch_size, self.demo_share()
        idx = self.replay.sample_indices(self.rng, n - k)
        if not k:
            return self.replay.batch(idx)
        pick = self.rng.integers(0, len(self.demo_rows), size=k)
        batch = self.replay.batch(np.concatenate([np.asarray(self.demo_rows)[pick], idx]))
        if len(self._demo_action_array) != len(self.demo_actions):  # rebuilt only when demonstrations were added
            self._demo_action_array = np.asarray(self.demo_actions, dtype=np.float32).reshape(-1, ACTION_SPEC.size)
        batch["demo_action"] = self._demo_action_array[pick]
        return batch

    # ------------------------------------------------------------- the loop
    def current_task(self, episode_index: int) -> int:
        if self.cfg.run.regime == "lifelong":
            return self.phase
        return episode_index % len(self.tasks)

    def train(self, progress: Callable[["Trainer"], None] | None = None, stop_after: int | None = None) -> dict:
        """Run until the stream is done (or ``stop_after`` more env steps); returns the stream metrics."""
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        self.writer = SummaryWriter(str(self.run_dir / "tb"))
        if self.resumed_from is not None:
            self.log(f"resumed at step {self.step} (phase {self.phase}, {self.phase_step} steps into it)")
        stop_at = self.total_steps if stop_after is None else min(self.total_steps, self.step + stop_after)
        episode_index = 0
        task = self.current_task(episode_index)
        obs = self.envs[task].reset()
        last_log = self.step
        t_start, steps_start = time.time(), self.step
        try:
            while not self.done and self.step < stop_at:
                if self.phase_step == 0:
                    self.learner.reset_optimizers()
                    self.log(f"phase {self.phase}: {self._phase_name()}")
                # act
                demo_steps = self._demo_steps()
                if self.phase_step < demo_steps:  # env.expert_demo_episodes: Metaworld's scripted expert
                    expert_action = self._expert_action(task)
                    action = expert_action
                    if cfg.env.expert_demo_noise:  # DART: act beside the expert's path, clone its own action
                        action = np.clip(action + self.rng.normal(0.0, cfg.env.expert_demo_noise, action.shape),
                                         ACTION_SPEC.low, ACTION_SPEC.high).astype(np.float32)
                elif self.phase_step < demo_steps + cfg.sac.random_steps:
                    action = self.rng.uniform(ACTION_SPEC.low, ACTION_SPEC.high, ACTION_SPEC.size).astype(np.float32)
                else:
                    action = self.learner.act(obs, task, deterministic=False)
                r = self.envs[task].step(action)
                if self.phase_step < demo_steps:
                    self.demo_rows.append(self.replay.pos)
                    self.demo_actions.append(expert_action)
                self.replay.add(obs, action, r.reward, r.obs, r.terminated, task)
                obs = r.obs
                self.step += 1
                self.phase_step += 1
                if r.terminated or r.truncated:
                    episode_index += 1
                    task = self.current_task(episode_index)
                    obs = self.envs[task].reset()
                # learn
                info = {}
                if len(self.replay) >= cfg.sac.learning_starts:
                    self.update_credit += cfg.sac.updates_per_step
                    while self.update_credit >= 1.0:
                        batch = self.sac_batch()
                        demo = batch.get("demo_action")
                        info = self.learner.update_sac(
                            self.learner.to_batch(batch),
                            None if demo is None else torch.as_tensor(demo, device=self.learner.device))
                        self.update_credit -= 1.0
                        self.n_updates += 1
                    if uses_encoder(cfg.run.algorithm) and self.phase_step % cfg.vae.update_every == 0:
                        info.update(self.learner.update_vae(
                            self.learner.to_batch(self.replay.sample(self.rng, cfg.vae.batch_size))))
                if self._dpmm_due():
                    self.fit_dpmm()
                if self.step - last_log >= cfg.run.log_every and info:
                    for k, v in info.items():
                        self.writer.add_scalar(k, v, self.step)
                    self.writer.add_scalar("train/alpha_current_task", self.learner.log_alpha[task].exp().item(), self.step)
                    self.writer.add_scalar("train/steps_per_s", (self.step - steps_start) / max(time.time() - t_start, 1e-9), self.step)
                    last_log = self.step
                # evaluate / finish the phase
                phase_end = self.phase_step >= self.steps_per_phase
                if self.phase_step % cfg.eval.every == 0 or phase_end:
                    rows = self.evaluate()
                    if not phase_end:
                        self.write_results()
                    if phase_end:
                        self.matrix[:, self.phase] = [row["success"] for row in rows]
                        self.phase += 1
                        self.phase_step = 0
                        self.update_credit = 0.0
                        self.write_results()
                        if not self.done and cfg.run.regime == "lifelong":
                            task = self.phase
                            obs = self.envs[task].reset()
                if self.step % cfg.run.checkpoint_every == 0 or self.done:
                    self.save_checkpoint()
                if progress is not None:
                    progress(self)
        finally:
            self.writer.flush()
            self.writer.close()
            self.writer = None
        if self.done:
            self.save_checkpoint()
            return self.write_results()
        return {}

    def _phase_name(self) -> str:
        if self.cfg.run.regime == "lifelong":
            return self.tasks[self.phase]
        return "multitask: " + ", ".join(self.tasks)

    # ------------------------------------------------------------- results
    def write_results(self) -> dict:
        """success_matrix.csv, eval_history.csv, dpmm_history.csv, metrics.json (what is known so far)."""
        d = self.run_dir
        phases = [f"after_{self.tasks[j]}" if self.cfg.run.regime == "lifelong" else "multitask"
                  for j in range(self.n_phases)]
        with open(d / "success_matrix.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["task", *phases])
            for i, t in enumerate(self.tasks):
                w.writerow([t, *("" if np.isnan(x) else f"{x:.4f}" for x in self.matrix[i])])
        for name, rows in (("eval_history.csv", self.eval_history), ("dpmm_history.csv", self.dpmm_history)):
            if rows:
                with open(d / name, "w", newline="") as fh:
                    w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                    w.writeheader()
                    w.writerows(rows)
        done_phases = int(np.sum(~np.isnan(self.matrix[0])))
        metrics = {"algorithm": self.cfg.run.algorithm, "regime": self.cfg.run.regime, "seed": self.cfg.run.seed,
                   "tasks": self.tasks, "steps": self.step, "phases_done": done_phases,
                   "gradient_updates": self.n_updates,
                   "dpmm_K": self.dpmm.K, "dpmm_purity": self.dpmm_history[-1]["purity"] if self.dpmm_history else None}
        if done_phases:
            metrics.update(stream_metrics(self.matrix[:, :done_phases]))
            metrics["success_matrix"] = [[None if np.isnan(x) else float(x) for x in row] for row in self.matrix]
        atomic_write_text(d / "metrics.json", json.dumps(metrics, indent=2))
        return metrics

    def final_evaluation_table(self) -> dict:
        """Per task: the latest evaluation's success rate and episode count (for the exported agent)."""
        latest: dict[str, dict] = {}
        for row in self.eval_history:
            latest[row["task"]] = row
        return {t: {"success_rate": r["success"], "episodes": r["episodes"], "step": r["step"]}
                for t, r in latest.items()}


def cluster_purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Fraction of points whose cluster's majority label is their own label (1.0 = every cluster is one task)."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    if labels.size == 0:
        return float("nan")
    hit = 0
    for c in np.unique(clusters):
        members = labels[clusters == c]
        hit += np.bincount(members).max()
    return float(hit / labels.size)
