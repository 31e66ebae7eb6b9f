"""Speed of the iiwa training environment against Metaworld's own Sawyer environment, in one run.

1. Env steps per second: ``legion_training.iiwa_env.IiwaTask`` (the task's scene with the iiwa, each step through
   the bridge's cores: sim2real's IK and envelope, one policy period of physics, real2sim's observation,
   Metaworld's reward on the cell) vs ``legion_training.envs.MetaworldTask`` (raw Metaworld v3), same task, same
   uniform random actions (``--actions expert``: Metaworld's scripted expert's), 150-step episodes, resets
   included; rounds alternate so machine load hits both.
   Goal of issue 18: ratio iiwa / raw >= 0.3.
2. Training throughput: gradient updates per second of ``legion-train``'s Trainer on the ``cpu`` config
   (one update per env step, its network and batch sizes) with ``env.embodiment`` iiwa7 vs sawyer, timed after
   learning started (env stepping, replay and updates), alternating rounds.

    python bench/bench_iiwa_env.py [--tasks reach-v3,push-v3] [--steps 1500] [--updates 300] [--rounds 2]

Prints one line per measurement and the ratios (best round of each side).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

#: Goal of issue 18 for the env step rate (iiwa / raw Metaworld).
TARGET_RATIO = 0.3
EPISODE = 150
WARMUP_UPDATES = 30


def steps_per_s(env, steps: int, rng: np.random.Generator, expert=None) -> float:
    """Env steps per second over ``steps`` steps (episodes of EPISODE, resets timed): uniform random actions, or
    ``expert``'s (Metaworld's scripted expert reading the env's 39-d observation; its own time is included)."""
    t0 = time.perf_counter()
    env.reset()
    for k in range(steps):
        a = rng.uniform(-1.0, 1.0, 4) if expert is None else np.clip(expert.get_action(env.obs39), -1.0, 1.0)
        r = env.step(a)
        if r.truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def trainer(embodiment: str, task: str, threads: int):
    from legion_training.config import load_config
    from legion_training.lifelong import Trainer

    cfg = load_config("cpu", [f"env.embodiment={embodiment}", f"env.tasks=[{task}]", f"run.torch_threads={threads}",
                              "run.checkpoint_every=10000000", "eval.every=10000000", "dpmm.first_fit=10000000",
                              "run.log_every=10000000", "sac.replay_capacity=100000"])
    return Trainer(cfg, tempfile.mkdtemp(prefix=f"bench-iiwa-env-{embodiment}-"), log=lambda s: None)


def updates_per_s(tr, updates: int) -> float:
    start = tr.cfg.sac.learning_starts
    if tr.step < start:
        tr.train(stop_after=start - tr.step + WARMUP_UPDATES)
    n0, t0 = tr.n_updates, time.perf_counter()
    tr.train(stop_after=updates)
    return (tr.n_updates - n0) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="reach-v3,push-v3", help="comma-separated tasks for the env step rate")
    ap.add_argument("--steps", type=int, default=1500, help="env steps per measurement")
    ap.add_argument("--updates", type=int, default=300, help="timed gradient updates per training measurement")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (training)")
    ap.add_argument("--robot", default="iiwa7", choices=("iiwa7", "iiwa14"))
    ap.add_argument("--no-train", action="store_true", help="only the env step rate")
    ap.add_argument("--actions", default="random", choices=("random", "expert"),
                    help="env step rate with uniform random actions or Metaworld's scripted expert's")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    from legion_training.envs import MetaworldTask
    from legion_training.iiwa_env import IiwaTask

    torch.set_num_threads(a.threads)
    l1, l5, _ = os.getloadavg()
    print(f"bench_iiwa_env: {a.robot} env vs raw Metaworld v3; {a.steps} {a.actions}-action steps x {a.rounds} rounds per "
          f"task; load average {l1:.2f} {l5:.2f} on {os.cpu_count()} cores", flush=True)
    ratios = {}
    for task in [t for t in a.tasks.split(",") if t]:
        envs = {"raw": MetaworldTask(task, "compact12", seed=0, episode_length=EPISODE),
                a.robot: IiwaTask(task, "compact12", robot=a.robot, seed=0, episode_length=EPISODE)}
        best = {k: 0.0 for k in envs}
        for r in range(a.rounds):
            for name, env in envs.items():
                expert = None
                if a.actions == "expert":
                    from legion_training.experts import expert_for
                    expert = expert_for(task)
                sps = steps_per_s(env, a.steps, np.random.default_rng(r), expert)
                best[name] = max(best[name], sps)
                print(f"  {task} round {r + 1}: {name:<6} {sps:8.0f} env steps/s", flush=True)
        ratios[task] = best[a.robot] / best["raw"]
        print(f"{task}: raw {best['raw']:.0f}/s, {a.robot} {best[a.robot]:.0f}/s: ratio {ratios[task]:.2f} "
              f"(goal >= {TARGET_RATIO})", flush=True)
    if not a.no_train:
        task = a.tasks.split(",")[0]
        trs = {"sawyer": trainer("sawyer", task, a.threads), a.robot: trainer(a.robot, task, a.threads)}
        best = {k: 0.0 for k in trs}
        for r in range(a.rounds):
            for name, tr in trs.items():
                ups = updates_per_s(tr, a.updates)
                best[name] = max(best[name], ups)
                print(f"  train {task} round {r + 1}: {name:<6} {ups:7.1f} updates/s", flush=True)
        print(f"training ({task}, cpu config, 1 update per env step): sawyer {best['sawyer']:.1f}/s, "
              f"{a.robot} {best[a.robot]:.1f}/s: ratio {best[a.robot] / best['sawyer']:.2f}")
    print("env step ratios: " + ", ".join(f"{t} {r:.2f}" for t, r in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
