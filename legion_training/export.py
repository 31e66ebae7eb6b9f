"""Export the frozen agent of a run through legion_policy.agent_format.save_agent.

The deployed networks are exactly the trained encoder and actor
(legion_policy.networks.DeployedPolicy); skills carry the run's instruction
texts and the embeddings the agent was trained with; the evaluation table is
the latest evaluation of every task; the provenance keeps the training config,
the success matrix and the stream metrics.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from legion_policy.agent_format import SkillSpec, save_agent
from legion_policy.networks import DeployedPolicy, NetworkConfig
from legion_policy.observation_layout import ACTION_SPEC, get_layout

from .config import config_from_dict
from .envs import control_period
from .learner import uses_encoder
from .lifelong import CHECKPOINT, kept_checkpoint, kept_checkpoint_steps, stream_metrics


def export_run(run_dir: str | Path, out: str | Path | None = None, *, overwrite: bool = False,
               step: int | None = None) -> Path:
    """The frozen agent of a run: its last checkpoint, or with ``step`` the checkpoint of that env step that
    ``run.keep_checkpoints`` kept (its manifest's evaluation is that step's)."""
    run = Path(run_dir)
    ckpt = run / CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(f"{run}: no {CHECKPOINT} (is this a legion-train run directory?)")
    if step is not None:
        ckpt = kept_checkpoint(run, step)
        if not ckpt.is_file():
            kept = kept_checkpoint_steps(run) or "none: the run did not set run.keep_checkpoints"
            raise FileNotFoundError(f"{run}: no checkpoint kept at step {step} (kept: {kept})")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = config_from_dict(state["config"])
    if not uses_encoder(cfg.run.algorithm):
        raise ValueError(f"run algorithm {cfg.run.algorithm!r} has no task-inference encoder; only legion and "
                         "legion_gaussian runs export as a frozen agent (baselines are for comparison)")
    if not cfg.language.enabled:
        raise ValueError("this run was trained without language embeddings; the frozen agent format needs them")
    layout = get_layout(cfg.env.layout)
    embeddings = np.asarray(state["embeddings"], dtype=np.float32)
    net_cfg = NetworkConfig(obs_dim=layout.size, embedding_dim=embeddings.shape[1], latent_dim=cfg.net.latent_dim,
                            action_dim=ACTION_SPEC.size, encoder_hidden=tuple(cfg.net.encoder_hidden),
                            actor_hidden=tuple(cfg.net.actor_hidden))
    policy = DeployedPolicy(net_cfg)
    policy.encoder.load_state_dict(state["learner"]["encoder"])
    policy.actor.load_state_dict(state["learner"]["actor"])
    policy.eval()

    latest: dict[str, dict] = {}
    for row in state["eval_history"]:
        latest[row["task"]] = row
    evaluation = {t: {"success_rate": float(r["success"]), "episodes": int(r["episodes"]), "step": int(r["step"]),
                      "mean_return": float(r["return"])} for t, r in latest.items()}
    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if step is not None:  # the run's metrics describe its end: a kept checkpoint's are those of its own step
        done = int(state["counters"]["phase"])
        matrix = np.asarray(state["matrix"], dtype=np.float64)[:, :done]
        fits = state.get("dpmm_history") or []
        metrics = {**(stream_metrics(matrix) if done else {}),
                   "success_matrix": [[None if np.isnan(v) else float(v) for v in row] for row in matrix],
                   "dpmm_K": fits[-1]["K"] if fits else None, "dpmm_purity": fits[-1]["purity"] if fits else None}
    skills = [SkillSpec(name=t, instruction=text, embedding=emb)
              for t, text, emb in zip(cfg.env.tasks, state["instructions"], embeddings)]
    steps = int(state["counters"]["step"])
    notes = (f"legion-train run {run.resolve().name}: algorithm {cfg.run.algorithm}, regime {cfg.run.regime}, "
             f"seed {cfg.run.seed}, {steps} env steps" + ("" if step is None else f" (kept checkpoint of step {step})"))
    training = {"config": cfg.to_dict(), "steps": steps,
                "stream_metrics": {k: metrics.get(k) for k in ("average_success", "forgetting", "backward_transfer",
                                                               "success_matrix", "dpmm_K", "dpmm_purity")}}
    return save_agent(Path(out) if out else run / "agent", policy, layout, skills,
                      control_period_s=control_period(cfg.env), training_config=training, evaluation=evaluation,
                      notes=notes, overwrite=overwrite)
