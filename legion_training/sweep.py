"""``legion-train sweep``: the paper's evaluation protocol as a grid of runs on Ray.

    legion-train sweep --config cpu --seeds 0,1,2 --order curriculum --order reverse \\
                       --algorithms legion,sac --set run.steps_per_task=20000 --out runs/sweep-cpu
    legion-train sweep --resume runs/sweep-cpu        # the same sweep again: finished runs are skipped
    legion-train report runs/sweep-cpu                # rebuild report.md / report.csv / the plots

The grid is seeds x task orders x algorithms (+ optional single-task ``sac`` reference runs for
forward transfer, ``--reference``), all on one config with the same ``--set`` overrides. Every
run is an ordinary run folder (``SWEEP/runs/<algorithm>/<order>/s<seed>``, the same files as
``legion-train --out``), trained by one Ray task (Ray Core remote function) that asks for
``--cpus-per-run`` CPUs and ``--gpus-per-run`` GPUs:

* a run folder with ``sweep_status.json`` (status ``finished``) is done and never started again;
* a run folder with ``checkpoint.pt`` but no such status (worker lost, node preempted, Ctrl-C, a
  killed driver) is continued from that checkpoint, exactly as ``legion-train --resume`` does;
  Ray itself also retries a task whose worker died (``--max-retries``), and the retry resumes;
* ``attempts.jsonl`` in each run folder logs every attempt (start step, resumed or not, pid,
  host, end) and ``phases.log`` every phase finished (task, step): what a resume did is visible.

Ray is only imported here (``.importlinter``: nothing else in legion_bridge, legion_policy or
legion_training imports it) and only when a sweep runs; the grid, the run folders and the
report (:mod:`legion_training.sweep_report`) are plain Python. ``--address`` joins a running
cluster (``ray start --head`` on one node, ``ray start --address HEAD:6379`` on the others;
every node needs this checkout and its venv, and SWEEP must be a path every node sees, e.g. a
shared filesystem); without it a local Ray is started on this machine, sized to its cores.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .config import ALGORITHMS, NAMED_CONFIGS, ConfigError, load_config

SWEEP_FILE = "sweep.json"
STATUS_FILE = "sweep_status.json"
ATTEMPTS_FILE = "attempts.jsonl"
PHASES_FILE = "phases.log"
TRAIN_LOG = "train.log"
#: Algorithm of the single-task reference runs (Continual World's reference: SAC trained on the task alone).
REFERENCE_ALGORITHM = "sac"
#: Test-only hook: ``RUN_ID:STEP`` makes the worker training RUN_ID SIGKILL itself right after the first
#: checkpoint at or beyond STEP of an attempt that started from scratch (a worker lost mid-run, for real).
KILL_HOOK_ENV = "LEGION_SWEEP_TEST_KILL"
ORDER_HELP = ("curriculum (the config's env.tasks order, after --set), reverse, random or random:SEED "
              "(a permutation drawn with its own seed, default 0), or an explicit comma-separated task list "
              "(e.g. push-v3,reach-v3)")


class SweepError(Exception):
    """A user error of ``legion-train sweep``: printed as one line, exit status 2."""


# ------------------------------------------------------------------ the grid


@dataclass(frozen=True)
class Order:
    """A task order of the stream: a label (folder name) and the tasks in training order."""

    label: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep: what to train and where."""

    run_id: str                 # "<algorithm>/<order label>/s<seed>" (also its folder under SWEEP/runs)
    algorithm: str
    order: str
    seed: int
    tasks: tuple[str, ...]
    overrides: tuple[str, ...]  # the sweep's --set texts, then the run's own (tasks, algorithm, regime, seed)
    reference: bool = False     # a single-task reference run (forward transfer)


@dataclass
class Sweep:
    """The whole grid as given on the command line (saved as SWEEP/sweep.json)."""

    config: str
    overrides: list[str]
    seeds: list[int]
    orders: list[str]           # the --order texts as given
    algorithms: list[str]
    reference: bool = False
    device: str | None = None
    runs: list[RunSpec] = field(default_factory=list)

    def grid_key(self) -> dict:
        """What identifies the sweep: a second invocation must give the same (resources may differ)."""
        return {"config": self.config, "overrides": list(self.overrides), "seeds": list(self.seeds),
                "orders": list(self.orders), "algorithms": list(self.algorithms), "reference": self.reference,
                "device": self.device}


def short_task(task: str) -> str:
    return task[:-3] if task.endswith("-v3") else task


def resolve_order(spec: str, tasks: Sequence[str], known: Sequence[str] | None = None) -> Order:
    """Turn an ``--order`` text into an :class:`Order` over the config's ``tasks`` (see :data:`ORDER_HELP`)."""
    s = spec.strip()
    tasks = list(tasks)
    if s == "curriculum":
        return Order("curriculum", tuple(tasks))
    if s == "reverse":
        return Order("reverse", tuple(reversed(tasks)))
    m = re.fullmatch(r"random(?::(\d+))?", s)
    if m:
        import numpy as np

        seed = int(m.group(1) or 0)
        perm = np.random.default_rng(seed).permutation(len(tasks))
        return Order(f"random{seed}", tuple(tasks[i] for i in perm))
    names = [t.strip() for t in s.split(",") if t.strip()]
    if not names or not all(re.fullmatch(r"[a-z0-9-]+-v\d", t) for t in names):
        raise SweepError(f"--order {spec!r}: expected {ORDER_HELP}")
    if len(set(names)) != len(names):
        raise SweepError(f"--order {spec!r}: a task appears twice")
    if known is not None:
        bad = [t for t in names if t not in known]
        if bad:
            raise SweepError(f"--order {spec!r}: unknown Metaworld v3 task {bad[0]!r}")
    return Order("list-" + "+".join(short_task(t) for t in names), tuple(names))


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-2"`` (or a mix, ``"0-2,7"``) -> ``[0, 1, 2]``."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise SweepError(f"--seeds {text!r}: expected non-negative integers, comma-separated, or ranges like 0-2")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds {text!r}: a seed appears twice")
    return seeds


def parse_algorithms(text: str) -> list[str]:
    algs = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in algs if a not in ALGORITHMS]
    if not algs or bad:
        raise SweepError(f"--algorithms {text!r}: unknown algorithm {bad[0] if bad else ''!r}; "
                         f"expected a comma-separated list of {', '.join(ALGORITHMS)}")
    if len(set(algs)) != len(algs):
        raise SweepError(f"--algorithms {text!r}: an algorithm appears twice")
    return algs


def build_grid(config: str, overrides: Sequence[str], seeds: Sequence[int], orders: Sequence[str],
               algorithms: Sequence[str], reference: bool = False, device: str | None = None,
               known_tasks: Sequence[str] | None = None) -> Sweep:
    """Every run of the sweep, each config validated (a bad ``--set`` fails here, before Ray starts).

    ``mtsac`` trains all tasks at once (``run.regime=multitask``): the order does not apply, so it
    appears once per seed under the order ``multitask`` (tasks in the config's order). The
    single-task references (``reference``) are ``sac`` runs on each task of any stream, per seed.
    """
    base = load_config(config, overrides)
    sweep = Sweep(config=config, overrides=list(overrides), seeds=list(seeds), orders=list(orders),
                  algorithms=list(algorithms), reference=reference, device=device)
    resolved = [resolve_order(o, base.env.tasks, known_tasks) for o in orders]
    labels = [o.label for o in resolved]
    if len(set(labels)) != len(labels):
        raise SweepError(f"--order: two orders resolve to the same label {labels}")
    runs: list[RunSpec] = []

    def add(alg: str, order: Order, seed: int, regime: str, ref: bool = False) -> None:
        own = (f"env.tasks=[{','.join(order.tasks)}]", f"run.algorithm={alg}", f"run.regime={regime}",
               f"run.seed={seed}")
        cfg = load_config(config, [*overrides, *own])   # validated now
        if device:
            cfg.run.device = device
        top = "reference" if ref else alg
        runs.append(RunSpec(f"{top}/{order.label}/s{seed}", alg, order.label, seed, tuple(order.tasks),
                            (*overrides, *own), ref))

    for alg in algorithms:
        for seed in seeds:
            if alg == "mtsac":
                add(alg, Order("multitask", tuple(base.env.tasks)), seed, "multitask")
                continue
            for order in resolved:
                add(alg, order, seed, "lifelong")
    if reference:
        stream_tasks: list[str] = []
        for order in resolved:
            stream_tasks += [t for t in order.tasks if t not in stream_tasks]
        for task in stream_tasks:
            for seed in seeds:
                add(REFERENCE_ALGORITHM, Order(short_task(task), (task,)), seed, "lifelong", ref=True)
    sweep.runs = runs
    return sweep


def save_sweep(sweep: Sweep, sweep_dir: Path) -> None:
    data = sweep.grid_key()
    data["runs"] = [asdict(r) for r in sweep.runs]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tmp = sweep_dir / (SWEEP_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, sweep_dir / SWEEP_FILE)


def load_sweep_args(sweep_dir: Path) -> dict:
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        raise SweepError(f"--resume {sweep_dir}: no {SWEEP_FILE} there (not a sweep folder)")
    return json.loads(path.read_text())


# ------------------------------------------------------------------ run folders


def run_dir(sweep_dir: Path, spec: RunSpec) -> Path:
    return sweep_dir / "runs" / spec.run_id


def run_state(path: Path) -> str:
    """``finished`` (never started again), ``partial`` (a checkpoint to resume from) or ``new``."""
    status = path / STATUS_FILE
    if status.is_file():
        try:
            if json.loads(status.read_text()).get("status") == "finished":
                return "finished"
        except json.JSONDecodeError:
            pass
    return "partial" if (path / "checkpoint.pt").is_file() else "new"


def _append_line(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def train_one(spec: RunSpec, folder: str, config: str, device: str | None = None,
              kill_hook: str | None = None) -> dict:
    """Train (or continue) one run of the sweep in ``folder``; returns a summary of the attempt.

    Plain Python: the Ray task below only calls this. A run with a checkpoint resumes from it
    (``Trainer(..., resume=True)``); otherwise it starts from the config and the spec's overrides.
    """
    from .lifelong import Trainer

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / "run_spec.json").write_text(json.dumps(asdict(spec), indent=2))
    log_fh = open(path / TRAIN_LOG, "a")

    def log(text: str) -> None:
        log_fh.write(text + "\n")
        log_fh.flush()

    resumed = (path / "checkpoint.pt").is_file()
    if resumed:
        trainer = Trainer(None, path, resume=True, device=device, log=log)
    else:
        cfg = load_config(config, spec.overrides)
        if device:
            cfg.run.device = device
        trainer = Trainer(cfg, path, log=log)
    start_step, t0 = trainer.step, time.time()
    attempt = {"event": "start", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid(),
               "host": socket.gethostname(), "start_step": start_step, "resumed": resumed,
               "total_steps": trainer.total_steps}
    _append_line(path / ATTEMPTS_FILE, json.dumps(attempt))
    kill_at = None
    if kill_hook and not resumed:
        hook_id, _, hook_step = kill_hook.rpartition(":")
        if hook_id == spec.run_id:
            kill_at = int(hook_step)
    state = {"phase": trainer.phase}
    every = trainer.cfg.run.checkpoint_every

    def progress(tr) -> None:
        while state["phase"] < tr.phase:   # a phase just ended (its evaluation is in the matrix)
            done = state["phase"]
            name = tr.tasks[done] if tr.cfg.run.regime == "lifelong" else "multitask"
            _append_line(path / PHASES_FILE, f"phase {done} {name} finished at step {tr.step}")
            state["phase"] += 1
        if kill_at is not None and tr.step >= kill_at and tr.step % every == 0:
            log(f"test hook {KILL_HOOK_ENV}: SIGKILL at step {tr.step} (checkpoint written)")
            log_fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    metrics = {} if trainer.done else trainer.train(progress=progress)
    if not metrics:
        metrics = json.loads((path / "metrics.json").read_text())
    from .plots import plot_run

    plot_run(path)
    summary = {"event": "end", "run_id": spec.run_id, "start_step": start_step, "resumed": resumed,
               "steps": trainer.step, "wall_s": round(time.time() - t0, 1),
               "average_success": metrics.get("average_success"), "forgetting": metrics.get("forgetting"),
               "host": socket.gethostname()}
    _append_line(path / ATTEMPTS_FILE, json.dumps(summary))
    status = path / STATUS_FILE
    tmp = status.with_name(STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps({"status": "finished", **summary}, indent=2))
    os.replace(tmp, status)
    log_fh.close()
    return summary


# ------------------------------------------------------------------ Ray (the thin part)


def check_address(address: str) -> str:
    """``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` (Ray Client); anything else is a one-line error."""
    a = address.strip()
    if a == "auto" or re.fullmatch(r"(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", a):
        port = int(a.rsplit(":", 1)[1]) if a != "auto" else 1
        if 0 < port < 65536:
            return a
    raise SweepError(f"--address {address!r}: expected auto, HOST:PORT (a running Ray head, e.g. 10.0.0.5:6379) "
                     "or ray://HOST:PORT (Ray Client)")


def probe_address(address: str) -> None:
    """Fail fast (one line) when nothing listens at HOST:PORT: ray.init retries an unreachable head for minutes."""
    if address == "auto":
        return
    host, port = address.removeprefix("ray://").rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise SweepError(f"--address {address}: nothing listens there ({exc.strerror or exc}); "
                         "start the head with 'ray start --head' or check HOST:PORT") from None


def start_ray(address: str | None, num_cpus: int | None, num_gpus: int | None, temp_dir: str | None) -> None:
    import ray

    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
              "configure_logging": True}
    if address:
        probe_address(address)
        try:
            ray.init(address=address, **common)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError... all mean "no cluster there"
            raise SweepError(f"--address {address}: cannot join a Ray cluster there "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        return
    if temp_dir:
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus, _temp_dir=temp_dir,
             object_store_memory=256 * 1024 ** 2, **common)


def run_sweep(sweep: Sweep, sweep_dir: Path, *, address: str | None = None, num_cpus: int | None = None,
              num_gpus: int | None = None, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
              max_retries: int = 2, temp_dir: str | None = None, progress: bool = True,
              print_fn: Callable[[str], None] = print) -> dict:
    """Train every unfinished run of ``sweep`` as a Ray task, then write the report; returns counts."""
    import ray

    from .sweep_report import write_report

    todo, skipped = [], 0
    for spec in sweep.runs:
        state = run_state(run_dir(sweep_dir, spec))
        if state == "finished":
            skipped += 1
            print_fn(f"[{spec.run_id}] already finished: not repeated")
        else:
            todo.append(spec)
    counts = {"runs": len(sweep.runs), "skipped": skipped, "finished": 0, "failed": 0}
    if todo:
        start_ray(address, num_cpus, num_gpus, temp_dir)
        try:
            remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
                                max_calls=1)(train_one)
            kill_hook = os.environ.get(KILL_HOOK_ENV)
            pending = {}
            for spec in todo:
                state = run_state(run_dir(sweep_dir, spec))
                ref = remote.remote(spec, str(run_dir(sweep_dir, spec).resolve()), sweep.config, sweep.device, kill_hook)
                pending[ref] = spec
                print_fn(f"[{spec.run_id}] queued ({'resumes from its checkpoint' if state == 'partial' else 'new'})")
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(sweep.runs), initial=skipped, unit="run", dynamic_ncols=True, desc="sweep")
            out = bar.write if bar is not None else print_fn
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                spec = pending.pop(ready[0])
                try:
                    s = ray.get(ready[0])
                    counts["finished"] += 1
                    how = f"resumed at step {s['start_step']}" if s["resumed"] else "from scratch"
                    out(f"[{spec.run_id}] finished {s['steps']} steps in {s['wall_s']:.0f} s ({how}); "
                        f"average success {s['average_success']:.3f}, forgetting {s['forgetting']:.3f}")
                except Exception as exc:  # a lost worker (after Ray's retries), an error inside the run
                    counts["failed"] += 1
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    out(f"[{spec.run_id}] FAILED ({type(exc).__name__}: {first[:200]}); "
                        f"run the sweep again to resume it from its checkpoint")
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        finally:
            ray.shutdown()
    paths = write_report(sweep_dir)
    for p in paths:
        print_fn(f"report: {p}")
    return counts


# ------------------------------------------------------------------ CLI


def sweep_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="legion-train sweep",
        description="Seeds x task orders x algorithms as a sweep of ordinary runs on Ray (local or a cluster). "
                    "Started again (same command, or --resume SWEEP), it skips finished runs and continues "
                    "interrupted ones from their checkpoints; at the end it writes SWEEP/report.md, report.csv, "
                    "runs.csv and curve_<order>.png (legion-train report SWEEP rebuilds them).",
        epilog="example: legion-train sweep --config cpu --seeds 0-2 --order curriculum --order reverse "
               "--algorithms legion,sac --set run.steps_per_task=20000 --out runs/sweep-cpu")
    p.add_argument("--config", default="smoke", help=f"one of {NAMED_CONFIGS} or a YAML file (default: smoke)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value for every run (YAML syntax), repeatable, e.g. "
                        "--set run.steps_per_task=20000; env.tasks sets the curriculum order")
    p.add_argument("--seeds", default="0", help="seeds (run.seed), comma-separated and/or ranges: 0,1,2 or 0-2 "
                   "(default: 0)")
    p.add_argument("--order", dest="orders", action="append", default=[], metavar="ORDER",
                   help=f"a task order, repeatable (default: curriculum): {ORDER_HELP}")
    p.add_argument("--algorithms", default="legion",
                   help=f"comma-separated, any of {', '.join(ALGORITHMS)} (default: legion); mtsac trains all tasks "
                        "at once (run.regime=multitask) and appears once per seed under the order 'multitask'")
    p.add_argument("--reference", action="store_true",
                   help="also train a single-task sac reference run per task and seed (forward transfer, "
                        "Continual World's definition; without it the report gives no forward transfer)")
    p.add_argument("--out", help="sweep folder (default: runs/sweep-<config>-<time>)")
    p.add_argument("--resume", metavar="SWEEP", help="continue the sweep in this folder with its own grid "
                   "(sweep.json); grid options cannot be combined with it, resource options can")
    p.add_argument("--device", choices=("cpu", "cuda"), help="override run.device of every run")
    p.add_argument("--address", help="join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                   "(default: start a local Ray on this machine)")
    p.add_argument("--num-cpus", type=int, help="local Ray only: CPUs to offer (default: this machine's cores)")
    p.add_argument("--num-gpus", type=int, help="local Ray only: GPUs to offer (default: Ray's detection)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="CPUs each run asks Ray for (default: 1)")
    p.add_argument("--gpus-per-run", type=float,
                   help="GPUs each run asks Ray for (default: 1 with --device cuda / run.device cuda, else 0)")
    p.add_argument("--max-retries", type=int, default=2,
                   help="Ray retries of a run whose worker died (each retry resumes from its checkpoint; "
                        "default: 2)")
    p.add_argument("--ray-temp-dir", help="local Ray only: its session/log folder (default: Ray's, /tmp/ray)")
    p.add_argument("--no-progress", action="store_true", help="no overall progress bar (one line per run only)")
    return p


def sweep_main(argv: list[str]) -> int:
    args = sweep_parser().parse_args(argv)
    if args.address is not None:
        check_address(args.address)
        if args.num_cpus is not None or args.num_gpus is not None or args.ray_temp_dir:
            raise SweepError("--num-cpus, --num-gpus and --ray-temp-dir size a local Ray; with --address the "
                             "cluster's own resources apply")
    if args.num_cpus is not None and args.num_cpus <= 0:
        raise SweepError(f"--num-cpus must be > 0, got {args.num_cpus}")
    if args.cpus_per_run <= 0 or (args.gpus_per_run is not None and args.gpus_per_run < 0) or args.max_retries < 0:
        raise SweepError("--cpus-per-run must be > 0, --gpus-per-run and --max-retries >= 0")
    from .envs import known_tasks

    given = {"config": args.config, "overrides": args.overrides, "seeds": parse_seeds(args.seeds),
             "orders": args.orders or ["curriculum"], "algorithms": parse_algorithms(args.algorithms),
             "reference": args.reference, "device": args.device}
    if args.resume:
        grid_opts = [o for o in ("--config", "--set", "--seeds", "--order", "--algorithms", "--reference",
                                 "--device", "--out") if any(a == o or a.startswith(o + "=") for a in argv)]
        if grid_opts:
            raise SweepError(f"--resume uses the sweep's own grid; {grid_opts[0]} cannot be combined with it")
        sweep_dir = Path(args.resume)
        saved = load_sweep_args(sweep_dir)
        given = {k: saved[k] for k in given}
    else:
        sweep_dir = Path(args.out) if args.out else Path("runs") / (
            f"sweep-{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (sweep_dir / SWEEP_FILE).is_file():
            saved = load_sweep_args(sweep_dir)
            if {k: saved[k] for k in given} != given:
                raise SweepError(f"{sweep_dir} holds another sweep (its grid differs: see {sweep_dir / SWEEP_FILE}); "
                                 f"continue it with --resume {sweep_dir} or choose another --out")
    sweep = build_grid(**given, known_tasks=known_tasks())
    device = sweep.device or load_config(sweep.config, sweep.overrides).run.device
    if device == "cuda" and args.address is None:
        import torch

        if not torch.cuda.is_available():
            raise SweepError("--device cuda / run.device cuda but no CUDA GPU is available here; use --device cpu "
                             "or --address a cluster with GPUs")
    gpus = args.gpus_per_run if args.gpus_per_run is not None else (1.0 if device == "cuda" else 0.0)
    if args.address is not None:
        probe_address(args.address)
    save_sweep(sweep, sweep_dir)
    print(f"sweep folder: {sweep_dir} ({len(sweep.runs)} runs: {len(sweep.seeds)} seeds x "
          f"{len(sweep.orders)} orders x {len(sweep.algorithms)} algorithms"
          f"{' + single-task references' if sweep.reference else ''})", flush=True)
    t0 = time.time()
    counts = run_sweep(sweep, sweep_dir, address=args.address, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                       cpus_per_run=args.cpus_per_run, gpus_per_run=gpus, max_retries=args.max_retries,
                       temp_dir=args.ray_temp_dir, progress=not args.no_progress,
                       print_fn=lambda s: print(s, flush=True))
    print(f"sweep: {counts['finished']} runs trained, {counts['skipped']} already finished, {counts['failed']} failed, "
          f"in {time.time() - t0:.0f} s", flush=True)
    return 1 if counts["failed"] else 0
