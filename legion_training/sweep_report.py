"""The sweep report: a pure function of the run folders under ``SWEEP/runs`` (no Ray, no training).

``legion-train report SWEEP`` (and every ``legion-train sweep`` at its end) writes into SWEEP:

* ``report.md``: the table per task order and algorithm, the definitions, the paper's numbers;
* ``report.csv``: the same table (one row per order x algorithm);
* ``runs.csv``: one row per run (finished or not);
* ``curve_<order>.png``: average success over all tasks of the stream vs env steps, mean over seeds
  with a +-1 std band, one line per algorithm, task switches marked.

Metrics (Continual World, Wolczyk et al. 2021), from a run's task x phase success matrix M
(tasks in stream order, M[i, j] = success of task i after phase j) and its evaluation history:

* final average success: mean_i M[i, T-1];
* forgetting: mean over i < T-1 of M[i, i] - M[i, T-1] (success right after its own phase minus
  final). NB: the run's own ``metrics.json`` "forgetting" is max-over-phases minus final; the
  report uses Continual World's;
* forward transfer: mean_i (AUC_i - AUC_i^ref) / (1 - AUC_i^ref), AUC_i the area under task i's
  success curve during its own phase divided by the phase length (a right Riemann sum over the
  evaluations of the phase: each evaluation's success times the steps since the previous one;
  the phase starts at 0 success-weight, i.e. at the previous phase's end), AUC_i^ref the same for
  single-task ``sac`` reference runs of task i (``legion-train sweep --reference``), averaged over
  their seeds. Undefined (empty) without references or where AUC_i^ref = 1.

Means are over the finished seeds; std is the sample std (ddof 1; 0 for one seed).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

#: Published LEGION numbers (source: ../shared/reference/paper-results.md, "from the data released with the
#: paper"; Nature Machine Intelligence 2025). All on Metaworld MT10 (10 tasks), 1M steps per task,
#: success averaged over all 10 tasks. Ablation values were read from the paper's figure (approximate);
#: paper-results.md does not name their order, listed here under the paper's default (curriculum).
PAPER_RESULTS: tuple[dict, ...] = (
    {"order": "curriculum", "algorithm": "legion", "final_success": 0.821, "std": 0.053, "seeds": 7,
     "note": "lifelong, curriculum order"},
    {"order": "random", "algorithm": "legion", "final_success": 0.71, "std": None, "seeds": 5,
     "note": "lifelong, random order"},
    {"order": "reverse", "algorithm": "legion", "final_success": 0.57, "std": None, "seeds": 5,
     "note": "lifelong, reverse order"},
    {"order": "curriculum", "algorithm": "legion_gaussian", "final_success": 0.57, "std": None, "seeds": None,
     "note": "ablation: Gaussian prior instead of DPMM (~, from the figure)"},
    {"order": "curriculum", "algorithm": "sac_lang", "final_success": 0.46, "std": None, "seeds": None,
     "note": "ablation: SAC with language embedding (~, from the figure)"},
    {"order": "curriculum", "algorithm": "sac", "final_success": 0.20, "std": None, "seeds": None,
     "note": "ablation: SAC without language (~, from the figure)"},
    {"order": "multitask", "algorithm": "legion", "final_success": 0.944, "std": None, "seeds": None,
     "note": "multitask MT10 at 1M steps"},
    {"order": "multitask", "algorithm": "mtsac", "final_success": 0.725, "std": None, "seeds": None,
     "note": "multitask MT10 at 1M steps"},
)
#: The paper's curriculum order: overall success on all 10 tasks after each phase (7 seeds).
PAPER_CURRICULUM_PER_PHASE = (0.13, 0.31, 0.36, 0.40, 0.47, 0.48, 0.59, 0.67, 0.73, 0.82)
PAPER_SETTING = "Metaworld MT10 (10 tasks), 1M steps per task, success over all 10 tasks"


def paper_result(order: str, algorithm: str) -> dict | None:
    """The paper's number for an order label and algorithm (``random<seed>`` matches ``random``)."""
    key = "random" if order.startswith("random") else order
    for row in PAPER_RESULTS:
        if row["order"] == key and row["algorithm"] == algorithm:
            return row
    return None


# ------------------------------------------------------------------ one run


@dataclass
class RunResult:
    """What the report needs of one run folder."""

    run_id: str
    algorithm: str
    order: str
    seed: int
    reference: bool
    tasks: list[str]
    regime: str
    steps_per_task: int
    finished: bool
    steps: int = 0
    wall_s: float | None = None
    matrix: np.ndarray | None = None                   # task x phase (NaN where not evaluated yet)
    history: list[dict] = field(default_factory=list)  # eval_history.csv rows (step, phase, task, success)


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_run(folder: Path, run_id: str) -> RunResult | None:
    """A run folder -> :class:`RunResult` (None if it holds no config yet)."""
    if not (folder / "config.yaml").is_file():
        return None
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    spec = json.loads((folder / "run_spec.json").read_text()) if (folder / "run_spec.json").is_file() else {}
    parts = run_id.split("/")
    status = json.loads((folder / "sweep_status.json").read_text()) if (folder / "sweep_status.json").is_file() else {}
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    matrix = None
    if metrics.get("success_matrix") is not None:
        matrix = np.array([[np.nan if x is None else float(x) for x in row] for row in metrics["success_matrix"]])
    hist = [{"step": int(r["step"]), "phase": int(r["phase"]), "task": r["task"], "success": float(r["success"])}
            for r in _read_csv(folder / "eval_history.csv")]
    return RunResult(
        run_id=run_id, algorithm=spec.get("algorithm", cfg["run"]["algorithm"]),
        order=spec.get("order", parts[1] if len(parts) == 3 else "?"), seed=int(spec.get("seed", cfg["run"]["seed"])),
        reference=bool(spec.get("reference", parts[0] == "reference")), tasks=list(cfg["env"]["tasks"]),
        regime=cfg["run"]["regime"], steps_per_task=int(cfg["run"]["steps_per_task"]),
        finished=status.get("status") == "finished", steps=int(metrics.get("steps", 0)),
        wall_s=status.get("wall_s"), matrix=matrix, history=hist)


def collect_runs(sweep_dir: Path) -> list[RunResult]:
    """Every run folder under ``SWEEP/runs`` (``<top>/<order>/s<seed>``), sorted by run id."""
    root = Path(sweep_dir) / "runs"
    out = []
    for folder in sorted(root.glob("*/*/s*")):
        if folder.is_dir():
            r = read_run(folder, folder.relative_to(root).as_posix())
            if r is not None:
                out.append(r)
    return out


# ------------------------------------------------------------------ metrics


def final_success(M: np.ndarray) -> float:
    return float(np.mean(M[:, -1]))


def cw_forgetting(M: np.ndarray) -> float:
    """Continual World forgetting: mean over i < T-1 of M[i, i] - M[i, T-1] (NaN with one phase)."""
    T = M.shape[1]
    if T < 2 or M.shape[0] < T:
        return float("nan")
    return float(np.mean([M[i, i] - M[i, T - 1] for i in range(T - 1)]))


def phase_auc(history: list[dict], task: str, phase: int) -> float:
    """Area under ``task``'s success curve during ``phase``, divided by the phase's length (right Riemann sum)."""
    prev = [r["step"] for r in history if r["phase"] == phase - 1]
    start = max(prev) if prev else 0
    pts = sorted((r["step"], r["success"]) for r in history if r["phase"] == phase and r["task"] == task)
    if not pts or pts[-1][0] <= start:
        return float("nan")
    area, t_prev = 0.0, start
    for t, p in pts:
        area += p * (t - t_prev)
        t_prev = t
    return area / (pts[-1][0] - start)


def reference_aucs(runs: list[RunResult]) -> dict[str, float]:
    """Task -> mean AUC of its finished single-task reference runs."""
    by_task: dict[str, list[float]] = {}
    for r in runs:
        if r.reference and r.finished and len(r.tasks) == 1:
            a = phase_auc(r.history, r.tasks[0], 0)
            if not math.isnan(a):
                by_task.setdefault(r.tasks[0], []).append(a)
    return {t: float(np.mean(v)) for t, v in by_task.items()}


def forward_transfer(run: RunResult, ref_auc: dict[str, float]) -> float:
    """Continual World forward transfer of a lifelong run against the reference AUCs (NaN if undefined)."""
    if run.regime != "lifelong":
        return float("nan")
    fts = []
    for i, task in enumerate(run.tasks):
        b = ref_auc.get(task)
        a = phase_auc(run.history, task, i)
        if b is None or b >= 1.0 or math.isnan(a):
            continue
        fts.append((a - b) / (1.0 - b))
    return float(np.mean(fts)) if fts else float("nan")


def run_metrics(run: RunResult, ref_auc: dict[str, float]) -> dict:
    """final_success, forgetting, forward_transfer of one run (NaN where not defined / not finished)."""
    nan = float("nan")
    if not run.finished or run.matrix is None:
        return {"final_success": nan, "forgetting": nan, "forward_transfer": nan}
    return {"final_success": final_success(run.matrix),
            "forgetting": cw_forgetting(run.matrix) if run.regime == "lifelong" else nan,
            "forward_transfer": forward_transfer(run, ref_auc)}


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def summarize(runs: list[RunResult]) -> list[dict]:
    """One row per (order, algorithm) of the non-reference runs: means and stds over finished seeds."""
    ref = reference_aucs(runs)
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in runs:
        if not r.reference:
            groups.setdefault((r.order, r.algorithm), []).append(r)
    rows = []
    for (order, alg), rs in sorted(groups.items()):
        ms = [run_metrics(r, ref) for r in rs if r.finished]
        row = {"order": order, "algorithm": alg, "tasks": " > ".join(rs[0].tasks),
               "steps_per_task": rs[0].steps_per_task, "seeds": len(rs), "seeds_finished": len(ms)}
        for key in ("final_success", "forgetting", "forward_transfer"):
            row[f"{key}_mean"], row[f"{key}_std"] = _mean_std([m[key] for m in ms])
        paper = paper_result(order, alg)
        row["paper_final_success"] = paper["final_success"] if paper else None
        row["paper_std"] = paper["std"] if paper else None
        row["paper_note"] = paper["note"] if paper else ""
        rows.append(row)
    return rows


def curve(runs: list[RunResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Env steps, mean and std over runs of the average success over all tasks at each evaluation.

    Only the evaluation steps every run has (runs of one sweep share their schedule)."""
    per_run = []
    for r in runs:
        by_step: dict[int, list[float]] = {}
        for h in r.history:
            by_step.setdefault(h["step"], []).append(h["success"])
        per_run.append({s: float(np.mean(v)) for s, v in by_step.items() if len(v) == len(r.tasks)})
    if not per_run:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    steps = sorted(set.intersection(*(set(d) for d in per_run)))
    Y = np.array([[d[s] for s in steps] for d in per_run]).reshape(len(per_run), len(steps))
    std = Y.std(0, ddof=1) if len(per_run) > 1 else np.zeros(len(steps))
    return np.array(steps), Y.mean(0), std


# ------------------------------------------------------------------ writing


def _fmt(mean: float, std: float) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.3f} +- {std:.3f}"


def plot_curves(runs: list[RunResult], sweep_dir: Path) -> list[Path]:
    """curve_<order>.png per order: one line + band per algorithm (finished runs only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    orders = sorted({r.order for r in runs if not r.reference})
    for order in orders:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        drew, spt, n_tasks = False, None, 1
        for alg in sorted({r.algorithm for r in runs if r.order == order and not r.reference}):
            rs = [r for r in runs if r.order == order and r.algorithm == alg and r.finished and not r.reference]
            x, m, s = curve(rs)
            if len(x) == 0:
                continue
            drew = True
            spt, n_tasks = rs[0].steps_per_task, len(rs[0].tasks) if rs[0].regime == "lifelong" else 1
            line, = ax.plot(x, m, marker="o", ms=3, label=f"{alg} ({len(rs)} seeds)")
            ax.fill_between(x, np.clip(m - s, 0, 1), np.clip(m + s, 0, 1), color=line.get_color(), alpha=0.2)
        if not drew:
            plt.close(fig)
            continue
        for j in range(1, n_tasks):
            ax.axvline(j * spt, color="grey", lw=0.8, ls="--")
        ax.set(xlabel="env steps", ylabel="average success over the stream's tasks", ylim=(-0.03, 1.03),
               title=f"order {order}: mean +- 1 std over seeds")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(sweep_dir) / f"curve_{order}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out


def write_report(sweep_dir: str | Path) -> list[Path]:
    """Write report.md, report.csv, runs.csv and the curves into ``sweep_dir``; returns the paths."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "runs").is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no runs/ folder (not a sweep folder, or nothing started yet)")
    runs = collect_runs(sweep_dir)
    rows = summarize(runs)
    ref = reference_aucs(runs)
    paths = []

    cols = ["order", "algorithm", "tasks", "steps_per_task", "seeds", "seeds_finished", "final_success_mean",
            "final_success_std", "forgetting_mean", "forgetting_std", "forward_transfer_mean",
            "forward_transfer_std", "paper_final_success", "paper_std", "paper_note"]
    with open(sweep_dir / "report.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else
                            f"{v:.4f}" if isinstance(v, float) else ("" if v is None else v))
                        for k, v in row.items()})
    paths.append(sweep_dir / "report.csv")

    with open(sweep_dir / "runs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run_id", "algorithm", "order", "seed", "reference", "tasks", "finished", "steps", "wall_s",
                    "final_success", "forgetting", "forward_transfer", "final_per_task"])
        for r in runs:
            m = run_metrics(r, ref)
            per_task = "" if r.matrix is None or not r.finished else " ".join(f"{x:.2f}" for x in r.matrix[:, -1])
            w.writerow([r.run_id, r.algorithm, r.order, r.seed, int(r.reference), " > ".join(r.tasks),
                        int(r.finished), r.steps, "" if r.wall_s is None else r.wall_s,
                        *("" if math.isnan(m[k]) else f"{m[k]:.4f}" for k in ("final_success", "forgetting",
                                                                               "forward_transfer")), per_task])
    paths.append(sweep_dir / "runs.csv")
    pngs = plot_curves(runs, sweep_dir)

    sweep = json.loads((sweep_dir / "sweep.json").read_text()) if (sweep_dir / "sweep.json").is_file() else {}
    lines = [f"# Sweep report: {sweep_dir.name}", ""]
    if sweep:
        lines += [f"- config `{sweep['config']}`, overrides: {' '.join('`--set ' + o + '`' for o in sweep['overrides']) or 'none'}",
                  f"- seeds {sweep['seeds']}, orders {sweep['orders']}, algorithms {sweep['algorithms']}, "
                  f"single-task references: {'yes (sac)' if sweep.get('reference') else 'no'}"]
    n_fin = sum(r.finished for r in runs)
    lines += [f"- runs finished: {n_fin} of {len(runs)} started"
              f"{' (of ' + str(len(sweep['runs'])) + ' in the grid)' if sweep else ''}", ""]
    lines += ["| order | algorithm | tasks | steps/task | seeds | final avg success | forgetting | forward transfer "
              "| paper (final avg success) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        paper = "-" if row["paper_final_success"] is None else (
            f"{row['paper_final_success']:.3f}" + (f" +- {row['paper_std']:.3f}" if row["paper_std"] else "")
            + f" ({row['paper_note']})")
        lines.append(f"| {row['order']} | {row['algorithm']} | {row['tasks']} | {row['steps_per_task']} | "
                     f"{row['seeds_finished']}/{row['seeds']} | {_fmt(row['final_success_mean'], row['final_success_std'])} | "
                     f"{_fmt(row['forgetting_mean'], row['forgetting_std'])} | "
                     f"{_fmt(row['forward_transfer_mean'], row['forward_transfer_std'])} | {paper} |")
    lines += ["", f"The paper's numbers are for its own setting ({PAPER_SETTING}; "
              f"source: shared/reference/paper-results.md, in `legion_training/sweep_report.py:PAPER_RESULTS`): "
              "side by side, not like for like, unless this sweep ran the paper config.",
              f"Paper, curriculum order, success after each of the 10 phases: "
              f"{', '.join(f'{x:.2f}' for x in PAPER_CURRICULUM_PER_PHASE)}.", "",
              "Definitions (Continual World): final average success = mean over the stream's tasks after the last "
              "phase; forgetting = per task, success right after its own phase minus final, averaged over all tasks "
              "but the last; forward transfer = mean over tasks of (AUC - AUC_ref) / (1 - AUC_ref), AUC the area "
              "under the task's success curve during its own phase over the phase length, AUC_ref the same for "
              "single-task sac reference runs (`--reference`; '-' without them). Mean +- sample std over finished seeds.",
              ""]
    if ref:
        lines += ["Reference AUC per task (single-task sac): " + ", ".join(f"{t} {a:.3f}" for t, a in sorted(ref.items())), ""]
    for p in pngs:
        lines += [f"![{p.stem}]({p.name})", ""]
    lines += ["## Runs", "", "| run | finished | steps | wall [s] (last attempt) | final avg | forgetting | final per task |",
              "|---|---|---|---|---|---|---|"]
    for r in runs:
        m = run_metrics(r, ref)
        per_task = "-" if r.matrix is None or not r.finished else " / ".join(f"{x:.2f}" for x in r.matrix[:, -1])
        fin, fgt = ("-" if math.isnan(m[k]) else f"{m[k]:.3f}" for k in ("final_success", "forgetting"))
        wall = "-" if r.wall_s is None else f"{r.wall_s:.0f}"
        lines.append(f"| {r.run_id} | {'yes' if r.finished else 'no'} | {r.steps} | {wall} | {fin} | {fgt} | {per_task} |")
    lines.append("")
    (sweep_dir / "report.md").write_text("\n".join(lines))
    paths.append(sweep_dir / "report.md")
    return [*paths, *pngs]


def report_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legion-train report",
                                description="Rebuild a sweep's report (report.md, report.csv, runs.csv, "
                                            "curve_<order>.png) from its run folders; no training, no Ray.")
    p.add_argument("sweep", help="sweep folder (holds runs/ and sweep.json)")
    args = p.parse_args(argv)
    for path in write_report(Path(args.sweep)):
        print(f"report: {path}")
    return 0
