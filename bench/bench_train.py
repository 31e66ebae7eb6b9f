"""Training throughput: gradient updates per second of legion-train vs Stable-Baselines3 SAC.

Same machine, same process, same env (reach-v3 through legion_training.envs, 150-step episodes,
compact12 observation), the paper's shapes: batch 512, actor and critics 4 x 300 (SB3:
net_arch [300]*4 for actor and both critics), one gradient update per env step, the same
number of torch threads. The timed window starts after learning has started and a warm-up,
so both include env stepping, replay sampling and the updates, nothing else. legion-train
runs the full LEGION update (twin critics, actor, per-task temperature, the 3 x 400 encoder
giving z for s and s', and a VAE update every 50 steps); the plain-SAC variant
(``run.algorithm=sac``, no encoder) is printed too, as the like-for-like comparison.
Measurements alternate (ours, SB3, ours, SB3, ...) so that load from other processes on a
shared machine hits both sides alike; the best round of each is reported.

    python bench/bench_train.py [--updates 200] [--rounds 2] [--threads 1]

Prints one line per measurement and ``ratio legion/sb3 = X`` (goal >= 1.0).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from legion_training.config import load_config  # noqa: E402
from legion_training.envs import MetaworldTask  # noqa: E402
from legion_training.lifelong import Trainer  # noqa: E402

TASK = "reach-v3"
BATCH = 512
WIDTH = 300
DEPTH = 4
WARMUP_UPDATES = 30


class GymTask(gym.Env):
    """The same MetaworldTask as a gymnasium env for SB3."""

    def __init__(self, seed: int = 0) -> None:
        self.task = MetaworldTask(TASK, "compact12", seed=seed, episode_length=150)
        n = self.task.obs_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def reset(self, *, seed=None, options=None):
        return self.task.reset(), {}

    def step(self, action):
        r = self.task.step(action)
        return r.obs, r.reward, r.terminated, r.truncated, {"is_success": r.success}


def legion_trainer(algorithm: str, learning_starts: int, threads: int) -> Trainer:
    cfg = load_config("paper", [
        f"env.tasks=[{TASK}]", f"run.algorithm={algorithm}", f"run.torch_threads={threads}",
        f"sac.batch_size={BATCH}", f"sac.learning_starts={learning_starts}", f"sac.random_steps={learning_starts}",
        f"net.actor_hidden={[WIDTH] * DEPTH}", f"net.critic_hidden={[WIDTH] * DEPTH}",
        "sac.replay_capacity=100000", "run.checkpoint_every=10000000", "eval.every=10000000",
        "dpmm.first_fit=10000000", "run.log_every=10000000"])
    return Trainer(cfg, tempfile.mkdtemp(prefix="bench-legion-"), log=lambda s: None)


def time_legion(trainer: Trainer, updates: int) -> float:
    """Updates/s over ``updates`` env steps (one update each) after a warm-up."""
    start = trainer.cfg.sac.learning_starts
    if trainer.step < start:
        trainer.train(stop_after=start - trainer.step + WARMUP_UPDATES)
    n0, t0 = trainer.n_updates, time.perf_counter()
    trainer.train(stop_after=updates)
    return (trainer.n_updates - n0) / (time.perf_counter() - t0)


class Sb3Bench:
    def __init__(self, learning_starts: int, threads: int) -> None:
        from stable_baselines3 import SAC

        torch.set_num_threads(threads)
        self.model = SAC("MlpPolicy", GymTask(), batch_size=BATCH, learning_starts=learning_starts,
                         buffer_size=100_000, train_freq=1, gradient_steps=1, gamma=0.99, tau=0.005,
                         learning_rate=3e-4, policy_kwargs={"net_arch": [WIDTH] * DEPTH}, seed=0, verbose=0,
                         device="cpu")
        self.model.learn(total_timesteps=learning_starts + WARMUP_UPDATES)

    def time(self, updates: int) -> float:
        n0 = self.model._n_updates
        t0 = time.perf_counter()
        self.model.learn(total_timesteps=updates, reset_num_timesteps=False)
        return (self.model._n_updates - n0) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--updates", type=int, default=200, help="timed gradient updates per measurement")
    p.add_argument("--rounds", type=int, default=2, help="alternating measurement rounds")
    p.add_argument("--threads", type=int, default=1, help="torch threads for both")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    starts = BATCH + 8
    print(f"bench_train: {TASK}, batch {BATCH}, actor/critics {DEPTH}x{WIDTH}, 1 update per env step, "
          f"{a.updates} timed updates x {a.rounds} rounds, torch threads {a.threads}", flush=True)
    legion, sac, sb3 = (legion_trainer("legion", starts, a.threads), legion_trainer("sac", starts, a.threads),
                        Sb3Bench(starts, a.threads))
    best = {"legion": 0.0, "legion-sac": 0.0, "sb3": 0.0}
    for r in range(a.rounds):
        for name, fn in (("legion", lambda: time_legion(legion, a.updates)), ("sb3", lambda: sb3.time(a.updates)),
                         ("legion-sac", lambda: time_legion(sac, a.updates))):
            ups = fn()
            best[name] = max(best[name], ups)
            print(f"  round {r + 1}: {name:<11} {ups:7.2f} updates/s", flush=True)
    print(f"best: legion (full LEGION update) {best['legion']:.2f}/s, legion-train plain SAC "
          f"{best['legion-sac']:.2f}/s, SB3 SAC {best['sb3']:.2f}/s")
    print(f"ratio legion/sb3 = {best['legion'] / best['sb3']:.2f}   (plain SAC like-for-like: "
          f"{best['legion-sac'] / best['sb3']:.2f}; goal >= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
