"""End to end: the smoke config trains two tasks, fits the DPMM, writes results and plots, exports a
frozen agent that validates and runs in the policy core exactly like the trained networks; a run
killed with SIGKILL resumes from its last checkpoint."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from legion_policy.agent_format import load_agent
from legion_policy.policy import PolicyCore
from legion_training.cli import main
from legion_training.config import load_config
from legion_training.export import export_run
from legion_training.lifelong import Trainer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("smoke") / "run"
    trainer = Trainer(load_config("smoke"), run, log=lambda s: None)
    metrics = trainer.train()
    return trainer, metrics, run


def test_smoke_trains_two_tasks_and_writes_results(smoke_run):
    trainer, metrics, run = smoke_run
    cfg = trainer.cfg
    assert trainer.done and metrics["steps"] == 2 * cfg.run.steps_per_task
    assert metrics["phases_done"] == 2
    M = np.array(metrics["success_matrix"])
    assert M.shape == (2, 2) and np.all((M >= 0) & (M <= 1))
    # gradient steps: one per env step once learning started
    assert metrics["gradient_updates"] == metrics["steps"] - cfg.sac.learning_starts + 1
    # the replay kept both tasks (never reset)
    assert set(np.unique(trainer.replay.task[: len(trainer.replay)])) == {0, 1}
    # evaluations of ALL tasks (2 per phase end + one at step 150 of each phase coinciding with it)
    hist = (run / "eval_history.csv").read_text().splitlines()
    assert hist[0].startswith("step,phase,task,success") and len(hist) - 1 == 4
    header = (run / "success_matrix.csv").read_text().splitlines()[0]
    assert header == "task,after_reach-v3,after_push-v3"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["average_success"] == pytest.approx(M[:, -1].mean())


def test_smoke_fits_the_dpmm_once_per_task_and_uses_it_as_prior(smoke_run):
    trainer, metrics, run = smoke_run
    fits = (run / "dpmm_history.csv").read_text().splitlines()[1:]
    assert len(fits) == 2 and trainer.dpmm.n_fits == 2
    assert [int(r.split(",")[0]) for r in fits] == [100, 250]   # first_fit steps into each task
    assert trainer.learner.prior == "mixture" and metrics["dpmm_K"] >= 1
    snaps = sorted((run / "latent").glob("fit_*.npz"))
    assert len(snaps) == 2 and np.load(snaps[-1])["z"].shape[1] == trainer.cfg.net.latent_dim


def test_smoke_plots_are_pngs(smoke_run):
    from legion_training.plots import plot_run

    _, _, run = smoke_run
    paths = plot_run(run)
    assert [p.name for p in paths] == ["success_per_task.png", "success_matrix.png", "latent_space.png", "dpmm_K.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_export_validates_and_acts_exactly_like_the_trained_networks(smoke_run, tmp_path):
    trainer, _, run = smoke_run
    assert main(["export", str(run), "--out", str(tmp_path / "agent")]) == 0
    agent = load_agent(tmp_path / "agent")
    assert agent.skill_names == ["reach-v3", "push-v3"]
    assert agent.layout.name == trainer.cfg.env.layout
    assert agent.network_config == trainer.learner.net_cfg
    ev = agent.provenance["evaluation"]
    assert set(ev) == {"reach-v3", "push-v3"} and ev["push-v3"]["episodes"] == trainer.cfg.eval.episodes
    assert np.allclose(agent.skill("push-v3").embedding, trainer.embeddings[1])
    core = PolicyCore(agent)
    obs = trainer.envs[1].reset(variation=0)
    for name, idx in (("reach-v3", 0), ("push-v3", 1)):
        core.select(name)
        np.testing.assert_allclose(core.act(obs), trainer.learner.act(obs, idx, deterministic=True), atol=1e-6)
    # an instruction (not a name) selects the skill through the language embeddings
    assert core.select(trainer.instructions[1]).skill == "push-v3"
    with pytest.raises(FileExistsError):
        export_run(run, tmp_path / "agent")


def test_cuda_request_without_gpu_is_a_clear_error(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["--config", "smoke", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "--device cuda requested but no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_mtsac_multitask_alternates_tasks_in_one_phase_and_is_not_exported(tmp_path):
    trainer = Trainer(load_config("smoke", ["run.algorithm=mtsac", "run.regime=multitask", "run.steps_per_task=75"]),
                      tmp_path / "mt", log=lambda s: None)
    metrics = trainer.train()
    assert metrics["steps"] == 150 and metrics["phases_done"] == 1
    assert np.array(metrics["success_matrix"]).shape == (2, 1)
    tasks = trainer.replay.task[: len(trainer.replay)]
    # 50-step episodes in turn: reach, push, reach
    assert list(tasks[::50]) == [0, 1, 0] and np.all(tasks[:50] == 0) and np.all(tasks[50:100] == 1)
    assert trainer.dpmm.n_fits == 0   # no DPMM for the baselines
    with pytest.raises(ValueError, match="has no task-inference encoder"):
        export_run(tmp_path / "mt")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    every = 100
    args = [sys.executable, "-m", "legion_training.cli", "--config", "smoke", "--out", str(run),
            "--set", "run.steps_per_task=500", "--set", f"run.checkpoint_every={every}", "--set", "eval.every=250"]
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        ckpt = run / "checkpoint.pt"
        deadline = time.time() + 120
        seen = 0
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists():
                seen = torch.load(ckpt, weights_only=False)["counters"]["step"]
                if seen >= 3 * every:
                    break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # the progress bar's last count is where the killed run was
    counts = [int(m) for m in re.findall(r"(\d+)/1000", err_path.read_text())]
    reached = max(counts)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    saved = state["counters"]["step"]
    assert saved % every == 0 and saved >= 3 * every
    assert reached - saved <= every + 50   # at most one checkpoint interval (+ the bar's 50-step granularity)
    assert not list(run.glob("*.tmp"))     # nothing half-written was left in place of the checkpoint
    before = [r for r in state["eval_history"]]

    res = subprocess.run([sys.executable, "-m", "legion_training.cli", "--resume", str(run), "--no-progress"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resumed at step {saved} " in res.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 1000 and metrics["phases_done"] == 2
    final = torch.load(run / "checkpoint.pt", weights_only=False)
    assert final["eval_history"][: len(before)] == before   # history before the kill is kept
    assert final["counters"]["step"] == 1000


@pytest.mark.slow
def test_same_seed_same_run(tmp_path):
    def weights(seed, name):
        cfg = load_config("smoke", [f"run.seed={seed}", "env.tasks=[reach-v3]", "run.steps_per_task=120"])
        tr = Trainer(cfg, tmp_path / name, log=lambda s: None)
        tr.train()
        return torch.cat([p.detach().flatten() for p in tr.learner.actor.parameters()]), tr.replay.obs[:120].copy()

    (wa, oa), (wb, ob) = weights(3, "a"), weights(3, "b")
    assert torch.equal(wa, wb) and np.array_equal(oa, ob)
    assert np.ptp(oa[:, :3], axis=0).max() > 0.01   # the hand moved: the runs did something


def test_kept_checkpoints_export_the_agent_of_an_evaluated_step(tmp_path, capsys):
    """run.keep_checkpoints keeps every checkpoint; legion-train export --step N writes the agent of step N, whose
    manifest carries that step's evaluation (a run's evaluations swing: the step to ship is chosen among them)."""
    from legion_training.lifelong import kept_checkpoint_steps

    cfg = load_config("smoke", ["run.keep_checkpoints=true", "env.tasks=[reach-v3]"])
    run = tmp_path / "run"
    trainer = Trainer(cfg, run, log=lambda s: None)
    trainer.train()
    steps = kept_checkpoint_steps(run)
    assert steps == list(range(cfg.run.checkpoint_every, cfg.run.steps_per_task + 1, cfg.run.checkpoint_every))
    last = load_agent(export_run(run, tmp_path / "last"))
    at_end = load_agent(export_run(run, tmp_path / "end", step=steps[-1]))
    early = load_agent(export_run(run, tmp_path / "early", step=steps[0]))
    obs = trainer.envs[0].reset(variation=0)
    acts = {}
    for name, agent in (("last", last), ("end", at_end), ("early", early)):
        core = PolicyCore(agent)
        core.select("reach-v3")
        acts[name] = core.act(obs)
    np.testing.assert_array_equal(acts["last"], acts["end"])  # the last kept checkpoint is the run's last
    assert not np.allclose(acts["early"], acts["end"])  # an earlier step's networks
    assert "step 50" in early.provenance["notes"]
    assert early.provenance["training_config"]["stream_metrics"]["success_matrix"] == [[]]  # no phase done yet
    assert main(["export", str(run), "--step", "7", "--out", str(tmp_path / "x")]) == 2
    assert "no checkpoint kept at step 7 (kept: [50, 100, 150])" in capsys.readouterr().err
