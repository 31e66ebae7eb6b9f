"""``legion-train``: train, resume and export LEGION agents.

    legion-train [--config smoke|cpu|paper|FILE] [--set section.key=value ...] [--out DIR]
                 [--resume RUN] [--device cpu|cuda] [--no-progress] [--help-config]
    legion-train --extend RUN --add-task TASK [--add-task TASK ...] [--steps-per-task N] [--out DIR]
                 [--set env.max_target_lead_m={TASK: 0.05}]   (the new tasks' per-task env settings)
    legion-train export RUN [--out DIR] [--overwrite] [--step N]
    legion-train sweep [--config C] [--seeds 0-2] [--order ORDER ...] [--algorithms A,B] [--reference]
                       [--set ...] [--out SWEEP | --resume SWEEP] [--address HOST:PORT] ...   (seeds x orders x
                       algorithms on Ray: legion_training.sweep; legion-train sweep --help)
    legion-train report SWEEP                          (rebuild a sweep's report: legion_training.sweep_report)

A run directory holds config.yaml, checkpoint.pt (atomic, every ``run.checkpoint_every``
steps), tb/ (TensorBoard), eval_history.csv, success_matrix.csv, dpmm_history.csv,
metrics.json, latent/ (z snapshots at each DPMM fit) and the PNG plots.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import NAMED_CONFIGS, ConfigError, describe, load_config

DEFAULT_OUT_ROOT = Path("runs")


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _check_device(device: str) -> None:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise CliError("--device cuda requested but no CUDA GPU is available to torch "
                           f"(torch {torch.__version__}, built with CUDA: {torch.version.cuda}); use --device cpu")


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.05)
    state = {"last": initial}

    def update(tr) -> None:
        n = tr.step - state["last"]
        if n >= 50 or tr.done:
            bar.update(n)
            state["last"] = tr.step
            succ = tr.last_success
            bar.set_postfix(phase=f"{min(tr.phase, tr.n_phases - 1) + 1}/{tr.n_phases}",
                            success="-" if succ != succ else f"{succ:.2f}", K=tr.dpmm.K, refresh=False)

    return bar, update


def train_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legion-train", description="Train a LEGION agent on Metaworld v3 tasks.",
                                epilog="export: legion-train export RUN [--out DIR] [--overwrite] writes the frozen "
                                       "agent of a run (see legion-train export --help); sweep: legion-train sweep "
                                       "... trains seeds x task orders x algorithms on Ray (see legion-train sweep "
                                       "--help); report: legion-train report SWEEP rebuilds a sweep's report")
    p.add_argument("--config", default="smoke", help=f"one of {NAMED_CONFIGS} or a YAML file (default: smoke)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (YAML syntax), repeatable, e.g. --set sac.batch_size=256; with "
                        "--extend only the new tasks' entries of env.instructions, env.reward_versions, "
                        "env.max_target_lead_m, e.g. --set 'env.max_target_lead_m={handle-press-v3: 0.05}'")
    p.add_argument("--out", help="run directory (default: runs/<config>-<algorithm>-s<seed>-<time>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this directory from its last checkpoint")
    p.add_argument("--extend", metavar="RUN", help="continue the finished lifelong run RUN with more tasks "
                   "(--add-task) in a new run directory (default: RUN+TASK...); RUN is left untouched")
    p.add_argument("--add-task", dest="add_tasks", action="append", default=[], metavar="TASK",
                   help="with --extend: a Metaworld v3 task to learn next, repeatable, in stream order")
    p.add_argument("--steps-per-task", type=int, metavar="N",
                   help="with --extend: env steps of each new task (default: the run's run.steps_per_task)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="override run.device")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--help-config", action="store_true", help="print every hyperparameter with its meaning")
    args = p.parse_args(argv)
    if args.help_config:
        print(describe())
        return 0

    from .lifelong import Trainer, extend_run

    if (args.add_tasks or args.steps_per_task is not None) and not args.extend:
        raise CliError("--add-task and --steps-per-task go with --extend RUN")
    if args.extend:
        if args.resume:
            raise CliError("--extend starts a new run from RUN; --resume cannot be combined with it")
        src = Path(args.extend)
        run_dir = Path(args.out) if args.out else src.with_name(src.name + "+" + "+".join(args.add_tasks))
        extend_run(src, run_dir, args.add_tasks, log=lambda s: print(s, flush=True),
                   steps_per_task=args.steps_per_task, overrides=args.overrides)
        args.resume, args.overrides = str(run_dir), []
    if args.resume:
        if args.overrides:
            raise CliError("--resume continues with the run's own config; --set cannot be combined with it")
        run_dir = Path(args.resume)
        if args.device:
            _check_device(args.device)
        trainer = Trainer(None, run_dir, resume=True, device=args.device)
        _check_device(trainer.cfg.run.device)
    else:
        cfg = load_config(args.config, args.overrides)
        if args.device:
            cfg.run.device = args.device
        _check_device(cfg.run.device)
        name = Path(args.config).stem
        run_dir = Path(args.out) if args.out else DEFAULT_OUT_ROOT / (
            f"{name}-{cfg.run.algorithm}-s{cfg.run.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (run_dir / "checkpoint.pt").exists():
            raise CliError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        trainer = Trainer(cfg, run_dir)
    print(f"run directory: {run_dir}", flush=True)
    if trainer.done:
        print("this run is already complete")
    else:
        bar, update = _progress_bar(trainer.total_steps, trainer.step, not args.no_progress)
        log = bar.write if bar is not None else (lambda s: print(s, flush=True))
        trainer.log = log
        t0 = time.time()
        try:
            metrics = trainer.train(progress=update)
        finally:
            if bar is not None:
                bar.close()
        print(f"finished {trainer.step} steps in {time.time() - t0:.0f} s; average success "
              f"{metrics.get('average_success', float('nan')):.3f}, forgetting {metrics.get('forgetting', 0):.3f}")
    from .plots import plot_run

    for path in plot_run(run_dir):
        print(f"plot: {path}")
    return 0


def export_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legion-train export", description="Write the frozen agent of a run.")
    p.add_argument("run", help="run directory (holds checkpoint.pt)")
    p.add_argument("--out", help="agent directory (default: RUN/agent)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing agent directory")
    p.add_argument("--step", type=int, help="export the checkpoint of this env step (runs with run.keep_checkpoints; "
                                            "default: the last checkpoint)")
    args = p.parse_args(argv)
    from .export import export_run

    try:
        path = export_run(args.run, args.out, overwrite=args.overwrite, step=args.step)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"legion-train export: {exc}", file=sys.stderr)
        return 2
    print(f"agent written: {path}")
    return 0


def main(args: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    try:
        if argv and argv[0] == "export":
            return export_main(argv[1:])
        if argv and argv[0] in ("sweep", "report"):
            from .sweep import SweepError, sweep_main
            from .sweep_report import report_main

            try:
                return sweep_main(argv[1:]) if argv[0] == "sweep" else report_main(argv[1:])
            except SweepError as exc:
                raise CliError(str(exc)) from None
        return train_main(argv)
    except (CliError, ConfigError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"legion-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("legion-train: interrupted (the last checkpoint is kept; continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
