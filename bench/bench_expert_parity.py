"""Metaworld's scripted experts on the iiwa training environment vs on Metaworld's own Sawyer.

Run: ``.venv/bin/python bench/bench_expert_parity.py [--tasks reach-v3,push-v3] [--episodes 10] [--seeds 0]
[--steps 150] [--robot iiwa7] [--control-period-s 0.05]``.

Per task, the same expert (``metaworld.policies.<Task>V3Policy``, which reads the 39-d observation by index),
the same MT1 variations (``metaworld.MT1(task, seed)``'s train tasks 0..episodes-1), the same episode length:

* raw: ``legion_training.envs.MetaworldTask`` (Metaworld v3, the Sawyer through its mocap);
* iiwa: ``legion_training.iiwa_env.IiwaTask`` (the task's scene with the iiwa, every step through the bridge's
  cores, Metaworld's own success flag computed on the iiwa).

An episode succeeds if ``info['success']`` was ever 1 (the trainer's rule). Prints the table (task, raw
success, iiwa success, ratio iiwa / raw, episodes, seeds) and the tasks under the goal ratio (0.9).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

#: Goal of issue 18: the experts on the iiwa reach at least this fraction of their raw Metaworld success.
TARGET_RATIO = 0.9
MT10 = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "drawer-open-v3", "drawer-close-v3",
        "button-press-topdown-v3", "peg-insert-side-v3", "window-open-v3", "window-close-v3")


from legion_training.experts import expert_for  # noqa: E402  (re-exported for the tests)


def run(env, expert, variations, steps: int) -> tuple[list[bool], list[int | None], int]:
    """Success per episode, the first successful step, and the steps run (the expert reads the 39-d obs)."""
    ok, first, n = [], [], 0
    for v in variations:
        obs = env.reset(v)
        hit = None
        for k in range(steps):
            r = env.step(expert.get_action(obs))
            obs = r.obs
            n += 1
            if r.success and hit is None:
                hit = k
                break  # ever succeeded: the episode is decided
        ok.append(hit is not None)
        first.append(hit)
    return ok, first, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=",".join(MT10), help="comma-separated Metaworld v3 tasks (default: MT10)")
    ap.add_argument("--episodes", type=int, default=10, help="episodes (MT1 variations) per task and seed")
    ap.add_argument("--seeds", default="0", help="comma-separated MT1 seeds")
    ap.add_argument("--steps", type=int, default=150, help="episode length (the trainer's: 150)")
    ap.add_argument("--robot", default="iiwa7", choices=("iiwa7", "iiwa14"))
    ap.add_argument("--control-period-s", type=float, default=0.0,
                    help="the iiwa env's policy period [s] (default 0: the real arm's, as the trainer's)")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import metaworld

    from legion_training.envs import MetaworldTask
    from legion_training.iiwa_env import IiwaTask, iiwa_control_period

    tasks = [t for t in a.tasks.split(",") if t]
    seeds = [int(s) for s in a.seeds.split(",") if s]
    period = iiwa_control_period(a.robot, a.control_period_s)
    print(f"experts on raw Metaworld v3 (Sawyer) vs the {a.robot} training environment at {period * 1000:g} ms; "
          f"{a.episodes} episodes x seeds {seeds} per task, {a.steps} steps; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
          flush=True)
    rows = []
    for task in tasks:
        raw_ok, iiwa_ok, iiwa_first, t_raw, t_iiwa = [], [], [], 0.0, 0.0
        for seed in seeds:
            bench = metaworld.MT1(task, seed=seed)
            variations = list(range(min(a.episodes, len(bench.train_tasks))))
            raw = MetaworldTask(task, "metaworld39", seed=seed, episode_length=a.steps, normalize_reward=False,
                                benchmark=bench)
            t0 = time.perf_counter()
            ok, _, _ = run(raw, expert_for(task), variations, a.steps)
            t_raw += time.perf_counter() - t0
            raw_ok += ok
            iiwa = IiwaTask(task, "metaworld39", robot=a.robot, seed=seed, episode_length=a.steps,
                            normalize_reward=False, benchmark=bench, control_period_s=period)
            t0 = time.perf_counter()
            ok, first, _ = run(iiwa, expert_for(task), variations, a.steps)
            t_iiwa += time.perf_counter() - t0
            iiwa_ok += ok
            iiwa_first += first
        r, i = sum(raw_ok) / len(raw_ok), sum(iiwa_ok) / len(iiwa_ok)
        ratio = i / r if r > 0 else float("nan")
        hits = sorted(f for f in iiwa_first if f is not None)
        rows.append((task, r, i, ratio, len(raw_ok)))
        print(f"  {task}: raw {sum(raw_ok)}/{len(raw_ok)} ({t_raw:.0f} s), {a.robot} {sum(iiwa_ok)}/{len(iiwa_ok)} "
              f"({t_iiwa:.0f} s; median first success at step {hits[len(hits) // 2] if hits else '-'})", flush=True)
    print(f"\n{'task':26s} {'raw':>6s} {a.robot:>6s} {'ratio':>6s} {'>=' + str(TARGET_RATIO):>6s} {'episodes':>8s} seeds")
    print("-" * 72)
    for task, r, i, ratio, n in rows:
        met = "n/a" if ratio != ratio else ("yes" if ratio >= TARGET_RATIO else "NO")
        print(f"{task:26s} {r:6.2f} {i:6.2f} {ratio:6.2f} {met:>6s} {n:8d} {','.join(map(str, seeds))}")
    short = [t for t, _, _, ratio, _ in rows if ratio == ratio and ratio < TARGET_RATIO]
    print(f"tasks under {TARGET_RATIO}x: {', '.join(short) if short else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
