"""Plots of a run, written as PNG next to it (matplotlib, Agg backend):

* ``success_per_task.png``: evaluation success of every task over env steps (task switches marked);
* ``success_matrix.png``: the task x phase success matrix as a heatmap;
* ``latent_space.png``: a 2-D PCA projection of z (latest DPMM fit) coloured by task and by DPMM cluster;
* ``dpmm_K.png``: number of DPMM clusters K over env steps.

Everything is read from the run's files, so plots can be redrawn for any run:
``python -m legion_training.plots RUN``.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def pca_2d(z: np.ndarray) -> np.ndarray:
    """Project rows of z onto their two main principal axes (zero-padded if z has < 2 dims)."""
    z = np.asarray(z, dtype=np.float64)
    zc = z - z.mean(0)
    if z.shape[1] == 0:
        return np.zeros((len(z), 2))
    _, _, vt = np.linalg.svd(zc, full_matrices=False)
    p = zc @ vt[:2].T
    return np.pad(p, ((0, 0), (0, 2 - p.shape[1])))


def plot_run(run_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml

    run = Path(run_dir)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    tasks = list(cfg["env"]["tasks"])
    out: list[Path] = []

    hist = _read_csv(run / "eval_history.csv")
    if hist:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for t in tasks:
            rows = [r for r in hist if r["task"] == t]
            ax.plot([int(r["step"]) for r in rows], [float(r["success"]) for r in rows], marker="o", ms=3, label=t)
        if cfg["run"]["regime"] == "lifelong":
            for j in range(1, len(tasks)):
                ax.axvline(j * cfg["run"]["steps_per_task"], color="grey", lw=0.8, ls="--")
        ax.set(xlabel="env steps", ylabel="success rate", ylim=(-0.03, 1.03),
               title=f"{cfg['run']['algorithm']} ({cfg['run']['regime']}), seed {cfg['run']['seed']}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.append(run / "success_per_task.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)

    mat_rows = _read_csv(run / "success_matrix.csv")
    if mat_rows:
        phases = [k for k in mat_rows[0] if k != "task"]
        M = np.array([[float(r[p]) if r[p] != "" else np.nan for p in phases] for r in mat_rows])
        fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(phases), 1.0 + 0.5 * len(tasks)))
        im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(M.shape[0]):
            for j in range(M.shape[1]):
                if not np.isnan(M[i, j]):
                    ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center",
                            color="white" if M[i, j] < 0.6 else "black", fontsize=8)
        ax.set_xticks(range(len(phases)), [p.replace("after_", "after\n") for p in phases], fontsize=7)
        ax.set_yticks(range(len(tasks)), [r["task"] for r in mat_rows], fontsize=8)
        ax.set(xlabel="training phase", ylabel="evaluated task", title="success (task x phase)")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        out.append(run / "success_matrix.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)

    snaps = sorted((run / "latent").glob("fit_*.npz")) if (run / "latent").is_dir() else []
    if snaps:
        d = np.load(snaps[-1])
        p = pca_2d(d["z"])
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
        for label, key, ax in (("task", "task", axes[0]), ("DPMM cluster", "cluster", axes[1])):
            vals = d[key]
            for v in np.unique(vals):
                sel = vals == v
                name = tasks[int(v)] if key == "task" and int(v) < len(tasks) else f"cluster {int(v)}"
                ax.scatter(p[sel, 0], p[sel, 1], s=6, alpha=0.6, label=name)
            ax.set(title=f"z by {label} (step {int(d['step'])}, K={int(d['K'])})", xlabel="PC 1", ylabel="PC 2")
            ax.legend(fontsize=7, markerscale=2)
        fig.tight_layout()
        out.append(run / "latent_space.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)

    fits = _read_csv(run / "dpmm_history.csv")
    if fits:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.step([int(r["step"]) for r in fits], [int(r["K"]) for r in fits], where="post", marker="o")
        ax.set(xlabel="env steps", ylabel="K (DPMM clusters)", title="knowledge space size")
        ax.yaxis.get_major_locator().set_params(integer=True)
        fig.tight_layout()
        out.append(run / "dpmm_K.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)
    return out


if __name__ == "__main__":
    for path in plot_run(sys.argv[1]):
        print(path)
